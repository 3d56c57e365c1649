"""Reconciliation with Stripe: the account's balance transactions read through the SDK (paged,
sources expanded) from the local fake, matched to Kassa's payments, refunds and disputes that
the signed webhooks booked."""

from __future__ import annotations

from conftest import make_tenant, run_tasks
from kassa.gateways.tests.conftest import issue_refund
from kassa.gateways.tests.test_stripe_disputes import intent_of
from kassa.gateways.tests.test_stripe_webhooks import deliver
from kassa.ledger.verify import verify
from kassa.refunds.models import Dispute, Refund
from kassa.reports import reconciliation


def statuses(lines):
    return [(line.type.value, line.amount_minor, line.kassa and line.kassa.object, line.status)
            for line in lines]


def test_a_stripe_day_matches_line_by_line_and_the_payout_its_net(
        tenant, stripe_paid, fake_stripe):
    fake_stripe.page_size = 2  # the SDK pages through them
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"], "50.00")
    run_tasks()
    [re] = fake_stripe.refunds.values()
    fake_stripe.settle(re["id"], "succeeded")
    deliver(fake_stripe.event("refund.updated", re["id"]))
    assert Refund.objects.get(pk=refund["id"]).status == "succeeded"

    inv = tenant.invoice({"kind": "service", "description": "Urn", "unit_price": "120.00"})
    second = tenant.pay(inv["id"], "120.00", method="card", online=True, source="pm_card_visa")
    failing = issue_refund(tenant, second["id"], "20.00")
    run_tasks()
    failed_re = next(r for r in fake_stripe.refunds.values() if r["amount"] == 2000)
    fake_stripe.settle(failed_re["id"], "failed", "expired_or_canceled_card")
    deliver(fake_stripe.event("refund.failed", failed_re["id"]))
    assert Refund.objects.get(pk=failing["id"]).status == "failed"

    du = fake_stripe.dispute(intent_of(second), amount=12000)
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"]))
    fake_stripe.close_dispute(du["id"], "won")
    deliver(fake_stripe.dispute_event("charge.dispute.closed", du["id"]))
    assert Dispute.objects.get().status == "won"
    fake_stripe.payout()

    day = reconciliation.today_of(tenant.organization)
    lines = reconciliation.reconcile(tenant.organization, day)
    assert statuses(lines) == [
        ("charge", 21775, "payment", "matched"),
        ("fee", -661, "payment", "matched"),  # Stripe's processing fee, netted in
        ("refund", -5000, "refund", "matched"),
        ("charge", 12000, "payment", "matched"),
        ("fee", -378, "payment", "matched"),
        ("refund", -2000, "refund", "matched"),
        ("refund_failure", 2000, "refund", "matched"),
        ("dispute", -12000, "dispute", "matched"),
        ("fee", -1500, "dispute", "matched"),
        ("dispute_reversal", 12000, "dispute", "matched"),
    ]
    # The payout is the account's (one Stripe account serves the installation): it equals the
    # net of what it paid out.
    account = reconciliation.reconcile_account(day)
    assert statuses(account) == [("payout", -(21775 - 661 - 5000 + 12000 - 378 - 1500), None,
                                  "matched")]
    report = tenant.api.get("/reports/reconciliation").json()
    assert report["gateway"] == "stripe" and report["totals"]["count"]["matched"] == 10
    assert verify(tenant.organization) == []


def test_a_stripe_dashboard_refund_that_does_not_fit_is_missing_in_kassa(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "200.00", "reason": "Family request"})
    assert r.status_code == 201
    made = fake_stripe.dashboard_refund(intent_of(payment), 5000)
    deliver(fake_stripe.event("refund.created", made["id"]))
    assert not Refund.objects.filter(origin="gateway").exists()

    lines = reconciliation.reconcile(tenant.organization,
                                     reconciliation.today_of(tenant.organization))
    assert statuses(lines)[-1] == ("refund", -5000, None, "missing_in_kassa")
    assert lines[-1].source == made["id"]


def test_another_organizations_lines_stay_its_own_and_untraced_ones_are_the_accounts(
        tenant, stripe_paid, fake_stripe):
    other = make_tenant("Other Home")
    inv = other.invoice()
    other.pay(inv["id"], "100.00", method="card", online=True, source="pm_card_visa")
    # A charge made at Stripe that no Kassa payment stands for.
    fake_stripe._txn("charge", "charge", 999, ("charge", "pi_made_elsewhere"))

    day = reconciliation.today_of(tenant.organization)
    assert [line.amount_minor for line in reconciliation.reconcile(tenant.organization, day)
            if line.type == "charge"] == [21775]
    assert [line.amount_minor for line in reconciliation.reconcile(other.organization, day)
            if line.type == "charge"] == [10000]
    account = reconciliation.reconcile_account(day)
    assert statuses(account) == [("charge", 999, None, "missing_in_kassa")]


def test_an_inquiry_withdraws_nothing_and_a_category_kassa_never_moves_is_named(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    du = fake_stripe.dispute(intent_of(payment), status="warning_needs_response")
    deliver(fake_stripe.dispute_event("charge.dispute.created", du["id"]))
    deliver(fake_stripe.dispute_event("charge.dispute.closed", du["id"],
                                      status="warning_closed"))
    day = reconciliation.today_of(tenant.organization)
    # Neither side has money for the inquiry: no line, nothing expected.
    assert statuses(reconciliation.reconcile(tenant.organization, day)) == [
        ("charge", 21775, "payment", "matched"), ("fee", -661, "payment", "matched")]
    # Stripe lists something Kassa never does with the charge (a partial capture's reversal).
    fake_stripe._txn("adjustment", "partial_capture_reversal", -5000,
                     ("charge", intent_of(payment)))
    assert statuses(reconciliation.reconcile(tenant.organization, day))[-1] == (
        "fee", -5000, None, "missing_in_kassa")


def test_a_manual_payout_is_not_taken_apart(tenant, stripe_paid, fake_stripe):
    assert fake_stripe.payout(automatic=False) is not None
    day = reconciliation.today_of(tenant.organization)
    [payout] = reconciliation.reconcile_account(day)
    # Stripe cannot list what a manual payout paid out: Kassa has nothing to compare.
    assert (payout.type, payout.amount_minor, payout.status) == ("payout", -(21775 - 661),
                                                                 "matched")
