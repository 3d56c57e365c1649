"""`kassa verify`: the reports' per-day totals reconcile with the postings, and the reports'
totals with the accounts' balances."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Max, Min, Sum

from kassa.ledger.models import DailyTotal, Posting
from kassa.ledger.verify import check
from kassa.tenancy.models import Organization


@check
def daily_totals_agree_with_postings(org: Organization) -> Iterable[str]:
    kept = {(r["center_id"], r["business_date"], r["code"], r["kind"]): (r["s"], r["n"])
            for r in DailyTotal.objects.filter(organization=org)
            .values("center_id", "business_date", "code", "kind")
            .annotate(s=Sum("amount_minor"), n=Sum("postings"))}
    actual = {(r["center_id"], r["business_date"], r["code"], r["kind"]): (r["s"], r["n"])
              for r in Posting.objects.filter(organization=org)
              .values("center_id", "business_date", "code", "kind")
              .annotate(s=Sum("amount_minor"), n=Count("id"))}
    for key in sorted(set(kept) | set(actual), key=str):
        if kept.get(key, (0, 0)) != actual.get(key, (0, 0)):
            center, day, code, kind = key
            yield (f"daily totals of center {center} on {day}, {code} by {kind}: kept "
                   f"{kept.get(key)}, the postings say {actual.get(key)}")


@check
def reports_reconcile_with_balances(org: Organization) -> Iterable[str]:
    """Over all time, the reports' figures must equal the accounts' balances. Both read the
    default database: a reports replica may lag behind it."""
    from kassa.reports.selectors import Scope, daily, package_liability, revenue

    span = Posting.objects.filter(organization=org).aggregate(a=Min("business_date"),
                                                              b=Max("business_date"))
    if span["a"] is None:
        return
    scope = Scope(org, None, span["a"], span["b"], database=DEFAULT_DB_ALIAS)

    def account(code: str) -> int:
        return int(Posting.objects.filter(organization=org, code=code)
                   .aggregate(s=Sum("amount_minor"))["s"] or 0)

    figures = daily(scope)
    tenders = sum(account(c) for c in ("cash", "check", "card", "ach", "insurance", "other"))
    if figures["collections"]["net"] != tenders:
        yield f"collections net {figures['collections']['net']} ≠ tender balances {tenders}"
    if figures["tax"]["net"] != -account("tax_payable"):
        yield f"tax net {figures['tax']['net']} ≠ tax payable {-account('tax_payable')}"
    income = revenue(scope)
    expected = -sum(account(c) for c in ("revenue_service", "revenue_product",
                                         "revenue_redemption", "revenue_forfeit"))
    if income["total"] != expected:
        yield f"revenue total {income['total']} ≠ revenue accounts {expected}"
    liability = package_liability(scope, limit=1)["totals"]
    if liability["closing"] != -account("package_liability"):
        yield (f"package liability closing {liability['closing']} ≠ the account's balance "
               f"{-account('package_liability')}")
    if liability["opening"] != 0:
        yield f"package liability opening before the first posting is {liability['opening']}"
