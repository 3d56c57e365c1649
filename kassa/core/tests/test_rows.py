"""kassa.core.rows reads and writes exactly what the ORM would, on both databases."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import Model
from django.db.utils import OperationalError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import Tenant
from kassa.audit.models import AuditEntry
from kassa.billing.models import Invoice, Payment, PaymentEvent
from kassa.core import rows
from kassa.ledger.models import JournalEntry
from kassa.refunds.models import Refund
from kassa.tenancy.models import Center


def values(obj: Model, *, but: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields
            if f.attname not in but}


def refunded(tenant: Tenant) -> tuple[dict[str, Any], dict[str, Any]]:
    invoice = tenant.invoice({"kind": "service", "description": "Facial",
                              "unit_price": "100.00", "tax_rate": "8.875"})
    payment = tenant.pay(invoice["id"], "50.00")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "offline", "method": "check", "amount": "5.00",
                         "reason": "Asked for it", "note": "check 1042"})
    assert r.status_code == 201, r.content
    return invoice, r.json()


@pytest.mark.django_db
def test_a_row_read_is_the_instance_the_orm_reads(tenant: Tenant) -> None:
    invoice, refund = refunded(tenant)
    for model, pk in ((Refund, int(refund["id"])), (Invoice, int(invoice["id"])),
                      (Payment, int(refund["payment"]))):
        ours, theirs = rows.get(model, pk), model.objects.get(pk=pk)
        assert type(ours) is model and not ours._state.adding
        assert values(ours) == values(theirs)
    # Datetimes come back aware, booleans as booleans, JSON as objects, on either database.
    read = rows.get(Refund, int(refund["id"]))
    assert timezone.is_aware(read.created_at) and read.from_credit is False
    entry = AuditEntry.objects.filter(organization=tenant.organization).order_by("-seq").first()
    assert entry is not None
    assert rows.get(AuditEntry, entry.pk).detail == entry.detail != {}


@pytest.mark.django_db
def test_related_rows_are_read_along_and_a_missing_one_is_none(tenant: Tenant) -> None:
    invoice, _ = refunded(tenant)
    ours = rows.get(Invoice, int(invoice["id"]), related=("center", "organization", "customer"))
    theirs = Invoice.objects.select_related("center", "organization", "customer").get(
        pk=int(invoice["id"]))
    with CaptureQueriesContext(connection) as captured:  # no statement for what was read along
        center, organization, customer = ours.center, ours.organization, ours.customer
    assert not captured.captured_queries
    assert values(center) == values(theirs.center)
    assert values(organization) == values(theirs.organization)
    assert customer is not None and values(customer) == values(theirs.customer)
    # A deposit is a payment with no invoice: its LEFT JOIN finds nothing.
    r = tenant.api.post(f"/customers/{theirs.customer_id}/deposits",
                        {"amount": "10.00", "method": "cash", "center": tenant.center_id})
    assert r.status_code == 201, r.content
    assert rows.get(Payment, int(r.json()["id"]), related=("invoice",)).invoice is None


@pytest.mark.django_db
def test_a_missing_row_is_the_models_does_not_exist(tenant: Tenant) -> None:
    with pytest.raises(Refund.DoesNotExist):
        rows.get(Refund, 999_999)


@pytest.mark.django_db
def test_an_insert_writes_the_row_the_orm_writes(tenant: Tenant) -> None:
    _, refund = refunded(tenant)
    payment = Payment.objects.get(pk=int(refund["payment"]))
    at = dt.datetime(2026, 12, 3, 10, 30, 15, 123456, tzinfo=dt.UTC)
    made = dict(organization_id=payment.organization_id, payment=payment, at=at,
                kind="refund_recorded", amount_minor=-123, status="recorded",
                by=tenant.admin.user, detail="Zoë’s refund: 1,23 €")
    with transaction.atomic():
        ours = rows.create(PaymentEvent, **made)
        theirs = PaymentEvent.objects.create(**made)
    assert ours.pk is not None and ours.pk != theirs.pk and not ours._state.adding
    assert (values(PaymentEvent.objects.get(pk=ours.pk), but=("id",))
            == values(PaymentEvent.objects.get(pk=theirs.pk), but=("id",)))
    # Several rows in one statement, each given its own id in order.
    many = [PaymentEvent(**{**made, "amount_minor": n}) for n in (1, 2, 3)]
    with transaction.atomic():
        rows.insert(many)
    assert [PaymentEvent.objects.get(pk=e.pk).amount_minor for e in many] == [1, 2, 3]


@pytest.mark.django_db
def test_a_row_and_its_entry_are_inserted_together_as_the_orm_would(tenant: Tenant) -> None:
    _, refund = refunded(tenant)
    made = Refund.objects.get(pk=int(refund["id"]))
    entry = JournalEntry.objects.get(pk=made.issue_entry_id)
    copy = dict(values(made, but=("id", "issue_entry_id", "request_key")))
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        new = JournalEntry(**values(entry, but=("id",)))
        ours = rows.insert_linked(Refund(**copy, issue_entry=new), "issue_entry")
    inserts = [q for q in captured.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == (1 if connection.vendor == "postgresql" else 2)
    assert ours.pk is not None and new.pk is not None and ours.issue_entry_id == new.pk
    assert not ours._state.adding and not new._state.adding and ours.issue_entry is new
    assert values(Refund.objects.get(pk=ours.pk), but=("id", "issue_entry_id", "request_key")) \
        == copy
    assert (values(JournalEntry.objects.get(pk=new.pk), but=("id",))
            == values(entry, but=("id",)))
    with pytest.raises(AssertionError, match="unsaved row"):
        rows.insert_linked(Refund(**copy, issue_entry=entry), "issue_entry")


@pytest.mark.django_db
def test_an_insert_of_a_model_with_save_receivers_is_refused(tenant: Tenant) -> None:
    # A center opens its chart of accounts in a post_save receiver: the ORM must write it.
    with pytest.raises(TypeError, match="save receivers"):
        rows.create(Center, organization=tenant.organization, name="Elsewhere")


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="row locks are PostgreSQL's (SQLite locks the database)")
@pytest.mark.django_db(transaction=True)
def test_a_locked_read_holds_the_row_until_the_commit(tenant: Tenant) -> None:
    _, refund = refunded(tenant)
    pk = int(refund["payment"])
    held, done = threading.Event(), threading.Event()
    seen: list[str] = []

    def other() -> None:
        held.wait(10)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '200ms'")
                rows.get(Payment, pk, lock=True)
            seen.append("got it")
        except OperationalError:
            seen.append("waited")
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with transaction.atomic():
        rows.get(Payment, pk, lock=True)
        held.set()
        done.wait(10)
    thread.join()
    assert seen == ["waited"]


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="row locks are PostgreSQL's (SQLite locks the database)")
@pytest.mark.django_db(transaction=True)
def test_an_invoice_and_its_payment_are_locked_in_the_lock_order(tenant: Tenant) -> None:
    """One statement locks both rows; it must take the invoice before the payment, as every
    other money transaction does, or two of them could wait on each other in a circle."""
    from kassa.core.locks import lock_invoice_and_payment, money_transaction

    invoice, refund = refunded(tenant)
    invoice_id, payment_id = int(invoice["id"]), int(refund["payment"])
    waiting, finished = threading.Event(), threading.Event()
    got: list[Any] = []

    def refunder() -> None:
        try:
            with money_transaction():
                waiting.set()
                got.append(lock_invoice_and_payment(payment_id,
                                                    organization_id=tenant.organization.pk))
        finally:
            connections.close_all()
            finished.set()

    with transaction.atomic():
        rows.get(Payment, payment_id, lock=True)  # someone holds the payment
        thread = threading.Thread(target=refunder)
        thread.start()
        waiting.wait(10)
        # While the refunder waits for the payment, it already holds the invoice.
        held = _invoice_is_locked_elsewhere(invoice_id, finished)
    thread.join()
    assert held, "the invoice was not locked before the payment"
    pair = got[0]
    assert pair is not None and (pair[0].pk, pair[1].pk) == (invoice_id, payment_id)
    assert pair[0].center.pk and pair[0].organization.pk == tenant.organization.pk


def _invoice_is_locked_elsewhere(invoice_id: int, finished: threading.Event) -> bool:
    """Whether another transaction holds the invoice's row lock (asked from a third one)."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            for _ in range(50):  # until the refunder's statement has reached its wait
                try:
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute("SELECT id FROM billing_invoice WHERE id = %s "
                                       "FOR UPDATE NOWAIT", [invoice_id])
                except OperationalError:
                    answer.append(True)
                    return
                if finished.wait(0.05):
                    break
            answer.append(False)
        finally:
            connections.close_all()

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    return answer == [True]
