"""Reading the journal: balances of an account code over a sub-ledger."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from kassa.ledger.models import Posting


def balance(code: str, **filters: Any) -> int:
    """Debit-positive balance of one account code, over the postings that match `filters`."""
    total = Posting.objects.filter(code=code, **filters).aggregate(s=Sum("amount_minor"))["s"]
    return int(total or 0)


def balances_by(group: str, code: str, **filters: Any) -> dict[Any, int]:
    """Balance of one account code per value of `group` (e.g. per invoice_id), in one query."""
    rows = (
        Posting.objects.filter(code=code, **filters)
        .values(group).annotate(s=Sum("amount_minor")).values_list(group, "s")
    )
    return {key: int(total or 0) for key, total in rows}
