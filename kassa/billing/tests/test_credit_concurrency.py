"""A customer's credit used from many desks at once, on PostgreSQL with real threads: the
customer's row lock serialises every movement of their credit, so it never goes below zero and
never pays more than it holds; a split refund and a single refund racing for one payment never
refund more than the payment."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db.models import Sum

from conftest import outcome, race
from kassa.billing.models import CreditEntry, Customer, Payment
from kassa.billing.services import take_payment
from kassa.ledger.verify import verify
from kassa.refunds.models import Refund
from kassa.refunds.services import Part, refund_invoice, refund_payment

THREADS = 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_payments_from_one_credit_never_take_it_below_zero(tenant):
    guest = tenant.customer()
    r = tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "100.00", "method": "cash"})
    assert r.status_code == 201, r.content
    invoices = [tenant.invoice({"kind": "service", "description": "Visit",
                                "unit_price": "50.00"}, customer=guest)
                for _ in range(THREADS)]

    results = race(THREADS, lambda i: take_payment(
        actor=tenant.admin, invoice=invoices[i]["id"], amount="15.00", method="credit",
        online=False))

    counts = Counter(outcome(r) for r in results)
    assert counts == {"ok": 6, "credit_insufficient": 14}, counts
    customer = Customer.objects.get(pk=guest)
    assert customer.credit_minor == 1000
    assert CreditEntry.objects.filter(customer=customer).aggregate(
        s=Sum("amount_minor"))["s"] == 1000
    assert list(CreditEntry.objects.filter(customer=customer).order_by("id")
                .values_list("balance_after_minor", flat=True)) == [
        10000, 8500, 7000, 5500, 4000, 2500, 1000]
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_split_refund_racing_a_single_refund_never_exceeds_the_payment(tenant):
    invoice = tenant.invoice({"kind": "service", "description": "Visit",
                              "unit_price": "100.00"})
    cash = tenant.pay(invoice["id"], "60.00", method="cash")
    check = tenant.pay(invoice["id"], "40.00", method="check")

    def work(i: int) -> object:
        if i % 2 == 0:
            return refund_invoice(actor=tenant.admin, invoice=invoice["id"], reason=f"split {i}",
                                  parts=[Part(payment=cash["id"], type="offline", amount="40.00",
                                              method="cash"),
                                         Part(payment=check["id"], type="offline",
                                              amount="10.00", method="check")])
        return refund_payment(actor=tenant.admin, payment=cash["id"], type="offline",
                              amount="40.00", reason=f"single {i}", method="cash")

    results = race(10, work)
    counts = Counter(outcome(r) for r in results)
    # $60 of cash: one refund of $40 fits, whichever comes first; the rest are refused whole.
    assert counts["ok"] == 1 and counts["refund_exceeds_refundable"] == 9, counts
    refunded = Payment.objects.get(pk=cash["id"]).refunded_minor
    assert refunded == 4000
    # A refused split refund wrote nothing, not even its part on the other payment.
    split_won = isinstance(next(r for r in results if outcome(r) == "ok"), tuple)
    assert Payment.objects.get(pk=check["id"]).refunded_minor == (1000 if split_won else 0)
    assert Refund.objects.count() == (2 if split_won else 1)
    assert verify() == []
