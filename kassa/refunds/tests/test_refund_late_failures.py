"""A refund the gateway fails after it had succeeded (processors do this, days later), in the
two situations where the rest of the payment has moved on meanwhile."""

from __future__ import annotations

from typing import Any

from django.core import mail

from conftest import run_tasks
from kassa.billing.models import Invoice, Payment
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.lifecycle import apply_gateway_result
from kassa.refunds.models import Refund
from kassa.refunds.sandbox import settle


def succeeded_refund(tenant: Any, payment: dict[str, Any], amount: str) -> Refund:
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": amount, "reason": "Guest changed plans"})
    assert r.status_code == 201, r.content
    run_tasks()
    settle(refund_ids=[r.json()["id"]], everything=False)
    refund = Refund.objects.get(pk=r.json()["id"])
    assert refund.status == "succeeded"
    return refund


def test_late_failure_leaves_another_pending_refund_of_the_payment_pending(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    first = succeeded_refund(tenant, payment, "40.00")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": "10.00", "reason": "Second thoughts"})
    second = r.json()

    assert apply_gateway_result(refund_id=first.pk, state="failed",
                                failure_reason="account closed")

    p = Payment.objects.get(pk=payment["id"])
    assert p.refund_pending is True  # the second refund is still on its way
    assert p.refunded_minor == 1000
    assert tenant.api.get(f"/refunds/{second['id']}").json()["status"] == "pending"
    again = tenant.api.post(f"/payments/{payment['id']}/refunds",
                            {"type": "online", "amount": "5.00", "reason": "Third"})
    assert again.status_code == 409 and again.json()["code"] == "refund_pending"
    assert verify(tenant.organization) == []


def test_late_failure_after_the_reopened_balance_was_paid_again_goes_into_credit(tenant):
    """The refund re-opened 40.00 of balance due and the customer paid it again by cash; the
    card refund then fails. Putting its 40.00 back on the invoice would pay it twice, so the
    money goes into the customer's credit: the refund fails, a refund to credit of the same
    amount takes its place, the invoice and the payment stand, the customer is told — and the
    gateway's news neither crashes nor is lost, nor counts twice."""
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    refund = succeeded_refund(tenant, payment, "40.00")
    tenant.pay(inv["id"], "40.00", method="cash")
    before = Payment.objects.get(pk=payment["id"])

    assert apply_gateway_result(refund_id=refund.pk, state="failed",
                                failure_reason="account closed") is True
    assert apply_gateway_result(refund_id=refund.pk, state="failed") is False  # again: no-op

    got = tenant.api.get(f"/refunds/{refund.pk}").json()
    assert got["status"] == "failed" and got["needs_attention"] is False
    (instead,) = [r for r in tenant.api.get("/refunds", payment=payment["id"]).json()
                  if r["replaces"] == str(refund.pk)]
    assert (instead["type"], instead["status"], instead["total"]) == (
        "credit", "recorded", "40.00")
    invoice = Invoice.objects.get(pk=inv["id"])
    assert invoice.balance_due_minor == 0 and invoice.paid_minor == 14000
    after = Payment.objects.get(pk=payment["id"])
    assert after.refunded_minor == before.refunded_minor == 4000
    assert after.refunded_online_minor == 0  # the gateway gave nothing back after all
    assert balance("card", organization=tenant.organization) == 10000
    assert balance("customer_credit", organization=tenant.organization) == -4000
    credit = tenant.api.get(f"/customers/{inv['customer']}/credit").json()
    assert credit["balance"] == "40.00"
    assert credit["entries"][-1]["kind"] == "refund_failed_to_credit"
    history = tenant.api.get(f"/payments/{payment['id']}/history").json()
    assert history[-1]["kind"] == "refund_failed"
    assert "account credit" in history[-1]["detail"]
    run_tasks()
    notice = mail.outbox[-1]
    assert "could not be completed" in notice.subject
    assert "kept as credit on your account" in notice.body
    assert verify(tenant.organization) == []


def test_late_failure_of_a_refund_that_decreased_the_balance_owed_always_goes_back(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": "40.00", "reason": "Discount",
                         "decrease_balance_owed": True})
    run_tasks()
    settle(refund_ids=[r.json()["id"]], everything=False)

    assert apply_gateway_result(refund_id=int(r.json()["id"]), state="failed")

    got = tenant.api.get(f"/refunds/{r.json()['id']}").json()
    assert got["status"] == "failed" and got["needs_attention"] is False
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (invoice["credits"], invoice["balance_due"], invoice["status"]) == (
        "0.00", "0.00", "closed")
    assert verify(tenant.organization) == []
