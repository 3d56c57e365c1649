"""Online payments and refunds through the Stripe gateway, end to end through the API, the
tasks and the SDK, against a local fake Stripe (kassa.gateways.tests.fake_stripe)."""

from __future__ import annotations

import json

import pytest

from conftest import make_all_tasks_due, run_tasks
from kassa.gateways.base import RefundState
from kassa.gateways.stripe import StripeGateway, refund_state
from kassa.gateways.tests.conftest import issue_refund, snapshot
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.gateway_calls import idempotency_key
from kassa.refunds.models import Receipt, Refund


def pay(tenant, invoice_id, source, amount="100.00"):
    return tenant.api.post(f"/invoices/{invoice_id}/payments",
                           {"amount": amount, "method": "card", "online": True, "source": source})


def test_online_payment_with_pm_card_visa_creates_and_confirms_a_payment_intent(
        tenant, stripe_paid, fake_stripe):
    inv, payment = stripe_paid
    [call] = fake_stripe.calls_to("POST", "/v1/payment_intents")
    assert call.params["amount"] == "21775" and call.params["currency"] == "usd"
    assert call.params["payment_method"] == "pm_card_visa" and call.params["confirm"] == "true"
    assert call.params["allowed_payment_method_types[0]"] == "card"
    assert call.params["error_on_requires_action"] == "true"
    assert call.params["description"] == f"Invoice {inv['number']}"
    from kassa.billing.charges import payment_key
    from kassa.billing.models import Payment

    got = Payment.objects.get(pk=payment["id"])
    assert call.idempotency_key == payment_key(got)
    assert call.idempotency_key.endswith(f"-payment-{got.pk}")
    assert call.params["metadata[kassa_idempotency_key]"] == call.idempotency_key
    [intent] = fake_stripe.payment_intents.values()
    assert intent["status"] == "succeeded" and payment["status"] == "succeeded"
    assert got.gateway == "stripe" and got.gateway_reference == intent["id"]
    assert payment["refundable"] == "217.75"
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["status"] == "closed"
    assert verify(tenant.organization) == []


def booked() -> tuple[int, int, list[tuple[int, bool]]]:
    """What a payment books: entries, allocations, the invoices' figures."""
    from kassa.billing.models import Invoice, PaymentAllocation
    from kassa.ledger.models import JournalEntry

    return (JournalEntry.objects.count(), PaymentAllocation.objects.count(),
            list(Invoice.objects.order_by("pk").values_list("balance_due_minor", "paid_minor")))


def test_declined_card_is_402_and_books_nothing(tenant, fake_stripe):
    inv = tenant.invoice()
    before = booked()
    r = pay(tenant, inv["id"], "pm_card_chargeDeclined")
    assert r.status_code == 402 and r.json()["code"] == "payment_declined"
    assert r["Content-Type"] == "application/problem+json"
    assert booked() == before
    [declined] = tenant.api.get(f"/invoices/{inv['id']}").json()["payments"]
    assert declined["status"] == "declined" and "declined" in declined["failure_reason"]
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "100.00"
    assert verify(tenant.organization) == []


def test_unknown_payment_method_is_422_on_source_and_books_nothing(tenant, fake_stripe):
    """Not a PaymentMethod id at all: refused before anything is written. One Stripe does not
    know: only Stripe can tell, so the payment recorded for it ends declined."""
    from kassa.billing.models import Payment

    inv = tenant.invoice()
    before = snapshot()
    r = pay(tenant, inv["id"], "sandbox_ok")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "source"
    assert snapshot() == before
    r = pay(tenant, inv["id"], "pm_no_such_method")
    assert r.status_code == 422, r.content
    assert r.json()["errors"][0]["field"] == "source"
    assert list(Payment.objects.values_list("status", flat=True)) == ["declined"]
    assert verify(tenant.organization) == []


@pytest.mark.parametrize("mode", ["500", "500_after", "hang"])
def test_stripe_down_during_a_payment_is_503_and_resolved_by_its_key(tenant, fake_stripe, mode):
    """Stripe failed before charging (500), after charging (500_after: the charge stands), or
    the answer was lost (hang): the payment stays processing, and the worker finds the
    PaymentIntent by the key in its metadata — booked once if it exists, failed if not."""
    from kassa.billing.models import Payment

    inv = tenant.invoice()
    before = booked()
    fake_stripe.fail_next(mode, path="/v1/payment_intents")
    r = pay(tenant, inv["id"], "pm_card_visa")
    assert r.status_code == 503 and r.json()["code"] == "gateway_unavailable"
    assert booked() == before
    make_all_tasks_due()
    run_tasks()
    assert fake_stripe.calls_to("GET", "/v1/payment_intents/search")
    payment = Payment.objects.get()
    charged = [i for i in fake_stripe.payment_intents.values() if i["status"] == "succeeded"]
    if mode == "500":
        assert charged == [] and payment.status == "failed"
        assert booked() == before
    else:
        [intent] = charged
        assert payment.status == "succeeded" and payment.gateway_reference == intent["id"]
        assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "0.00"
    assert len(fake_stripe.calls_to("POST", "/v1/payment_intents")) == 1  # never charged again
    assert verify(tenant.organization) == []


def test_a_processing_payment_is_booked_by_the_succeeded_webhook(tenant, fake_stripe):
    """A bank debit: Stripe answers processing; the payment holds its amount, unbooked, until
    `payment_intent.succeeded` (or `payment_intent.payment_failed`) arrives."""
    from kassa.billing.models import Payment
    from kassa.gateways.tests.test_stripe_webhooks import deliver

    invoices = [tenant.invoice(), tenant.invoice()]
    before = booked()
    answers = [pay(tenant, inv["id"], "pm_usBankAccount_processing") for inv in invoices]
    assert [(r.status_code, r.json()["status"]) for r in answers] == [(201, "processing")] * 2
    assert booked() == before
    refused = tenant.api.post(f"/payments/{answers[0].json()['id']}/refunds", {
        "type": "online", "amount": "1.00", "reason": "Changed plans"})
    assert refused.status_code == 409 and refused.json()["code"] == "payment_not_succeeded"
    news = [("payment_intent.succeeded", "succeeded"),
            ("payment_intent.payment_failed", "requires_payment_method")]
    for r, (kind, status) in zip(answers, news, strict=True):
        reference = Payment.objects.get(pk=r.json()["id"]).gateway_reference
        intent = fake_stripe.payment_intents[reference]
        intent["status"] = status
        body = json.dumps({"id": f"evt_{kind}", "object": "event", "type": kind,
                           "data": {"object": intent}})
        for _ in range(2):  # a duplicate changes nothing
            deliver(body)
    statuses = [tenant.api.get(f"/payments/{r.json()['id']}").json()["status"] for r in answers]
    assert statuses == ["succeeded", "failed"]
    assert [tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"]
            for inv in invoices] == ["0.00", "100.00"]
    assert verify(tenant.organization) == []


def test_online_refund_calls_stripe_once_with_the_refunds_key_and_settles_by_poll(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"], "50.00")
    assert fake_stripe.calls_to("POST", "/v1/refunds") == []  # never inside the transaction

    run_tasks()
    [call] = fake_stripe.calls_to("POST", "/v1/refunds")
    assert call.idempotency_key == idempotency_key(Refund.objects.get(pk=refund["id"]))
    [intent] = fake_stripe.payment_intents.values()
    assert call.params["payment_intent"] == intent["id"] and call.params["amount"] == "5000"
    assert call.params["metadata[kassa_idempotency_key]"] == call.idempotency_key
    [stripe_refund] = fake_stripe.refunds.values()
    got = Refund.objects.get(pk=refund["id"])
    assert got.gateway_reference == stripe_refund["id"] and got.status == "pending"
    assert verify(tenant.organization) == []

    make_all_tasks_due()
    run_tasks()  # Stripe still says pending: nothing changes
    assert Refund.objects.get(pk=refund["id"]).status == "pending"

    fake_stripe.settle(stripe_refund["id"], "succeeded")
    make_all_tasks_due()
    run_tasks()
    done = tenant.api.get(f"/refunds/{refund['id']}").json()
    assert done["status"] == "succeeded" and done["settled_at"]
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 1
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refundable"] == "167.75"
    assert verify(tenant.organization) == []


def test_a_500_on_the_refund_call_is_retried_with_the_same_key_and_refunds_once(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"])
    fake_stripe.fail_next("500")

    run_tasks()
    got = Refund.objects.get(pk=refund["id"])
    assert got.status == "pending" and got.gateway_state == "to_call" and got.attempts == 1
    assert "Something went wrong" in got.last_error and fake_stripe.refunds == {}
    assert verify(tenant.organization) == []

    make_all_tasks_due()
    run_tasks()
    calls = fake_stripe.calls_to("POST", "/v1/refunds")
    assert [c.idempotency_key for c in calls] == [
        idempotency_key(Refund.objects.get(pk=refund["id"]))] * 2
    [stripe_refund] = fake_stripe.refunds.values()
    got = Refund.objects.get(pk=refund["id"])
    assert got.gateway_state == "called" and got.gateway_reference == stripe_refund["id"]

    fake_stripe.settle(stripe_refund["id"], "succeeded")
    make_all_tasks_due()
    run_tasks()
    assert Refund.objects.get(pk=refund["id"]).status == "succeeded"
    assert len(fake_stripe.refunds) == 1
    assert verify(tenant.organization) == []


def test_a_lost_answer_is_retried_with_the_same_key_and_refunds_once(
        tenant, stripe_paid, fake_stripe):
    """Stripe made the refund but its answer never came (the client timed out), and Stripe
    could not be asked about it either: the retry's same key gets the same refund back."""
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"])
    fake_stripe.fail_next("hang")
    fake_stripe.fail_next("500", method="GET")

    run_tasks()
    got = Refund.objects.get(pk=refund["id"])
    assert got.gateway_state == "to_call" and got.gateway_reference == ""
    assert len(fake_stripe.refunds) == 1  # made, though Kassa does not know it yet

    make_all_tasks_due()
    run_tasks()
    [stripe_refund] = fake_stripe.refunds.values()
    assert Refund.objects.get(pk=refund["id"]).gateway_reference == stripe_refund["id"]
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 2
    assert verify(tenant.organization) == []


def test_a_500_stripe_keeps_for_the_key_is_resolved_by_the_refunds_metadata(
        tenant, stripe_paid, fake_stripe):
    """Stripe replays a 500 to every retry with its key once the endpoint began; the refund it
    may have made is found among the PaymentIntent's refunds by the key in its metadata."""
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"])
    fake_stripe.fail_next("500_after")

    run_tasks()
    [stripe_refund] = fake_stripe.refunds.values()
    got = Refund.objects.get(pk=refund["id"])
    assert got.gateway_state == "called" and got.gateway_reference == stripe_refund["id"]
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 1
    assert verify(tenant.organization) == []


def test_a_refund_stripe_refuses_fails_and_gives_the_amount_back(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    [intent] = fake_stripe.payment_intents.values()
    # Refunded in Stripe's dashboard meanwhile: nothing is left for Kassa's refund.
    StripeGateway().refund(charge_reference=intent["id"], amount_minor=intent["amount"],
                           currency="USD", idempotency_key="dashboard")
    refund = issue_refund(tenant, payment["id"])

    run_tasks()
    got = tenant.api.get(f"/refunds/{refund['id']}").json()
    assert got["status"] == "failed" and "greater than unrefunded" in got["failure_reason"]
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refundable"] == "217.75"
    assert Receipt.objects.filter(refund_id=refund["id"], kind="failure_notice").exists()
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 2  # the dashboard's and ours
    assert verify(tenant.organization) == []


def test_a_refund_that_fails_at_stripe_later_fails_in_kassa_by_poll(
        tenant, stripe_paid, fake_stripe):
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"], "217.75")
    run_tasks()
    [stripe_refund] = fake_stripe.refunds.values()
    fake_stripe.settle(stripe_refund["id"], "failed", "expired_or_canceled_card")

    make_all_tasks_due()
    run_tasks()
    got = tenant.api.get(f"/refunds/{refund['id']}").json()
    assert got["status"] == "failed" and got["failure_reason"] == "expired_or_canceled_card"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refundable"] == "217.75"
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert verify(tenant.organization) == []


def test_stripe_unreachable_while_polling_keeps_the_refund_pending(
        tenant, stripe_paid, fake_stripe):
    """An error asking about a refund says nothing of its money: it never fails the refund."""
    _, payment = stripe_paid
    refund = issue_refund(tenant, payment["id"])
    run_tasks()
    [stripe_refund] = fake_stripe.refunds.values()
    fake_stripe.refunds.clear()  # Stripe answers 404 for it, as with a wrong account or key

    make_all_tasks_due()
    run_tasks()
    got = Refund.objects.get(pk=refund["id"])
    assert got.status == "pending" and "No such refund" in got.last_error
    assert verify(tenant.organization) == []
    assert stripe_refund["id"] == got.gateway_reference


@pytest.mark.parametrize(("status", "state"), [
    ("pending", RefundState.PENDING), ("requires_action", RefundState.PENDING),
    ("succeeded", RefundState.SUCCEEDED), ("failed", RefundState.FAILED),
    ("canceled", RefundState.FAILED), ("something_new", RefundState.PENDING), (None, "pending"),
])
def test_stripe_refund_statuses_map_to_ours(status, state):
    assert refund_state(status) == state


def test_a_booked_charge_the_bank_fails_later_is_reversed(tenant, fake_stripe):
    """A bank debit booked on `payment_intent.succeeded`, then failed after all: the booking
    is undone — the invoice owes it again, the day's collections net it out — and a duplicate
    of the failure changes nothing."""
    from kassa.billing.models import Payment
    from kassa.gateways.tests.test_stripe_webhooks import deliver

    inv = tenant.invoice()
    r = pay(tenant, inv["id"], "pm_usBankAccount_processing")
    payment = Payment.objects.get(pk=r.json()["id"])
    intent = fake_stripe.payment_intents[payment.gateway_reference]
    for kind, status in (("payment_intent.succeeded", "succeeded"),
                         ("payment_intent.payment_failed", "requires_payment_method")):
        intent["status"] = status
        intent["last_payment_error"] = {"message": "The account was closed"} if (
            status != "succeeded") else None
        body = json.dumps({"id": f"evt_{kind}", "object": "event", "type": kind,
                           "data": {"object": intent}})
        deliver(body)
        if status == "succeeded":
            assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "0.00"
        else:
            deliver(body)  # a duplicate changes nothing
    got = tenant.api.get(f"/payments/{payment.pk}").json()
    assert got["status"] == "failed" and got["failure_reason"] == "The account was closed"
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (invoice["balance_due"], invoice["paid"], invoice["status"]) == (
        "100.00", "0.00", "open")
    day = tenant.api.get("/reports/daily").json()
    assert day["collections"]["received"] == "0.00" and day["collections"]["refunded"] == "0.00"
    history = [e["kind"] for e in tenant.api.get(f"/payments/{payment.pk}/history").json()]
    assert history.count("payment_failed") == 1
    assert verify(tenant.organization) == []
