"""The audit log's hash chain: how a link is computed, and the check that recomputes it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from kassa.audit.models import GENESIS, AuditChain, AuditEntry


def _at(value: dt.datetime) -> str:
    # UTC to the microsecond, so SQLite and PostgreSQL give the same text back.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(fields: Mapping[str, Any]) -> str:
    row = {"seq": fields["seq"], "at": _at(fields["at"]), "actor": fields["actor_id"],
           "action": fields["action"], "object": fields["object"], "detail": fields["detail"]}
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def digest(previous: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the row (seq, at, actor, action, object, detail),
    as canonical JSON."""
    return hashlib.sha256(f"{previous}\n{_canonical(fields)}".encode()).hexdigest()


def body(fields: Mapping[str, Any]) -> str:
    """The row's canonical JSON up to its `seq` (the last key, the keys sorted), to which the
    database's link (migration audit 0003, PostgreSQL) appends the seq it gives and "}", and
    hashes as `digest` does."""
    text = _canonical({**fields, "seq": 0})
    assert text.endswith('"seq":0}'), "seq is the last key of the canonical row"
    return text[:-2]


def broken_links(organization_id: int, *, batch: int = 5000) -> Iterator[str]:
    """Walk the organization's chain in `seq` order, recomputing each hash; yield a line for
    the first link that does not hold (and stop there: every later one follows from it), and
    one if the head does not name the last entry."""
    previous, expected_seq = GENESIS, 1
    last = 0
    while True:
        rows = list(AuditEntry.objects.filter(organization_id=organization_id, seq__gt=last)
                    .order_by("seq")[:batch]
                    .values("id", "seq", "at", "actor_id", "action", "object", "detail",
                            "hash"))
        for row in rows:
            if row["seq"] != expected_seq:
                yield (f"audit entry {row['id']} (#{row['seq']}): the chain is broken before "
                       f"it, entry #{expected_seq} is missing")
                return
            if digest(previous, row) != row["hash"]:
                yield (f"audit entry {row['id']} (#{row['seq']}, {row['action']} "
                       f"{row['object']}): its hash does not match its contents and the hash "
                       "before it — the first broken link")
                return
            previous, expected_seq, last = row["hash"], expected_seq + 1, row["seq"]
        if len(rows) < batch:
            break
    head = AuditChain.objects.filter(organization_id=organization_id).first()
    if head is not None and (head.seq, head.hash) != (last, previous):
        yield (f"audit log: the chain's head says entry #{head.seq} is last, the entries end "
               f"at #{last}")
