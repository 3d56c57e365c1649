"""The reports, as queries over the ledger.

Daily and revenue figures are sums of `DailyTotal` rows (the ledger's postings summed per
center, business day, account and kind of event, kept with every posting), so a report costs a
few rows per day whatever the history. The package-liability report reads each package's
postings to *package liability* within the period, and takes the opening balance as the
package's balance now less what moved since the period began — both straight from the ledger.

What each figure is (D = debit, C = credit of the account named):
- sales gross: C revenue service + C revenue product + C package sold unpaid, when invoices are
  issued; credits: D sales credits (decrease balance owed) + D package liability by package
  refunds + D package sold unpaid by closed packages (their cancelled, unpaid net); all less
  their reversals. Net of tax throughout.
- collections: D tenders by payments (received); C tenders by everything else (refunds paid out
  — an online refund on the day it settles — less failed ones coming back); by method: the
  tender's net.
- tax: C tax payable when invoices are issued (charged); D tax payable by credits (credited).
- revenue: C revenue service / product / redemption / forfeit.

Every query here goes to the scope's database: the reports' own alias (`REPORTS_DB`, a read
replica) when KASSA_REPORTS_DATABASE_URL configures one, else the default database. A report
reads, never writes or locks; on PostgreSQL its queries run in one read-only REPEATABLE READ
transaction, so its figures come from one snapshot and the database refuses any write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, QuerySet, Sum

from kassa.billing.models import Customer
from kassa.ledger.models import TENDER_CODES, DailyTotal, Posting
from kassa.refunds.models import Refund, RefundStatus, RefundType
from kassa.tenancy.models import Center, Organization

ISSUED = ("invoice_issued",)
# Money received: payments (less those the processor failed after all) and deposits.
RECEIVED_KINDS = ("payment", "payment_reversed", "deposit", "deposit_reversed",
                  # less what the bank sent back or the processor withdrew for a dispute
                  # (and gave back when the dispute was won)
                  "payment_returned", "dispute_opened", "dispute_won")
CREDIT_OUT_KINDS = ("credit_applied", "credit_refund", "credit_refund_reversed",
                    "credit_written_off")
SALES_CODES = ("revenue_service", "revenue_product", "revenue_fee", "package_sold_unpaid")
REVENUE_KINDS = {"service": "revenue_service", "product": "revenue_product",
                 "redemption": "revenue_redemption", "forfeit": "revenue_forfeit",
                 "fee": "revenue_fee"}
MAX_DAYS = 3660  # a report spans at most ten years
MAX_ROWS = 5000
REPORTS_DB = "reports"  # the alias settings.py adds for KASSA_REPORTS_DATABASE_URL


def reports_database() -> str:
    """The alias the reports read from: the replica's when one is configured."""
    return REPORTS_DB if REPORTS_DB in settings.DATABASES else DEFAULT_DB_ALIAS


@dataclass(frozen=True)
class Scope:
    organization: Organization
    center: Center | None
    start: dt.date
    end: dt.date  # inclusive
    # `kassa verify` holds the reports against the default database's own postings: it passes
    # DEFAULT_DB_ALIAS, as a replica may lag behind them.
    database: str = field(default_factory=reports_database)


@contextmanager
def _snapshot(database: str) -> Iterator[None]:
    """One read-only snapshot for all of a report's queries, on PostgreSQL. Not on SQLite,
    whose transactions here take the write lock at BEGIN (and readers never block there);
    nor inside a transaction that is already open (a test's, or a caller's)."""
    connection = connections[database]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=database):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _totals(scope: Scope) -> QuerySet[DailyTotal]:
    rows = DailyTotal.objects.using(scope.database).filter(organization=scope.organization,
                                     business_date__gte=scope.start,
                                     business_date__lte=scope.end)
    if scope.center is not None:
        rows = rows.filter(center=scope.center)
    return rows


def _sums(scope: Scope) -> dict[tuple[str, str], int]:
    """(code, kind) → the sum of postings in the scope."""
    rows = _totals(scope).values("code", "kind").annotate(s=Sum("amount_minor"))
    return {(r["code"], r["kind"]): int(r["s"] or 0) for r in rows}


def daily(scope: Scope) -> dict[str, Any]:
    with _snapshot(scope.database):
        sums = _sums(scope)
        refunds = _refund_counts(scope)

    def total(codes: tuple[str, ...], kinds: tuple[str, ...] | None = None,
              exclude: tuple[str, ...] = ()) -> int:
        return sum(v for (code, kind), v in sums.items()
                   if code in codes and (kinds is None or kind in kinds) and kind not in exclude)

    gross = -total(SALES_CODES, ISSUED)
    credits = (total(("sales_credits",))
               + total(("package_liability",), ("package_refund", "package_refund_reversed"))
               + total(("package_sold_unpaid",), ("package_closed", "package_closed_reversed")))
    # A payment the processor failed after it was booked is money that never came.
    received = total(TENDER_CODES, RECEIVED_KINDS)
    refunded = -total(TENDER_CODES, exclude=RECEIVED_KINDS)
    by_method = {code: total((code,)) for code in TENDER_CODES}
    charged = -total(("tax_payable",), ISSUED)
    credited = total(("tax_payable",), exclude=ISSUED)
    return {
        "sales": {"gross": gross, "credits": credits, "net": gross - credits},
        "collections": {"received": received, "refunded": refunded,
                        "net": received - refunded,
                        "by_method": {k: v for k, v in by_method.items() if v or k in (
                            "cash", "check", "card")}},
        "tax": {"charged": charged, "credited": credited, "net": charged - credited},
        "refunds": refunds,
        "credit": credit_moved(total),
    }


def credit_moved(total: Any) -> dict[str, int]:
    """The customers' credit over the scope, from its account's sums by kind of event:
    issued is every entry into it (deposits, overpayments, refunds to credit, less deposits
    whose card payment failed), refunded out is net of refunds out that failed."""
    applied = total(("customer_credit",), ("credit_applied",))
    refunded_out = total(("customer_credit",), ("credit_refund", "credit_refund_reversed"))
    written_off = total(("customer_credit",), ("credit_written_off",))
    return {"issued": -total(("customer_credit",), exclude=CREDIT_OUT_KINDS),
            "applied": applied, "refunded_out": refunded_out, "written_off": written_off}


def _refund_counts(scope: Scope) -> dict[str, int]:
    """Refunds made in the scope's days (by the organization's day), less those that failed in
    them: a failed refund counts against the day it failed."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(scope.organization.timezone)
    since = dt.datetime.combine(scope.start, dt.time.min, zone)
    until = dt.datetime.combine(scope.end + dt.timedelta(days=1), dt.time.min, zone)
    # A refund to credit gives no money back (the credit block counts it); its refund out of
    # credit, if any, is the refund.
    rows = Refund.objects.using(scope.database).filter(
        organization=scope.organization).exclude(type=RefundType.CREDIT)
    if scope.center is not None:
        rows = rows.filter(center=scope.center)
    made = rows.filter(created_at__gte=since, created_at__lt=until).aggregate(
        n=Count("id"), a=Sum("amount_minor"), t=Sum("tax_minor"))
    failed = rows.filter(status=RefundStatus.FAILED, settled_at__gte=since,
                         settled_at__lt=until).aggregate(
        n=Count("id"), a=Sum("amount_minor"), t=Sum("tax_minor"))
    return {
        "count": (made["n"] or 0) - (failed["n"] or 0),
        "total": ((made["a"] or 0) + (made["t"] or 0)) - ((failed["a"] or 0) + (failed["t"] or 0)),
    }


def revenue(scope: Scope) -> dict[str, Any]:
    with _snapshot(scope.database):
        sums = _totals(scope).filter(code__in=REVENUE_KINDS.values()).values("code").annotate(
            s=Sum("amount_minor"))
        by_code = {r["code"]: -int(r["s"] or 0) for r in sums}
    by_kind = {kind: by_code.get(code, 0) for kind, code in REVENUE_KINDS.items()}
    return {"by_kind": by_kind, "total": sum(by_kind.values())}


# How each kind of event moves a package's liability: the column it belongs in.
LIABILITY_COLUMNS = {
    "payment": "paid", "payment_reversed": "paid",
    "refund_issued": "paid", "refund_recorded": "paid",
    "refund_issued_reversed": "paid", "refund_recorded_reversed": "paid",
    # Money that never came after all: a returned check, a lost chargeback re-billed.
    "payment_returned": "paid", "dispute_rebilled": "paid",
    "redemption": "redeemed",
    "package_refund": "refunded", "package_refund_reversed": "refunded",
    "package_closed": "forfeited", "package_closed_reversed": "forfeited",
}
COLUMNS = ("opening", "paid", "redeemed", "refunded", "forfeited", "closing")


def package_liability(scope: Scope, *, limit: int = 500, offset: int = 0) -> dict[str, Any]:
    """Per package: opening, paid, redeemed, refunded, forfeited and closing for the period;
    closing = opening + paid − redeemed − refunded − forfeited.

    Totals come from the per-day totals (a few rows a day). Rows are the packages with a
    movement in the period or a balance at its end, paged by package id; each is computed from
    the package's balance now, its postings in the period and its postings since.
    """
    with _snapshot(scope.database):
        totals = _liability_totals(scope)
        rows = _liability_rows(scope, limit=limit, offset=offset)
    return {"rows": rows, "totals": totals}


def _liability_totals(scope: Scope) -> dict[str, int]:
    before = DailyTotal.objects.using(scope.database).filter(
        organization=scope.organization, code="package_liability", business_date__lt=scope.start)
    if scope.center is not None:
        before = before.filter(center=scope.center)
    opening = -int(before.aggregate(s=Sum("amount_minor"))["s"] or 0)
    figures = dict.fromkeys(COLUMNS[1:5], 0)
    rows = _totals(scope).filter(code="package_liability").values("kind").annotate(
        s=Sum("amount_minor"))
    for row in rows:
        column = LIABILITY_COLUMNS.get(row["kind"], "paid")
        figures[column] += (-1 if column == "paid" else 1) * int(row["s"] or 0)
    closing = (opening + figures["paid"] - figures["redeemed"] - figures["refunded"]
               - figures["forfeited"])
    return {"opening": opening, **figures, "closing": closing}


def _case(column: str) -> str:
    kinds = [k for k, c in LIABILITY_COLUMNS.items() if c == column]
    placeholders = ", ".join(f"'{k}'" for k in kinds)  # our own constants, not input
    return f"SUM(CASE WHEN kind IN ({placeholders}) THEN amount_minor ELSE 0 END)"


def _liability_rows(scope: Scope, *, limit: int, offset: int) -> list[dict[str, Any]]:
    center_sql = "AND center_id = %s" if scope.center is not None else ""
    center_args = [scope.center.pk] if scope.center is not None else []
    # Only our own constants are formatted in; every value is a parameter.
    sql = f"""
        WITH moves AS (
            SELECT package_id, {_case("paid")} AS paid, {_case("redeemed")} AS redeemed,
                   {_case("refunded")} AS refunded, {_case("forfeited")} AS forfeited
            FROM ledger_posting
            WHERE organization_id = %s AND code = 'package_liability' {center_sql}
              AND business_date >= %s AND business_date <= %s AND package_id IS NOT NULL
            GROUP BY package_id
        ), later AS (
            SELECT package_id, SUM(amount_minor) AS moved
            FROM ledger_posting
            WHERE organization_id = %s AND code = 'package_liability' {center_sql}
              AND business_date > %s AND package_id IS NOT NULL
            GROUP BY package_id
        )
        SELECT p.id, c.name, p.name,
               l.paid_net_minor - p.redeemed_minor - l.refunded_net_minor - p.forfeited_minor
                   + COALESCE(later.moved, 0) AS closing,
               COALESCE(-moves.paid, 0), COALESCE(moves.redeemed, 0),
               COALESCE(moves.refunded, 0), COALESCE(moves.forfeited, 0)
        FROM packages_package p
        JOIN billing_customer c ON c.id = p.customer_id
        JOIN billing_invoiceline l ON l.id = p.line_id
        LEFT JOIN moves ON moves.package_id = p.id
        LEFT JOIN later ON later.package_id = p.id
        WHERE p.organization_id = %s {center_sql.replace("center_id", "p.center_id")}
          AND (moves.package_id IS NOT NULL
               OR l.paid_net_minor - p.redeemed_minor - l.refunded_net_minor
                  - p.forfeited_minor + COALESCE(later.moved, 0) <> 0)
        ORDER BY p.id
        LIMIT %s OFFSET %s
    """  # noqa: S608
    org = scope.organization.pk
    args: list[Any] = [org, *center_args, scope.start, scope.end, org, *center_args, scope.end,
            org, *center_args, limit, offset]
    with connections[scope.database].cursor() as cursor:
        cursor.execute(sql, args)
        found = cursor.fetchall()
    rows = []
    for pk, customer, name, closing, paid, redeemed, refunded, forfeited in found:
        opening = closing - paid + redeemed + refunded + forfeited
        rows.append({"package": str(pk), "customer": customer, "name": name,
                     "opening": int(opening), "paid": int(paid), "redeemed": int(redeemed),
                     "refunded": int(refunded), "forfeited": int(forfeited),
                     "closing": int(closing)})
    return rows


CREDIT_COLUMNS = ("opening", "issued", "applied", "refunded_out", "written_off", "closing")


def _credit_figures(moved: dict[str, int], opening: int) -> dict[str, int]:
    """One customer's (or the totals') movements of credit by kind of event → the columns;
    closing = opening + issued − applied − refunded_out − written_off."""
    applied = moved.get("credit_applied", 0)
    refunded_out = moved.get("credit_refund", 0) + moved.get("credit_refund_reversed", 0)
    written_off = moved.get("credit_written_off", 0)
    issued = -sum(v for kind, v in moved.items() if kind not in CREDIT_OUT_KINDS)
    return {"opening": opening, "issued": issued, "applied": applied,
            "refunded_out": refunded_out, "written_off": written_off,
            "closing": opening + issued - applied - refunded_out - written_off}


def customer_credit(scope: Scope, *, limit: int = 500, offset: int = 0) -> dict[str, Any]:
    """Per customer: opening, issued, applied, refunded out, written off and closing credit for
    the period, from the customer_credit sub-ledger (every posting names its customer); at a
    center, the credit held there. Totals come from the per-day totals (a few rows a day)."""
    with _snapshot(scope.database):
        postings = Posting.objects.using(scope.database).filter(
            organization=scope.organization, code="customer_credit",
            business_date__lte=scope.end)
        if scope.center is not None:
            postings = postings.filter(center=scope.center)
        before = {r["customer_id"]: -int(r["s"]) for r in postings.filter(
            business_date__lt=scope.start).values("customer_id").annotate(s=Sum("amount_minor"))}
        moved: dict[int, dict[str, int]] = {}
        for r in (postings.filter(business_date__gte=scope.start)
                  .values("customer_id", "kind").annotate(s=Sum("amount_minor"))):
            moved.setdefault(r["customer_id"], {})[r["kind"]] = int(r["s"])
        ids = sorted({c for c, v in before.items() if v} | set(moved))
        page = ids[offset: offset + limit]
        names = dict(Customer.objects.using(scope.database).filter(pk__in=page)
                     .values_list("pk", "name"))
        day_rows = DailyTotal.objects.using(scope.database).filter(
            organization=scope.organization, code="customer_credit",
            business_date__lte=scope.end)
        if scope.center is not None:
            day_rows = day_rows.filter(center=scope.center)
        opening_total = -int(day_rows.filter(business_date__lt=scope.start)
                             .aggregate(s=Sum("amount_minor"))["s"] or 0)
        by_kind = {r["kind"]: int(r["s"]) for r in day_rows.filter(
            business_date__gte=scope.start).values("kind").annotate(s=Sum("amount_minor"))}
    rows = [{"customer": str(c), "name": names.get(c, ""),
             **_credit_figures(moved.get(c, {}), before.get(c, 0))} for c in page]
    return {"rows": rows, "totals": _credit_figures(by_kind, opening_total),
            "count": len(ids)}
