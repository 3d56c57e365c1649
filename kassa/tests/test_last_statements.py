"""What a money transaction does last, and why it matters: the rows every write of an
organization or a center waits on are locked by its last statements, after the answer is
rendered and stored, so that the next refund waits for as short a time as there is."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import Tenant
from kassa.audit.models import AuditEntry
from kassa.core.models import IdempotentRequest

REFUND = {"type": "offline", "method": "cash", "amount": "5.00", "reason": "Asked for it"}


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def first(sql: list[str], *words: str) -> int:
    return next(n for n, s in enumerate(sql) if all(w in s for w in words))


@pytest.mark.django_db(transaction=True)
def test_a_keyed_refund_takes_the_audit_chain_after_storing_its_answer(tenant: Tenant) -> None:
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    tenant.api.post(f"/payments/{payment['id']}/refunds", REFUND)  # today's rows exist
    with CaptureQueriesContext(connection) as captured:
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", REFUND, key="last-1")
    assert r.status_code == 201, r.content
    sql = statements(captured)
    answer = first(sql, "UPDATE", "core_idempotentrequest")
    days = first(sql, "INSERT INTO ledger_dailytotal")
    chain = first(sql, "audit_auditchain")  # the head's lock (FOR UPDATE on PostgreSQL)
    assert answer < days < chain, sql[answer:]
    # From the chain's lock to the commit: its entries and its move, nothing else.
    tail = sql[chain + 1:]
    assert len(tail) == 3, tail
    assert tail[0].startswith('INSERT INTO "audit_auditentry"'), tail
    assert tail[1].startswith("UPDATE audit_auditchain") and tail[2] == "COMMIT", tail
    stored: Any = IdempotentRequest.objects.get(key="last-1")
    assert stored.status_code == 201 and bytes(stored.body) == r.content
    assert AuditEntry.objects.filter(action="refund.created").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_keyed_refund_refused_writes_neither_answer_nor_audit_entry(tenant: Tenant) -> None:
    payment = tenant.pay(tenant.invoice()["id"], "10.00")
    entries = AuditEntry.objects.count()
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {**REFUND, "amount": "50.00"},
                        key="last-2")
    assert r.status_code == 422, r.content
    assert AuditEntry.objects.count() == entries
    # A refusal is stored as the key's answer in a transaction of its own (no money moved).
    again = tenant.api.post(f"/payments/{payment['id']}/refunds", {**REFUND, "amount": "50.00"},
                            key="last-2")
    assert again.status_code == 422 and again.content == r.content
    assert AuditEntry.objects.count() == entries
