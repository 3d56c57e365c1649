"""Returns, disputes and refunds of one payment at once, from real threads on PostgreSQL: the
payment's row lock serialises them, so a bank's return and a front desk's refund never take
more than the payment had, a payment is returned once, and a refund racing the news of a
dispute either lands before it or is refused."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import outcome, race
from kassa.billing.models import Payment
from kassa.ledger.verify import verify
from kassa.refunds import sandbox
from kassa.refunds.returns import record_return
from kassa.refunds.services import refund_payment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_returns_and_refunds_of_one_check_at_once_never_exceed_it(tenant):
    inv = tenant.invoice()
    check = tenant.pay(inv["id"], "100.00", method="check")

    def work(i):
        if i % 2:
            return record_return(actor=tenant.admin, payment=check["id"], reason="NSF",
                                 amount="60.00")
        return refund_payment(actor=tenant.admin, payment=check["id"], type="offline",
                              amount="30.00", reason="Goodwill", method="cash")

    results = Counter(outcome(r) for r in race(10, work))
    assert results["payment_already_returned"] + results["return_exceeds_unrefunded"] >= 4
    assert not [k for k in results if k.startswith("unexpected")], results
    payment = Payment.objects.get(pk=check["id"])
    assert payment.refunded_minor + payment.taken_back_minor <= payment.amount_minor
    assert payment.returns.count() <= 1
    assert verify(tenant.organization) == []


def test_a_refund_racing_a_dispute_lands_before_it_or_is_refused(tenant):
    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)

    def work(i):
        if i == 0:
            return sandbox.dispute(payment_id=card["id"], amount="50.00", outcome=None)
        return refund_payment(actor=tenant.admin, payment=card["id"], type="offline",
                              amount="10.00", reason="Goodwill", method="cash")

    results = [outcome(r) for r in race(6, work)]
    assert set(results) <= {"ok", "payment_disputed"}, results
    assert Payment.objects.get(pk=card["id"]).disputed
    assert verify(tenant.organization) == []
