"""Simultaneous refunds of one payment, from real threads on their own database connections.

A `threading.Barrier` releases every thread at once, so that they all read the payment before
any of them has written, as the front desk and an API client racing would. The services must
serialise them on the payment's row lock (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's write
lock taken at BEGIN), so that what is refunded never exceeds the payment and at most one online
refund of it is pending.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db.models import Sum
from django.test import Client

from conftest import Api, is_postgres, outcome, race
from kassa.billing.models import Payment
from kassa.ledger.verify import verify
from kassa.refunds.models import Refund
from kassa.refunds.services import refund_payment

THREADS = 30


def assert_payment_agrees_with_its_refunds(payment_id: str) -> None:
    payment = Payment.objects.get(pk=payment_id)
    live = (Refund.objects.filter(payment=payment).exclude(status="failed")
            .aggregate(s=Sum("amount_minor"))["s"] or 0)
    assert payment.refunded_minor == live
    assert 0 <= payment.refunded_minor <= payment.amount_minor
    assert payment.refund_pending == Refund.objects.filter(payment=payment,
                                                           status="pending").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_thirty_simultaneous_offline_refunds_never_exceed_the_refundable_amount(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")

    results = race(THREADS, lambda i: refund_payment(
        actor=tenant.admin, payment=payment["id"], type="offline", amount="5.00",
        reason=f"race {i}", method="cash"))

    counts = Counter(outcome(r) for r in results)
    assert counts == {"ok": 20, "refund_exceeds_refundable": 10}, counts
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 20
    assert Payment.objects.get(pk=payment["id"]).refundable_minor == 0
    assert_payment_agrees_with_its_refunds(payment["id"])
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_mixed_refunds_of_uneven_amounts_stay_within_the_payment(tenant):
    """Amounts that do not divide the payment: whatever order the lock gives them, the total
    refunded is the largest that fits and every refusal is for the right reason."""
    inv = tenant.invoice({"kind": "service", "description": "Case", "unit_price": "100.00",
                          "tax_rate": "8.875"})
    payment = tenant.pay(inv["id"], inv["total"], method="check")  # 108.88
    amounts = ["7.00", "13.13", "9.99", "0.01", "21.50"] * 6

    results = race(len(amounts), lambda i: refund_payment(
        actor=tenant.admin, payment=payment["id"], type="offline", amount=amounts[i],
        reason="race", method=("check", "cash", "insurance")[i % 3],
        decrease_balance_owed=bool(i % 2)))

    counts = Counter(outcome(r) for r in results)
    assert set(counts) <= {"ok", "refund_exceeds_refundable"}, counts
    refused = [amounts[i] for i, r in enumerate(results) if outcome(r) != "ok"]
    p = Payment.objects.get(pk=payment["id"])
    # Each refusal was right when it was made: by then the refundable was below its amount.
    assert all(int(a.replace(".", "")) > p.refundable_minor for a in refused)
    assert_payment_agrees_with_its_refunds(payment["id"])
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_online_refunds_leave_exactly_one_pending(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)

    def through_the_api(i: int) -> Any:
        api = Api(tenant.token, Client())  # a client of its own per thread
        r = api.post(f"/payments/{payment['id']}/refunds",
                     {"type": "online", "amount": "5.00", "reason": f"race {i}"})
        return r.status_code, r.json()

    n = 12
    results = race(n, through_the_api)

    assert not [r for r in results if isinstance(r, BaseException)], results
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: n - 1}, results
    assert {body["code"] for status, body in results if status == 409} == {"refund_pending"}
    assert Refund.objects.filter(payment_id=payment["id"], status="pending").count() == 1
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 1
    p = Payment.objects.get(pk=payment["id"])
    assert p.refund_pending and p.refunded_minor == 500
    assert_payment_agrees_with_its_refunds(payment["id"])
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_online_and_offline_refunds_racing_leave_at_most_one_pending(tenant):
    """Online and offline refunds of one online payment together: the offline ones that come
    after the online one is pending are refused with 409, none exceeds the payment."""
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)

    def refund(i: int) -> Refund:
        if i % 3 == 0:
            return refund_payment(actor=tenant.admin, payment=payment["id"], type="online",
                                  amount="10.00", reason="race")
        return refund_payment(actor=tenant.admin, payment=payment["id"], type="offline",
                              amount="10.00", reason="race", method="check")

    results = race(THREADS, refund)

    counts = Counter(outcome(r) for r in results)
    assert set(counts) <= {"ok", "refund_pending", "refund_exceeds_refundable"}, counts
    assert Refund.objects.filter(payment_id=payment["id"], status="pending").count() <= 1
    assert counts["ok"] == Refund.objects.filter(payment_id=payment["id"]).count() <= 10
    assert_payment_agrees_with_its_refunds(payment["id"])
    assert verify() == []


@pytest.mark.django_db(transaction=True)
def test_thirty_simultaneous_refunds_on_sqlite_serialise_on_its_write_lock(tenant):
    """The embedded default keeps the same promise: its transactions take the write lock at
    BEGIN (IMMEDIATE), so the refunds queue instead of reading a stale refundable amount."""
    if is_postgres():
        pytest.skip("the PostgreSQL tests above cover row locks")
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")

    results = race(THREADS, lambda i: refund_payment(
        actor=tenant.admin, payment=payment["id"], type="offline", amount="5.00",
        reason=f"race {i}", method="cash"))

    counts = Counter(outcome(r) for r in results)
    assert counts == {"ok": 20, "refund_exceeds_refundable": 10}, counts
    assert_payment_agrees_with_its_refunds(payment["id"])
    assert verify() == []
