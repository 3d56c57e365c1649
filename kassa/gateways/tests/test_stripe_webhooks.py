"""`POST /api/v1/webhooks/stripe` with real signatures: refund events settle or fail refunds,
once, whatever their order or repetition; a bad signature is 400 and changes nothing; no body
makes it answer 500."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.test import Client

from conftest import make_all_tasks_due, run_tasks
from kassa.gateways.tests.conftest import WEBHOOK_SECRET, issue_refund, snapshot
from kassa.gateways.tests.fake_stripe import FakeStripe
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.gateway_calls import idempotency_key
from kassa.refunds.models import Receipt, Refund


def post(payload, signature=None, gateway="stripe"):
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    return Client().post(f"/api/v1/webhooks/{gateway}", payload,
                         content_type="application/json", headers=headers)


def deliver(payload, secret=WEBHOOK_SECRET):
    """As Stripe sends it: signed with the SDK's own header builder."""
    r = post(payload, stripe.WebhookSignature.generate_signature_header(payload, secret))
    assert r.status_code == 200, r.content
    assert r.json() == {"received": True}
    return r


@pytest.fixture
def pending(tenant, stripe_paid, fake_stripe):
    """A pending online refund of 50.00 whose gateway call has been made: (refund id, re_ id)."""
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"], "50.00")
    run_tasks()
    [stripe_refund] = fake_stripe.refunds.values()
    assert Refund.objects.get(pk=refund["id"]).gateway_reference == stripe_refund["id"]
    return refund["id"], stripe_refund["id"]


def status_of(refund_id):
    return Refund.objects.get(pk=refund_id).status


@pytest.mark.parametrize("kind", ["refund.updated", "charge.refund.updated", "refund.created"])
def test_a_succeeded_refund_event_settles_the_refund(tenant, pending, fake_stripe, kind):
    refund_id, re_id = pending
    deliver(fake_stripe.event(kind, re_id, status="succeeded"))
    assert status_of(refund_id) == "succeeded"
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert verify(tenant.organization) == []


def test_a_refund_failed_event_fails_the_refund_and_gives_the_amount_back(
        tenant, stripe_paid, pending, fake_stripe):
    _, payment = stripe_paid
    refund_id, re_id = pending
    deliver(fake_stripe.event("refund.failed", re_id, status="failed",
                              failure_reason="lost_or_stolen_card"))
    got = tenant.api.get(f"/refunds/{refund_id}").json()
    assert got["status"] == "failed" and got["failure_reason"] == "lost_or_stolen_card"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refundable"] == "217.75"
    assert Receipt.objects.filter(refund_id=refund_id, kind="failure_notice").count() == 1
    assert verify(tenant.organization) == []


def test_a_pending_event_changes_nothing(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    before = snapshot()
    deliver(fake_stripe.event("refund.created", re_id))
    deliver(fake_stripe.event("refund.updated", re_id, status="requires_action"))
    assert snapshot() == before and status_of(refund_id) == "pending"


def test_duplicate_events_change_nothing_more(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    succeeded = fake_stripe.event("refund.updated", re_id, status="succeeded")
    deliver(succeeded)
    after_first = snapshot()
    deliver(succeeded)  # Stripe delivers at least once
    deliver(fake_stripe.event("charge.refund.updated", re_id, status="succeeded"))
    assert snapshot() == after_first and status_of(refund_id) == "succeeded"

    failed = fake_stripe.event("refund.failed", re_id, status="failed", failure_reason="unknown")
    deliver(failed)
    after_failure = snapshot()
    deliver(failed)
    assert snapshot() == after_failure and status_of(refund_id) == "failed"
    assert Receipt.objects.filter(refund_id=refund_id, kind="failure_notice").count() == 1
    assert verify(tenant.organization) == []


def test_a_failure_after_success_is_applied_and_late_events_never_go_back(
        tenant, pending, fake_stripe):
    refund_id, re_id = pending
    created = fake_stripe.event("refund.created", re_id)
    succeeded = fake_stripe.event("refund.updated", re_id, status="succeeded")
    failed = fake_stripe.event("refund.failed", re_id, status="failed",
                               failure_reason="expired_or_canceled_card")
    deliver(succeeded)
    deliver(failed)  # processors fail a refund after it succeeded
    assert status_of(refund_id) == "failed"
    settled = snapshot()
    deliver(succeeded)  # late
    deliver(created)  # later still
    assert snapshot() == settled
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert verify(tenant.organization) == []


def test_a_late_success_after_the_failure_changes_nothing(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    succeeded = fake_stripe.event("refund.updated", re_id, status="succeeded")
    deliver(fake_stripe.event("refund.failed", re_id, status="failed", failure_reason="x"))
    failed = snapshot()
    deliver(succeeded)
    assert snapshot() == failed and status_of(refund_id) == "failed"
    assert verify(tenant.organization) == []


def test_the_poll_after_a_webhook_changes_nothing_more(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    assert status_of(refund_id) == "pending"
    fake_stripe.settle(re_id, "succeeded")
    deliver(fake_stripe.event("refund.updated", re_id))
    settled = snapshot()
    assert status_of(refund_id) == "succeeded"
    make_all_tasks_due()
    run_tasks()
    assert snapshot() == settled
    assert verify(tenant.organization) == []


def test_an_event_before_the_reference_is_recorded_finds_the_refund_by_its_metadata(
        tenant, stripe_paid, fake_stripe):
    """Stripe made the refund, but its answer was lost and the call waits for its retry: the
    event finds the refund by the key in the metadata, records Stripe's id and settles it."""
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"])
    fake_stripe.fail_next("hang")
    fake_stripe.fail_next("500", method="GET")
    run_tasks()
    got = Refund.objects.get(pk=refund["id"])
    assert got.gateway_state == "to_call" and got.gateway_reference == ""
    [stripe_refund] = fake_stripe.refunds.values()

    deliver(fake_stripe.event("refund.updated", stripe_refund["id"], status="succeeded"))
    got = Refund.objects.get(pk=refund["id"])
    assert got.status == "succeeded" and got.gateway_reference == stripe_refund["id"]

    make_all_tasks_due()
    run_tasks()  # the retry is no longer due: nothing is refunded twice
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 1
    assert len(fake_stripe.refunds) == 1
    assert verify(tenant.organization) == []


@pytest.mark.parametrize("metadata", [
    {},  # no key: not made by Kassa
    {"kassa_idempotency_key": "kassa-refund-999999"},  # no such refund
    {"kassa_idempotency_key": "kassa-refund-99999999999999999999999"},  # beyond any id
    {"kassa_idempotency_key": "pay-123"},
    {"kassa_idempotency_key": ["kassa-refund-1"]},
])
def test_an_event_for_no_refund_of_ours_is_ignored(tenant, pending, fake_stripe, metadata):
    _, re_id = pending
    before = snapshot()
    deliver(fake_stripe.event("refund.updated", re_id, id="re_someone_else", status="failed",
                              metadata=metadata))
    assert snapshot() == before
    assert verify(tenant.organization) == []


def test_metadata_naming_our_refund_of_another_payment_intent_is_ignored(
        tenant, pending, fake_stripe):
    refund_id, re_id = pending
    before = snapshot()
    deliver(fake_stripe.event("refund.updated", re_id, id="re_other", status="failed",
                              payment_intent="pi_other",
                              metadata={"kassa_idempotency_key": idempotency_key(
                                  Refund.objects.get(pk=refund_id))}))
    assert snapshot() == before


@pytest.mark.parametrize("kind", ["payment_intent.succeeded", "customer.created", "refund.x"])
def test_other_event_types_are_200_and_ignored(tenant, pending, fake_stripe, kind):
    _, re_id = pending
    before = snapshot()
    deliver(fake_stripe.event(kind, re_id, status="failed"))
    assert snapshot() == before


def _bad_signatures(payload):
    now = int(time.time())
    return {
        "wrong secret": FakeStripe.sign(payload, "whsec_someone_else"),
        "stale": FakeStripe.sign(payload, WEBHOOK_SECRET, timestamp=now - 301),
        "of another body": FakeStripe.sign(payload + " ", WEBHOOK_SECRET),
        "missing": None,
        "empty": "",
        "garbage": "t=abc,v1=zzz",
        "no v1": f"t={now}",
        "v0 only": FakeStripe.sign(payload, WEBHOOK_SECRET).replace("v1=", "v0="),
    }


def test_bad_signatures_are_400_and_change_nothing(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    payload = fake_stripe.event("refund.updated", re_id, status="succeeded")
    # The hand-made signature is right (and the refund succeeded: a forged failure would show).
    assert post(payload, FakeStripe.sign(payload, WEBHOOK_SECRET)).status_code == 200
    assert status_of(refund_id) == "succeeded"
    before = snapshot()
    tampered = payload.replace('"succeeded"', '"failed"')
    cases = {**_bad_signatures(payload),
             "tampered body": FakeStripe.sign(payload, WEBHOOK_SECRET)}
    for name, signature in cases.items():
        body = tampered if name == "tampered body" else payload
        r = post(body, signature)
        assert r.status_code == 400, (name, r.content)
        assert r["Content-Type"] == "application/problem+json"
        assert r.json()["code"] == "invalid_signature", name
    assert snapshot() == before
    assert verify(tenant.organization) == []


def test_a_signature_checked_without_a_secret_configured_is_refused(
        tenant, pending, fake_stripe, settings):
    _, re_id = pending
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = fake_stripe.event("refund.updated", re_id, status="succeeded")
    before = snapshot()
    for secret in ("", WEBHOOK_SECRET):
        r = post(payload, FakeStripe.sign(payload, secret))
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    assert snapshot() == before


@pytest.mark.parametrize("gateway", ["paypal", "sandbox", "STRIPE", "x" * 300])
def test_an_unknown_gateway_is_404(db, gateway):
    r = post("{}", "t=1,v1=0", gateway=gateway)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


ODD_BODIES = [
    "", "null", "[]", "1", '"event"', "{}", "not json", '{"type": "refund.updated"}',
    '{"object": "event", "type": "refund.updated", "data": null}',
    '{"object": "event", "type": "refund.updated", "data": {"object": "re_1"}}',
    '{"object": "event", "type": "refund.updated", "data": {"object": []}}',
    '{"object": "event", "type": ["refund.updated"], "data": {"object": {}}}',
    '{"object": "event", "type": "refund.updated", "data": {"object": {"id": 5}}}',
    '{"object": "event", "type": "refund.updated", "data": {"object": {"id": "re_\\u0000"}}}',
    '{"object": "event", "type": "refund.updated", "data": {"object": {"id": "' + "r" * 5000
    + '"}}}',
    '{"object": "event", "type": "refund.failed", "data": {"object": {"id": "re_x", '
    '"status": 7, "metadata": "kassa-refund-1"}}}',
    '{"object": "event", "type": "refund.failed", "data": {"object": {"id": "re_x", '
    '"status": "failed", "metadata": {"kassa_idempotency_key": "kassa-refund-\\u0000"}}}}',
    '{"object": "v2.core.event", "type": "refund.failed"}',
    '{"object": "event", "type": "refund.failed", "data": {"object": {"id": "re_x", '
    '"status": ["failed"], "failure_reason": {"a": 1}}}}',
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_no_signed_body_makes_the_webhook_fail(tenant, pending, body):
    before = snapshot()
    r = post(body, FakeStripe.sign(body, WEBHOOK_SECRET))
    assert r.status_code in (200, 422), r.content
    if r.status_code == 422:
        assert r.json()["code"] == "validation_error"
        assert r.json()["errors"] == [{"field": "body", "message": "is not a Stripe event"}]
    assert snapshot() == before
    assert verify(tenant.organization) == []


def test_odd_fields_on_our_own_refund_never_fail_the_webhook(tenant, pending, fake_stripe):
    refund_id, re_id = pending
    before = snapshot()
    for status in (["failed"], 7, None, {"succeeded": True}, "\x00"):
        deliver(fake_stripe.event("refund.updated", re_id, status=status))
    assert snapshot() == before
    deliver(fake_stripe.event("refund.failed", re_id, status="failed",
                              failure_reason="lost\x00_card\n"))
    got = Refund.objects.get(pk=refund_id)
    assert got.status == "failed" and got.failure_reason == "lost_card"
    assert verify(tenant.organization) == []


def test_a_body_that_is_not_utf8_is_400(tenant, pending):
    before = snapshot()
    r = Client().post("/api/v1/webhooks/stripe", b"\xff\xfe{}", content_type="application/json",
                      headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    assert snapshot() == before


def test_the_webhook_is_in_the_openapi_document_without_a_bearer_token(db):
    r = Client().get("/api/v1/openapi.json")
    operation = r.json()["paths"]["/api/v1/webhooks/{gateway}"]["post"]
    assert {"200", "400", "404", "422"} <= set(operation["responses"])
    assert "application/problem+json" in operation["responses"]["400"]["content"]
    assert not operation.get("security")
    assert json.loads(r.content)  # still a valid document


def test_a_refund_made_by_another_installation_with_our_refund_id_is_ignored(
        tenant, pending, fake_stripe, settings):
    """Staging and production share one Stripe account: a refund that staging's refund 1 made
    is not production's refund 1, even while this one's answer is lost (no reference yet)."""
    refund_id, re_id = pending
    Refund.objects.filter(pk=refund_id).update(gateway_reference="")
    ours = Refund.objects.get(pk=refund_id)
    settings.KASSA_INSTALLATION = "staging0copy"
    theirs = idempotency_key(ours)
    settings.KASSA_INSTALLATION = ""
    assert theirs != idempotency_key(ours) and theirs.endswith(f"-refund-{ours.pk}")
    before = snapshot()
    deliver(fake_stripe.event("refund.updated", re_id, id="re_staging", status="succeeded",
                              metadata={"kassa_idempotency_key": theirs}))
    assert snapshot() == before
    # The same event with our own key is ours: found, and its id recorded.
    deliver(fake_stripe.event("refund.updated", re_id, status="succeeded",
                              metadata={"kassa_idempotency_key": idempotency_key(ours)}))
    assert Refund.objects.get(pk=refund_id).gateway_reference == re_id
