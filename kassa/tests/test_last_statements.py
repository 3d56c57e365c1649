"""What a money transaction does last, and why it matters: the rows every write of an
organization or a center waits on are locked by its last statements, after the answer is
rendered and stored, so that the next refund waits for as short a time as there is."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import Tenant
from kassa.audit.models import AuditEntry
from kassa.core.models import IdempotentRequest

REFUND = {"type": "offline", "method": "cash", "amount": "5.00", "reason": "Asked for it"}


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def first(sql: list[str], *words: str) -> int:
    return next(n for n, s in enumerate(sql) if all(w in s for w in words))


def runs_first(statement: str, word: str) -> bool:
    """Whether the audit link is the statement's main query, which PostgreSQL runs before the
    WITH queries it does not read: kassa.core.batch writes the main query last, and the link's
    INSERT ends with its join on the function's rows."""
    assert word == "kassa_audit_link"
    return statement.rstrip().endswith("AS l(link_seq, link_hash, n) USING (n)")


@pytest.mark.django_db(transaction=True)
def test_a_keyed_refund_takes_the_audit_chain_after_storing_its_answer(tenant: Tenant) -> None:
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    tenant.api.post(f"/payments/{payment['id']}/refunds", REFUND)  # today's rows exist
    with CaptureQueriesContext(connection) as captured:
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", REFUND, key="last-1")
    assert r.status_code == 201, r.content
    sql = statements(captured)
    answer = first(sql, "UPDATE", "core_idempotentrequest")
    if connection.vendor == "postgresql":
        # One statement and the COMMIT, in one round trip: the entries linked by the database
        # (its main query, run first: the chain's lock) with the stored answer and the day
        # totals as WITH queries, run after it (kassa.core.batch).
        last = first(sql, "kassa_audit_link")
        assert answer == last and sql[last + 1:] == ["COMMIT"], sql[last:]
        assert "INSERT INTO ledger_dailytotal" in sql[last]
        assert runs_first(sql[last], "kassa_audit_link"), sql[last]
    else:
        # From the chain's lock to the commit: its entries, its move and the day totals.
        chain = first(sql, "audit_auditchain")
        days = first(sql, "INSERT INTO ledger_dailytotal")
        assert answer <= chain < days, sql[answer:]
        tail = sql[chain + 1:]
        writes = ['INSERT INTO "audit_auditentry"', "UPDATE audit_auditchain",
                  "INSERT INTO ledger_dailytotal"]
        assert len(tail) == 4 and tail[3] == "COMMIT", tail
        assert all(tail[n].startswith(w) for n, w in enumerate(writes)), tail
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


# --- the mechanism, as kassa.idempotency drives it ------------------------------------------

def cash_sale(tenant: Tenant, amount: int) -> None:
    from kassa.audit.services import record
    from kassa.ledger.services import credit, debit, post
    from kassa.tenancy.models import Center

    center = Center.objects.get(pk=tenant.center_id)
    post(organization=tenant.organization, center=center, kind="payment_received",
         lines=[debit("cash", amount), credit("receivable", amount)])
    record(organization_id=tenant.organization.pk, actor=None, action="test.sale",
           object="sale:1", detail={"amount": amount})


class Claimed:
    """A transaction as the middleware runs a claimed request: its work, then `flush_later`."""

    def __enter__(self) -> Claimed:
        from kassa.core.locks import claim_begins

        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        connection.kassa_claim_transaction = True
        claim_begins()
        return self

    def __exit__(self, *exc: Any) -> None:
        from kassa.core.locks import flush_later, forget_later

        try:
            if exc[0] is None:
                flush_later()
        finally:
            connection.kassa_claim_transaction = False
            forget_later()
            self.atomic.__exit__(*exc)


def day_totals(tenant: Tenant) -> int:
    from kassa.ledger.models import DailyTotal

    return sum(DailyTotal.objects.filter(organization=tenant.organization)
               .values_list("postings", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_use_case_directly_in_the_claim_leaves_its_last_work_for_the_end(
        tenant: Tenant) -> None:
    from kassa.core.locks import money_transaction

    with CaptureQueriesContext(connection) as captured, Claimed():
        with money_transaction():
            cash_sale(tenant, 100)
        with money_transaction():  # a second use case of the same request
            cash_sale(tenant, 200)
        assert day_totals(tenant) == 0, "nothing of the last work before the end"
    sql = statements(captured)
    days = [n for n, s in enumerate(sql) if "INSERT INTO ledger_dailytotal" in s]
    # The audit chain locked before any day total is written, with two use cases too (on
    # PostgreSQL by the main query of the statement that carries each use case's day totals).
    assert len(days) == 2, sql  # one upsert of each use case's
    if connection.vendor == "postgresql":
        chains = [n for n, s in enumerate(sql) if "kassa_audit_link" in s]
        assert chains and min(chains) <= min(days), sql
        assert min(chains) < min(days) or runs_first(sql[min(days)], "kassa_audit_link"), sql
    else:
        chains = [n for n, s in enumerate(sql) if "audit_auditchain" in s]
        assert chains and min(chains) < min(days), sql
    assert day_totals(tenant) == 4
    assert AuditEntry.objects.filter(action="test.sale").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_use_case_in_a_savepoint_of_the_claim_takes_its_last_work_with_its_rollback(
        tenant: Tenant) -> None:
    from kassa.core.locks import money_transaction

    with Claimed():
        with money_transaction():
            cash_sale(tenant, 100)
        try:
            with transaction.atomic():  # a savepoint around a use case that completes …
                with money_transaction():
                    cash_sale(tenant, 777)
                raise RuntimeError("… and then rolls back with it")
        except RuntimeError:
            pass
    # The rolled-back sale left neither day totals nor an audit entry; the first one both.
    assert day_totals(tenant) == 2
    assert AuditEntry.objects.filter(action="test.sale").count() == 1
    from kassa.ledger.verify import verify
    assert verify(tenant.organization) == []


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_rolls_back_drops_the_last_work(tenant: Tenant) -> None:
    from kassa.core.locks import money_transaction

    with pytest.raises(RuntimeError), Claimed():
        with money_transaction():
            cash_sale(tenant, 100)
        raise RuntimeError("the answer was a refusal")
    assert getattr(connection, "kassa_at_end_later", None) is None
    assert day_totals(tenant) == 0 and not AuditEntry.objects.filter(action="test.sale")
