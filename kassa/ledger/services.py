"""Writing to the journal: `post` one balanced entry, `reverse` one.

Callers are the money services, inside their own transaction: the entry is written with the
business rows it explains, or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from kassa.ledger.models import Account, AccountCode, DailyTotal, JournalEntry, Posting
from kassa.tenancy.models import Center, Organization


@dataclass(frozen=True)
class Line:
    """One posting to be: an account code, a signed amount (debit +), what it concerns."""

    code: str
    amount_minor: int
    refs: dict[str, Any] = field(default_factory=dict)


def debit(code: str, amount_minor: int, **refs: Any) -> Line:
    return Line(code, amount_minor, refs)


def credit(code: str, amount_minor: int, **refs: Any) -> Line:
    return Line(code, -amount_minor, refs)


def business_date(organization: Organization, at: dt.datetime) -> dt.date:
    return at.astimezone(ZoneInfo(organization.timezone)).date()


def open_accounts(center: Center) -> None:
    """The chart of accounts of one center; called when the center is created."""
    Account.objects.bulk_create(
        [Account(organization_id=center.organization_id, center=center, code=code)
         for code in AccountCode.values],
        ignore_conflicts=True,
    )


def post(
    *,
    organization: Organization,
    center: Center,
    kind: str,
    lines: list[Line],
    created_by: Any = None,
    at: dt.datetime | None = None,
    reverses: JournalEntry | None = None,
    memo: str = "",
) -> JournalEntry:
    assert transaction.get_connection().in_atomic_block, "post() belongs inside a money transaction"
    lines = [line for line in lines if line.amount_minor != 0]
    assert lines, f"an entry of kind {kind} with no postings"
    assert sum(line.amount_minor for line in lines) == 0, f"unbalanced entry {kind}: {lines}"
    at = at or timezone.now()
    day = business_date(organization, at)
    accounts = {a.code: a for a in Account.objects.filter(center=center)}
    if len(accounts) < len(AccountCode.values):
        open_accounts(center)
        accounts = {a.code: a for a in Account.objects.filter(center=center)}
    entry = JournalEntry.objects.create(
        organization=organization, center=center, kind=kind, memo=memo[:300],
        business_date=day, created_at=at, created_by=created_by, reverses=reverses,
    )
    Posting.objects.bulk_create(
        [
            Posting(
                entry=entry, account=accounts[line.code], organization=organization,
                center=center, code=line.code, kind=kind, business_date=day,
                amount_minor=line.amount_minor, **line.refs,
            )
            for line in lines
        ]
    )
    _add_to_daily_totals(organization.pk, center.pk, day, kind, lines)
    return entry


def _add_to_daily_totals(organization_id: int, center_id: int, day: dt.date, kind: str,
                         lines: list[Line]) -> None:
    """Upsert the entry's sums into DailyTotal, in a fixed order of rows so that concurrent
    transactions lock them in the same order and never deadlock on them."""
    sums: dict[str, list[int]] = {}
    for line in lines:
        total = sums.setdefault(line.code, [0, 0])
        total[0] += line.amount_minor
        total[1] += 1
    table = DailyTotal._meta.db_table  # our own table's name; every value is a parameter
    sql = (
        f"INSERT INTO {table} (organization_id, center_id, business_date, code, kind, "  # noqa: S608
        "amount_minor, postings) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (organization_id, center_id, business_date, code, kind) DO UPDATE SET "
        f"amount_minor = {table}.amount_minor + excluded.amount_minor, "
        f"postings = {table}.postings + excluded.postings"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [
            (organization_id, center_id, day, code, kind, amount, count)
            for code, (amount, count) in sorted(sums.items())
        ])


def reverse(
    entry: JournalEntry, *, kind: str | None = None, created_by: Any = None,
    at: dt.datetime | None = None, organization: Organization | None = None,
    center: Center | None = None,
) -> JournalEntry:
    """A new entry that undoes `entry` posting by posting, dated when the reversal happens.

    Its kind is the original's with `_reversed`, so that the reports count a reversal against
    what it reverses (a failed refund's payout comes back to the tender it left). A caller that
    has the entry's organization and center at hand passes them, saving their reads."""
    organization = organization or entry.organization
    center = center or entry.center
    assert (organization.pk, center.pk) == (entry.organization_id, entry.center_id)
    kind = kind or f"{entry.kind}_reversed"
    postings = list(entry.postings.all())
    ref_fields = [f.attname for f in Posting._meta.concrete_fields
                  if f.is_relation and f.name not in {
                      "entry", "account", "organization", "center"}]
    lines = [
        Line(p.code, -p.amount_minor,
             {name.removesuffix("_id") + "_id": getattr(p, name) for name in ref_fields
              if getattr(p, name) is not None})
        for p in postings
    ]
    return post(
        organization=organization, center=center, kind=kind, lines=lines,
        created_by=created_by, at=at, reverses=entry, memo=f"reverses #{entry.pk}",
    )
