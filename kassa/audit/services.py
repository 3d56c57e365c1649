"""`record`: the one way any app writes the audit log.

    from kassa.audit.services import record
    record(organization_id=refund.organization_id, actor=actor.user, action="refund.created",
           object=f"refund:{refund.pk}", detail={"amount": "40.00", "payment": 7})

It is called inside the transaction of the write (asserted), so the entry commits with the
write or not at all. Inside a money transaction (`kassa.core.locks.money_transaction`) the
entries gather and are appended last, just before the commit (`core.locks.at_end`): one lock
of the organization's chain head, one INSERT of every entry, one UPDATE of the head — three
statements per transaction however many entries it records, and the head is held only from
there to the commit. Outside one (a plain atomic block, or one nested in it) they are
appended at once, the same three statements.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from kassa.audit.chain import body, digest
from kassa.audit.models import GENESIS, AuditChain, AuditEntry
from kassa.core import batch, rows
from kassa.core.locks import at_end, audit_chain_locked_by_the_database, lock_audit_chain


@dataclass(frozen=True)
class Pending:
    organization_id: int
    at: dt.datetime
    actor_id: int | None
    action: str
    object: str
    detail: dict[str, Any]


def record(*, organization_id: int, actor: Any | None, action: str, object: str,
           detail: dict[str, Any] | None = None) -> None:
    """Append one entry to the organization's audit log, in the caller's transaction.
    `actor`: the user (or their id; None for the system); `object`: "kind:id"; `detail`: what
    the write was, in JSON (money as the API shows it)."""
    assert transaction.get_connection().in_atomic_block, (
        "record inside the transaction of the write, so the entry commits with it")
    assert action and "." in action, f"an action is 'noun.verb', not {action!r}"
    actor_id = getattr(actor, "pk", actor)
    entry = Pending(organization_id, timezone.now(), actor_id, action, object, detail or {})
    gathered = at_end("audit.record", list, append)
    if gathered is None:
        append([entry])
    else:
        gathered.append(entry)


def append(entries: list[Pending]) -> None:
    for organization_id in sorted({e.organization_id for e in entries}):
        mine = [e for e in entries if e.organization_id == organization_id]
        if batch.holding():
            _linked_by_the_database(organization_id, mine)
            continue
        head = lock_audit_chain(organization_id)
        if head is None:  # the organization's first entry: make its head, then lock it
            AuditChain.objects.bulk_create([AuditChain(organization_id=organization_id)],
                                           ignore_conflicts=True)
            head = lock_audit_chain(organization_id)
            assert head is not None
        seq, previous = head.seq, head.hash or GENESIS
        written = []
        for e in mine:
            seq += 1
            fields = {"seq": seq, "at": e.at, "actor_id": e.actor_id, "action": e.action,
                      "object": e.object, "detail": e.detail}
            previous = digest(previous, fields)
            written.append(AuditEntry(organization_id=organization_id, hash=previous, **fields))
        rows.insert(written, returning=False)
        table = AuditChain._meta.db_table  # our table's name; the values are parameters
        batch.hold(f"UPDATE {table} SET seq = %s, hash = %s WHERE id = %s",  # noqa: S608
                   [seq, previous, head.pk], writes=table, changes=True)


_ENTRIES = AuditEntry._meta.db_table  # our own tables' names; every value is a parameter
_CHAIN = AuditChain._meta.db_table
_ROW = "(%s::bigint, %s::timestamptz, %s::bigint, %s::varchar, %s::varchar, %s::jsonb, {n})"


def _linked_by_the_database(organization_id: int, mine: list[Pending]) -> None:
    """Inside a money transaction on PostgreSQL: the entries and their links in one statement,
    held to go with the commit (kassa.core.batch). The database function (migration audit
    0003) locks the chain's head, links each entry as `digest` would and moves the head; so
    the head, which every write of the organization waits on, is held only while the server
    runs that statement and the commit — no round trip to the client between (issue 17)."""
    audit_chain_locked_by_the_database()
    detail = AuditEntry._meta.get_field("detail")
    values, params, bodies = [], [], []
    for n, e in enumerate(mine, start=1):
        values.append(_ROW.format(n=n))
        params += [organization_id, e.at, e.actor_id, e.action, e.object,
                   detail.get_db_prep_save(e.detail, connection)]
        bodies.append(body({"at": e.at, "actor_id": e.actor_id, "action": e.action,
                            "object": e.object, "detail": e.detail}))
    sql = (f"INSERT INTO {_ENTRIES} (organization_id, seq, at, actor_id, action, object, "  # noqa: S608
           "detail, hash) SELECT v.org, l.link_seq, v.at, v.actor, v.action, v.object, v.detail, "
           f"l.link_hash FROM (VALUES {', '.join(values)}) AS v(org, at, actor, action, object, "
           "detail, n) JOIN kassa_audit_link(%s::bigint, %s::text[]) WITH ORDINALITY "
           "AS l(link_seq, link_hash, n) USING (n)")
    # First: the chain's head is the last lock of the order, so it is taken before the day
    # totals held with it (kassa.core.locks._LAST).
    batch.hold(sql, [*params, organization_id, bodies], writes=(_ENTRIES, _CHAIN), changes=True,
               first=True)
