"""Simultaneous payments of one invoice, from real threads on their own database connections.

A `threading.Barrier` releases every thread at once, so that they all read the balance due
before any of them has written. `take_payment` re-checks the balance under the invoice's row
lock (`SELECT … FOR UPDATE`), so the invoice is never overpaid: exactly as many payments
succeed as the balance allows and the rest are refused with `payment_exceeds_balance`. An
online payment is charged before the lock is taken; a charge whose payment was then refused
must have been given back.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db.models import Sum
from django.test import Client

from conftest import Api, Tenant, outcome, race
from kassa.billing.models import Invoice, InvoiceLine, Payment
from kassa.billing.services import take_payment
from kassa.gateways.models import SandboxCharge
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.tenancy.models import Membership

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def pay_in_threads(tenant: Tenant, invoice_id: str, amount: str, **how: Any) -> Counter[str]:
    def work(i: int) -> Payment:
        # Each thread loads its own actor: nothing ORM-shaped is shared between threads.
        actor = Membership.objects.select_related("organization", "user").get(
            pk=tenant.admin.pk)
        return take_payment(actor=actor, invoice=invoice_id, amount=amount, **how)

    return Counter(outcome(r) for r in race(THREADS, work))


def assert_books_agree(tenant: Tenant, invoice_id: str, *, paid_minor: int) -> Invoice:
    invoice = Invoice.objects.get(pk=invoice_id)
    payments = Payment.objects.filter(invoice=invoice)
    assert invoice.paid_minor == paid_minor
    assert payments.aggregate(s=Sum("amount_minor"))["s"] == paid_minor
    assert invoice.balance_due_minor == invoice.total_minor - paid_minor >= 0
    assert invoice.balance_due_minor == balance("receivable", invoice=invoice)
    lines = InvoiceLine.objects.filter(invoice=invoice).aggregate(
        net=Sum("paid_net_minor"), tax=Sum("paid_tax_minor"))
    assert lines["net"] + lines["tax"] == paid_minor
    assert verify(tenant.organization) == []
    return invoice


def test_concurrent_cash_payments_never_overpay_the_invoice(tenant: Tenant) -> None:
    invoice = tenant.invoice({"kind": "service", "description": "Funeral service",
                              "unit_price": "100.00"})
    outcomes = pay_in_threads(tenant, invoice["id"], "7.00", method="cash", online=False)

    assert outcomes == {"ok": 14, "payment_exceeds_balance": 6}
    paid = assert_books_agree(tenant, invoice["id"], paid_minor=14 * 700)
    assert paid.balance_due_minor == 200 and paid.status == "open"


def test_concurrent_card_payments_never_overpay_and_charge_only_what_they_hold(
    tenant: Tenant,
) -> None:
    invoice = tenant.invoice({"kind": "service", "description": "Casket", "unit_price": "100.00",
                              "tax_rate": "8.875"})  # total 108.88
    outcomes = pay_in_threads(tenant, invoice["id"], "10.00", method="card", online=True,
                              source="sandbox_ok")

    assert outcomes == {"ok": 10, "payment_exceeds_balance": 10}
    paid = assert_books_agree(tenant, invoice["id"], paid_minor=10 * 1000)
    assert paid.balance_due_minor == 888
    # Each payment held its amount of the balance before its card was charged: the refused
    # ones were refused before any charge, and every charge is a succeeded payment.
    kept = SandboxCharge.objects.filter(cancelled=False)
    assert kept.count() == SandboxCharge.objects.count() == 10
    assert set(kept.values_list("reference", flat=True)) == set(
        Payment.objects.filter(invoice_id=invoice["id"]).values_list(
            "gateway_reference", flat=True))


def test_concurrent_payments_through_the_api_that_exactly_close_the_invoice(
    tenant: Tenant,
) -> None:
    invoice = tenant.invoice({"kind": "service", "description": "Flowers",
                              "unit_price": "50.00"})
    statuses: Counter[int] = Counter()

    def work(i: int) -> Any:
        api = Api(tenant.token, Client())
        r = api.post(f"/invoices/{invoice['id']}/payments",
                     {"amount": "5.00", "method": "check", "online": False},
                     key=f"pay-{i}")
        return r.status_code, (r.json().get("code") if r.status_code != 201 else None)

    results = race(THREADS, work)
    statuses.update(r if isinstance(r, tuple) else (repr(r),) for r in results)
    assert statuses == {(201, None): 10, (422, "payment_exceeds_balance"): 10}
    closed = assert_books_agree(tenant, invoice["id"], paid_minor=5000)
    assert closed.balance_due_minor == 0 and closed.status == "closed"
