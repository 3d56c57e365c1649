"""`kassa verify`: the reports' per-day totals reconcile with the postings, and the reports'
totals with the accounts' balances. Set-based (see kassa/ledger/verify.py): the per-day totals
are compared with the postings' sums in the database a window of days at a time, over the
postings' (center, business_date, code) index."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection

from kassa.ledger.models import TENDER_CODES
from kassa.ledger.verify import Run, base_params, check, fetch
from kassa.tenancy.models import Organization


def _days(org: Organization) -> str:
    """SQL: the postings of the organization's centers on the days %(a)s … %(b)s. The centers
    are named as constants, so that PostgreSQL reads the postings' (center, business_date,
    code) index for all of them into one bitmap and each page of the window's postings once
    (a sub-select of the centers reads the pages once per center)."""
    centers = [int(pk) for (pk,) in fetch(
        "SELECT id FROM tenancy_center WHERE organization_id = %(org)s ORDER BY id",
        {"org": org.pk})]
    return f"""p.organization_id = %(org)s
          AND p.center_id IN ({", ".join(map(str, centers)) or "NULL"})
          AND p.business_date BETWEEN %(a)s AND %(b)s"""


def _span(org: Organization, run: Run) -> tuple[dt.date, dt.date] | None:
    """The first and last business day with an entry or a per-day total (with `since`, from
    that day on)."""
    params = base_params(org, run)
    days: list[Any] = []
    for table in ("ledger_journalentry", "ledger_dailytotal"):
        days.extend(fetch(f"SELECT MIN(business_date), MAX(business_date) FROM {table} "
                          "WHERE organization_id = %(org)s", params)[0])
    found = [d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in days if d]
    if not found:
        return None
    first = max(min(found), run.since) if run.since else min(found)
    return (first, max(found)) if first <= max(found) else None


def _windows(org: Organization, run: Run,
             span: tuple[dt.date, dt.date] | None) -> Iterator[dict[str, Any]]:
    """Windows of whole days of `span`: `run.batch` / 100 of them, at most a month (a hundred
    per-day rows a day, and a window's postings sorted in the server's work_mem)."""
    if span is None:
        return
    first, last = span
    width = dt.timedelta(days=max(1, min(31, run.batch // 100)))
    params = base_params(org, run)
    start, total = first, (last - first).days + 1
    while start <= last:
        end = min(start + width - dt.timedelta(days=1), last)
        yield {**params, "a": connection.ops.adapt_datefield_value(start),
               "b": connection.ops.adapt_datefield_value(end)}
        done = (end - first).days + 1
        run.checked["business days"] = max(run.checked.get("business days", 0), done)
        if run.progress:
            run.progress(run.current, done, total)
        start = end + dt.timedelta(days=1)


@check
def daily_totals_agree_with_postings(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    # One read of the window's postings gives both the per-day groups that disagree and each
    # account code's movement (for `reports_reconcile_with_balances`, which runs next and
    # would otherwise read every posting again): the groups are computed once (MATERIALIZED,
    # on both databases) and read twice. The postings are grouped before they meet the kept
    # rows (a few thousand groups a window, in memory), not sorted with them row by row.
    sql = f"""
        WITH g AS MATERIALIZED (
            SELECT center_id, business_date, code, kind, SUM(kept_rows) AS kept_rows,
                   SUM(kept_s) AS kept_s, SUM(kept_n) AS kept_n, SUM(posted_n) AS posted_n,
                   SUM(posted_s) AS posted_s
            FROM (
                SELECT t.center_id, t.business_date, t.code, t.kind, 1 AS kept_rows,
                       t.amount_minor AS kept_s, t.postings AS kept_n, 0 AS posted_n,
                       0 AS posted_s
                FROM ledger_dailytotal t
                WHERE t.organization_id = %(org)s AND t.business_date BETWEEN %(a)s AND %(b)s
                UNION ALL
                SELECT p.center_id, p.business_date, p.code, p.kind, 0, 0, 0, COUNT(*),
                       SUM(p.amount_minor)
                FROM ledger_posting p WHERE {_days(org)}
                GROUP BY p.center_id, p.business_date, p.code, p.kind
            ) AS u
            GROUP BY center_id, business_date, code, kind
        )
        SELECT 0 AS part, center_id, business_date, code, kind, kept_rows, kept_s, kept_n,
               posted_n, posted_s
        FROM g WHERE kept_s <> posted_s OR kept_n <> posted_n
        UNION ALL
        SELECT 1, NULL, NULL, code, NULL, 0, 0, 0, 0, SUM(posted_s) FROM g GROUP BY code
        ORDER BY 1, 3, 2, 4, 5"""
    moved: dict[str, int] = {}
    span = _span(org, run)
    for params in _windows(org, run, span):
        for part, center, day, code, kind, kept_rows, kept_s, kept_n, posted_n, posted_s in (
                fetch(sql, params)):
            if part:
                moved[code] = moved.get(code, 0) + int(posted_s or 0)
                continue
            kept = (kept_s, kept_n) if kept_rows else None
            posted = (posted_s, posted_n) if posted_n else None
            yield (f"daily totals of center {center} on {day}, {code} by {kind}: kept "
                   f"{kept}, the postings say {posted}")
    run.moved[org.pk] = (span, moved)


@check(follows=True)
def reports_reconcile_with_balances(org: Organization, run: Run | None = None) -> Iterable[str]:
    """Over all time (with `since`: over the days since), the reports' figures must equal the
    accounts' balances (their movements). Both read the default database: a reports replica
    may lag behind it."""
    from kassa.reports.selectors import Scope, daily, package_liability, revenue

    run = run or Run()
    span = _span(org, run)
    if span is None:
        return
    # The movements by code over the span, from the per-day pass just run when there is one
    # over the same span (every posting read once), else summed here.
    span_moved = run.moved.pop(org.pk, None)
    if span_moved is not None and span_moved[0] == span:
        moved: dict[str, Any] = span_moved[1]
    else:
        params = {**base_params(org, run), "a": connection.ops.adapt_datefield_value(span[0]),
                  "b": connection.ops.adapt_datefield_value(span[1])}
        moved = dict(fetch(f"SELECT p.code, SUM(p.amount_minor) FROM ledger_posting p "
                           f"WHERE {_days(org)} GROUP BY p.code", params))
    run.checked["business days"] = max(run.checked.get("business days", 0),
                                       (span[1] - span[0]).days + 1)

    def account(code: str) -> int:
        return int(moved.get(code) or 0)

    scope = Scope(org, None, span[0], span[1], database=DEFAULT_DB_ALIAS)
    figures = daily(scope)
    tenders = sum(account(c) for c in TENDER_CODES)
    if figures["collections"]["net"] != tenders:
        yield f"collections net {figures['collections']['net']} ≠ tender balances {tenders}"
    if figures["tax"]["net"] != -account("tax_payable"):
        yield f"tax net {figures['tax']['net']} ≠ tax payable {-account('tax_payable')}"
    income = revenue(scope)
    expected = -sum(account(c) for c in ("revenue_service", "revenue_product",
                                         "revenue_redemption", "revenue_forfeit", "revenue_fee"))
    if income["total"] != expected:
        yield f"revenue total {income['total']} ≠ revenue accounts {expected}"
    liability = package_liability(scope, limit=1)["totals"]
    movement = liability["closing"] - liability["opening"]
    if movement != -account("package_liability"):
        yield (f"package liability closing {liability['closing']} ≠ the account's balance "
               f"{liability['opening'] - account('package_liability')}")
    if run.since is None and liability["opening"] != 0:
        yield f"package liability opening before the first posting is {liability['opening']}"
