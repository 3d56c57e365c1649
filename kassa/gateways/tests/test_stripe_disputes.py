"""What Stripe decides on its own, through `POST /api/v1/webhooks/stripe` with real signatures
against the local fake: disputes (opened while a refund is pending, won, lost, duplicated and out
of order, of a charge we do not know), a refund of a disputed charge failing with
`charge_disputed` without a notice to the customer, and a refund made in Stripe's dashboard."""

from __future__ import annotations

import pytest

from conftest import run_tasks
from kassa.billing.models import PaymentEvent
from kassa.gateways.tests.conftest import issue_refund, snapshot
from kassa.gateways.tests.test_stripe_webhooks import deliver
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.models import Dispute, Receipt, Refund
from kassa.reports import reconciliation


def intent_of(payment):
    from kassa.billing.models import Payment

    return Payment.objects.get(pk=payment["id"]).gateway_reference


def clean(tenant, not_matched=()):
    """`kassa verify` clean, and the day's gateway lines all matched but `not_matched` (the
    types of the lines that must not be)."""
    assert verify(tenant.organization) == []
    day = reconciliation.reconcile(tenant.organization,
                                   reconciliation.today_of(tenant.organization))
    assert [line.type for line in reconciliation.exceptions(day)] == list(not_matched)


def test_a_dispute_opened_while_a_refund_is_pending_fails_it_without_a_notice(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"], "50.00")
    run_tasks()
    [re] = fake_stripe.refunds.values()
    du = fake_stripe.dispute(intent_of(payment), amount=16775)  # what is not being refunded
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"]))
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.amount_minor) == ("needs_response", 16775)
    assert dispute.respond_by is not None
    assert balance("disputed_funds", organization=tenant.organization) == 16775
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert shown["disputed"] is True
    # Stripe then fails the pending refund: the bank refunds the cardholder through the dispute.
    fake_stripe.settle(re["id"], "failed", "charge_for_pending_refund_disputed")
    deliver(fake_stripe.event("refund.failed", re["id"]))
    failed = Refund.objects.get(pk=refund["id"])
    assert failed.status == "failed"
    assert not Receipt.objects.filter(refund=failed, kind="failure_notice").exists()
    why = PaymentEvent.objects.get(payment_id=payment["id"], kind="refund_failed").detail
    assert "disputed" in why and "no failure notice" in why
    clean(tenant)


def test_a_refund_of_a_disputed_charge_fails_with_charge_disputed_and_no_notice(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    # Kassa has not heard of the dispute yet: the refund is made, and Stripe refuses it.
    fake_stripe.dispute(intent_of(payment))
    refund = issue_refund(tenant, payment["id"], "20.00")
    run_tasks()
    failed = Refund.objects.get(pk=refund["id"])
    assert failed.status == "failed" and "charge_disputed" in failed.failure_reason
    assert not Receipt.objects.filter(refund=failed, kind="failure_notice").exists()
    why = PaymentEvent.objects.get(payment_id=payment["id"], kind="refund_failed").detail
    assert "no failure notice" in why
    # Stripe has withdrawn it and charged its fee; Kassa is not told yet.
    clean(tenant, not_matched=["dispute", "fee"])


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_won_and_lost_disputes(tenant, stripe_paid, fake_stripe, outcome, unchanged):
    inv, payment = stripe_paid
    du = fake_stripe.dispute(intent_of(payment), amount=10000)
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"]))
    deliver(fake_stripe.dispute_event("charge.dispute.updated", du["id"],
                                      status="under_review"))
    assert Dispute.objects.get().status == "under_review"
    with unchanged():
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "online", "amount": "1.00", "reason": "x"})
        assert r.status_code == 409 and r.json()["code"] == "payment_disputed"
    if outcome == "won":
        deliver(fake_stripe.dispute_event("charge.dispute.funds_reinstated", du["id"],
                                          status="won"))
        deliver(fake_stripe.dispute_event("charge.dispute.closed", du["id"], status="won"))
        assert balance("disputed_funds", organization=tenant.organization) == 0
        shown = tenant.api.get(f"/payments/{payment['id']}").json()
        assert (shown["disputed"], shown["refundable"]) == (False, "217.75")
    else:
        deliver(fake_stripe.dispute_event("charge.dispute.closed", du["id"], status="lost"))
        assert balance("disputed_funds", organization=tenant.organization) == 10000
        shown = tenant.api.get(f"/payments/{payment['id']}").json()
        assert (shown["disputed"], shown["refundable"], shown["taken_back"]) == (
            True, "117.75", "100.00")
        d = Dispute.objects.get()
        r = tenant.api.post(f"/disputes/{d.pk}/settle", {"action": "rebill",
                                                         "reason": "Card was not stolen"})
        assert r.status_code == 200, r.content
        invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
        assert (invoice["status"], invoice["balance_due"]) == ("open", "100.00")
    assert Dispute.objects.get().status == outcome
    clean(tenant)


def test_duplicate_and_out_of_order_dispute_events_book_once(tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    du = fake_stripe.dispute(intent_of(payment), amount=5000)
    created = fake_stripe.dispute_event("charge.dispute.created", du["id"])
    closed = fake_stripe.dispute_event("charge.dispute.closed", du["id"], status="lost")
    deliver(closed)  # the last word first
    after = snapshot()
    deliver(closed)
    deliver(created)
    deliver(fake_stripe.dispute_event("charge.dispute.funds_withdrawn", du["id"],
                                      status="needs_response"))
    assert snapshot() == after
    assert Dispute.objects.get().status == "lost"
    assert balance("disputed_funds", organization=tenant.organization) == 5000
    clean(tenant)


def test_a_dispute_of_a_charge_we_do_not_know_is_acknowledged(tenant, fake_stripe):
    intent = {"id": "pi_elsewhere", "amount": 100, "currency": "usd", "amount_refunded": 0,
              "status": "succeeded", "metadata": {}}
    fake_stripe.payment_intents[intent["id"]] = intent
    du = fake_stripe.dispute("pi_elsewhere")
    before = snapshot()
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"]))
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"], status="weird",
                                      payment_intent=None, amount="x"))
    assert snapshot() == before and not Dispute.objects.exists()


def test_a_refund_made_in_the_dashboard_is_booked_once(tenant, stripe_paid, fake_stripe):
    inv, payment = stripe_paid
    re = fake_stripe.dashboard_refund(intent_of(payment), 5000, status="pending")
    deliver(fake_stripe.event("refund.created", re["id"]))
    booked = Refund.objects.get()
    assert (booked.origin, booked.created_by, booked.status, booked.decrease_balance_owed) == (
        "gateway", None, "pending", True)
    assert booked.gateway_reference == re["id"]
    deliver(fake_stripe.event("refund.updated", re["id"], status="succeeded"))
    deliver(fake_stripe.event("refund.updated", re["id"], status="succeeded"))
    booked.refresh_from_db()
    assert booked.status == "succeeded"
    assert Refund.objects.count() == 1
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert shown["refundable"] == "167.75"
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "0.00"
    assert not [c for c in fake_stripe.calls_to("POST", "/v1/refunds")]  # Kassa never asked
    clean(tenant)


def test_a_dashboard_refund_larger_than_refundable_is_not_booked(tenant, stripe_paid,
                                                                 fake_stripe):
    _, payment = stripe_paid
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "200.00", "method": "cash", "reason": "Cash back"})
    assert r.status_code == 201
    re = fake_stripe.dashboard_refund(intent_of(payment), 5000)
    before = snapshot()
    deliver(fake_stripe.event("refund.updated", re["id"]))
    assert snapshot() == before
    assert not Refund.objects.filter(origin="gateway").exists()
    clean(tenant, not_matched=["refund"])  # the processor has it, Kassa has not
