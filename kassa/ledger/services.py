"""Writing to the journal: `post` one balanced entry, `reverse` one.

Callers are the money services, inside their own transaction: the entry is written with the
business rows it explains, or not at all.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from kassa.core import batch, rows
from kassa.core.locks import at_end
from kassa.ledger.models import (
    DAILY_TOTAL_SLOTS,
    Account,
    AccountCode,
    DailyTotal,
    JournalEntry,
    Posting,
)
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
    forget_chart(center.pk)
    Account.objects.bulk_create(
        [Account(organization_id=center.organization_id, center=center, code=code)
         for code in AccountCode.values],
        ignore_conflicts=True,
    )


# A center's chart of accounts, {code: account id}, kept by each process once read whole and
# committed: accounts are opened with their center and never change or go, and committed ids
# are never reused, so a kept chart cannot go stale. It is kept only once the transaction that
# read it commits: accounts opened in a transaction that rolls back (their ids handed out again
# on SQLite) are never kept. Creating a center forgets what was kept under its id.
_CHARTS: dict[int, dict[str, int]] = {}
_CHARTS_LOCK = threading.Lock()


def forget_chart(center_id: int | None = None) -> None:
    with _CHARTS_LOCK:
        if center_id is None:
            _CHARTS.clear()
        else:
            _CHARTS.pop(center_id, None)


def _chart(center: Center) -> dict[str, int]:
    kept = _CHARTS.get(center.pk)
    if kept is not None:
        return kept
    chart = dict(Account.objects.filter(center=center).values_list("code", "pk"))
    if len(chart) < len(AccountCode.values):
        open_accounts(center)
        chart = dict(Account.objects.filter(center=center).values_list("code", "pk"))
    transaction.on_commit(lambda: _keep_chart(center.pk, chart))
    return chart


def _keep_chart(center_id: int, chart: dict[str, int]) -> None:
    with _CHARTS_LOCK:
        _CHARTS[center_id] = chart


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
    entry = open_entry(organization=organization, center=center, kind=kind,
                       created_by=created_by, at=at, reverses=reverses, memo=memo)
    add_postings(entry, lines)
    return entry


def open_entry(**entry: Any) -> JournalEntry:
    """The entry's row (`new_entry`'s, whose keywords it takes), inserted now, before its
    postings: for a use case whose business row points at its entry (a returned check's) and
    is pointed at by the postings, so that each row is written once, never inserted and then
    updated. `add_postings` completes it in the same transaction."""
    row = new_entry(**entry)
    rows.insert([row])
    return row


def new_entry(
    *,
    organization: Organization,
    center: Center,
    kind: str,
    created_by: Any = None,
    at: dt.datetime | None = None,
    reverses: JournalEntry | None = None,
    memo: str = "",
) -> JournalEntry:
    """`open_entry`'s row, not yet inserted: for a business row that points at its entry and
    inserts it along with itself (`kassa.core.rows.insert_linked`, one statement)."""
    assert transaction.get_connection().in_atomic_block, "post() belongs inside a money transaction"
    at = at or timezone.now()
    return JournalEntry(
        organization=organization, center=center, kind=kind, memo=memo[:300],
        business_date=business_date(organization, at), created_at=at, created_by=created_by,
        reverses=reverses,
    )


def add_postings(entry: JournalEntry, lines: list[Line]) -> None:
    """The entry's postings (one statement) and its share of the day totals."""
    lines = [line for line in lines if line.amount_minor != 0]
    assert lines, f"an entry of kind {entry.kind} with no postings"
    assert sum(line.amount_minor for line in lines) == 0, (
        f"unbalanced entry {entry.kind}: {lines}")
    accounts = _chart(entry.center)
    rows.insert(
        [
            Posting(
                entry=entry, account_id=accounts[line.code],
                organization_id=entry.organization_id, center_id=entry.center_id,
                code=line.code, kind=entry.kind, business_date=entry.business_date,
                amount_minor=line.amount_minor, **line.refs,
            )
            for line in lines
        ], returning=False,
    )
    _add_to_daily_totals(entry.organization_id, entry.center_id, entry.business_date,
                         entry.kind, lines)


DayKey = tuple[int, int, dt.date, str, str]  # organization, center, day, code, kind


def _add_to_daily_totals(organization_id: int, center_id: int, day: dt.date, kind: str,
                         lines: list[Line]) -> None:
    """Add the entry's sums to DailyTotal. Inside a money transaction they are gathered and
    written as its last statement (`at_end`): every entry of a center's day upserts the same
    rows, so their locks are held from that statement to the commit only, and the entries of
    one transaction cost one statement. Elsewhere they are written now."""
    pending: dict[DayKey, list[int]] | None = at_end("ledger.daily_totals", dict,
                                                     _write_daily_totals)
    sums = pending if pending is not None else {}
    for line in lines:
        total = sums.setdefault((organization_id, center_id, day, line.code, kind), [0, 0])
        total[0] += line.amount_minor
        total[1] += 1
    if pending is None:
        _write_daily_totals(sums)


def daily_total_slot() -> int:
    """The stripe of the day totals this connection writes (DailyTotal.slot): PostgreSQL's
    backend process id, known to the driver without a query, so that the server's
    connections spread over the slots and each keeps to its own. SQLite runs one writer at a
    time: one slot."""
    if connection.vendor != "postgresql":
        return 0
    connection.ensure_connection()
    return int(connection.connection.info.backend_pid) % DAILY_TOTAL_SLOTS


def _write_daily_totals(sums: dict[DayKey, list[int]]) -> None:
    """One upsert of every row, into this connection's slot, in a fixed order of rows so that
    concurrent transactions lock them in the same order and never deadlock on them."""
    if not sums:
        return
    table = DailyTotal._meta.db_table  # our own table's name; every value is a parameter
    rows = sorted(sums.items())
    slot = daily_total_slot()
    sql = (
        f"INSERT INTO {table} (organization_id, center_id, business_date, code, kind, "  # noqa: S608
        "amount_minor, postings, slot) VALUES "
        + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        + " ON CONFLICT (organization_id, center_id, business_date, code, kind, slot) "
        f"DO UPDATE SET amount_minor = {table}.amount_minor + excluded.amount_minor, "
        f"postings = {table}.postings + excluded.postings"
    )
    batch.hold(sql, [value for key, (amount, count) in rows
                     for value in (*key, amount, count, slot)], writes=table, changes=True)


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
