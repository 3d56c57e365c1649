"""A refund the gateway machinery gave up on has a person's way out, through the API: listed,
retried, resolved as paid another way (after asking the gateway), or settled by the gateway's
word — and every refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from conftest import make_all_tasks_due, run_tasks
from kassa.gateways.models import SandboxRefund
from kassa.ledger.verify import verify
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.sandbox import heal, settle

pytestmark = pytest.mark.usefixtures("few_attempts")


@pytest.fixture
def few_attempts() -> Any:
    with override_settings(KASSA_GATEWAY_ATTEMPTS=2, KASSA_GATEWAY_BACKOFF_SECONDS=1):
        yield


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    return body


def work_until_quiet() -> None:
    """The worker, and time passing, until nothing is due any more."""
    for _ in range(10):
        make_all_tasks_due()
        if not run_tasks():
            return


def unreachable_refund(tenant: Any, amount: str = "40.00") -> tuple[dict[str, Any], Refund]:
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True,
                         source="sandbox_refund_unreachable")
    ok(tenant.api.post(f"/payments/{payment['id']}/refunds",
                       {"type": "online", "amount": amount, "reason": "Family request"}), 201)
    work_until_quiet()
    refund = Refund.objects.get(payment_id=payment["id"])
    assert refund.gateway_state == "stuck" and refund.attempts == 2
    return payment, refund


def history(tenant: Any, payment: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in ok(tenant.api.get(f"/payments/{payment['id']}/history"))]


def test_an_unreachable_gateway_leaves_the_refund_listed_as_needing_attention(tenant):
    payment, refund = unreachable_refund(tenant)
    listed = ok(tenant.api.get("/refunds", needs_attention="true"))
    assert [r["id"] for r in listed] == [str(refund.pk)] and listed[0]["needs_attention"]
    assert ok(tenant.api.get("/refunds", needs_attention="false")) == []
    # It still blocks its payment, as a pending refund does.
    problem(tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "1.00", "reason": "x"}),
        409, "refund_pending")


def test_retry_after_the_gateway_heals_completes_the_refund_once(tenant):
    payment, refund = unreachable_refund(tenant)
    # Still unreachable: the retry runs its bounded attempts again and flags it again.
    retried = ok(tenant.api.post(f"/refunds/{refund.pk}/retry"))
    assert retried["needs_attention"] is False and retried["status"] == "pending"
    work_until_quiet()
    assert Refund.objects.get(pk=refund.pk).gateway_state == "stuck"

    assert heal(payment_id=payment["id"]) == {"payment": payment["id"], "healed": True}
    ok(tenant.api.post(f"/refunds/{refund.pk}/retry"))
    run_tasks()
    settle(refund_ids=[str(refund.pk)], everything=False)
    done = ok(tenant.api.get(f"/refunds/{refund.pk}"))
    assert (done["status"], done["needs_attention"]) == ("succeeded", False)
    assert SandboxRefund.objects.count() == 1
    assert history(tenant, payment).count("refund_retried") == 2
    assert verify(tenant.organization) == []


def test_paid_another_way_books_the_money_to_that_tender_and_tells_the_customer(tenant):
    payment, refund = unreachable_refund(tenant)
    heal(payment_id=payment["id"])  # the gateway can be asked again: it never had the refund
    resolved = ok(tenant.api.post(f"/refunds/{refund.pk}/resolve", {
        "action": "paid_another_way", "method": "check", "note": "Check #1042"}))
    assert (resolved["status"], resolved["type"], resolved["method"]) == (
        "recorded", "offline", "check")
    assert resolved["needs_attention"] is False and "Check #1042" in resolved["note"]
    answer = ok(tenant.api.get(f"/payments/{payment['id']}"))
    assert (answer["refunded"], answer["refundable"], answer["refund_pending"]) == (
        "40.00", "60.00", False)
    assert "refund_resolved" in history(tenant, payment)
    assert Receipt.objects.filter(refund=refund, kind="paid_another_way").count() == 1
    assert SandboxRefund.objects.count() == 0
    assert verify(tenant.organization) == []
    # The payment takes refunds again.
    ok(tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "60.00", "reason": "The rest"}), 201)


def test_the_gateway_that_has_the_refund_refuses_paying_it_another_way(tenant, unchanged):
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    ok(tenant.api.post(f"/payments/{payment['id']}/refunds",
                       {"type": "online", "amount": "40.00", "reason": "Family request"}), 201)
    run_tasks()  # the gateway has it, pending
    # Its polls ran out while the processor kept it pending: flagged.
    Refund.objects.filter(payment_id=payment["id"]).update(gateway_state="stuck")
    refund = Refund.objects.get(payment_id=payment["id"])
    with unchanged():
        body = problem(tenant.api.post(f"/refunds/{refund.pk}/resolve", {
            "action": "paid_another_way", "method": "cash"}), 409, "gateway_refund_exists")
    assert "pending" in body["detail"]
    # Taking the gateway's word puts it back in its life: polled, then settled.
    accepted = ok(tenant.api.post(f"/refunds/{refund.pk}/resolve", {"action": "accept_gateway"}))
    assert (accepted["status"], accepted["needs_attention"]) == ("pending", False)
    settle(refund_ids=[str(refund.pk)], everything=False)
    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
    assert verify(tenant.organization) == []


def test_accepting_a_gateway_that_never_had_the_refund_fails_it(tenant):
    payment, refund = unreachable_refund(tenant)
    heal(payment_id=payment["id"])
    failed = ok(tenant.api.post(f"/refunds/{refund.pk}/resolve", {"action": "accept_gateway"}))
    assert (failed["status"], failed["failure_reason"]) == (
        "failed", "the gateway has no such refund")
    answer = ok(tenant.api.get(f"/payments/{payment['id']}"))
    assert (answer["refundable"], answer["refund_pending"]) == ("100.00", False)
    assert Receipt.objects.filter(refund=refund, kind="failure_notice").count() == 1
    assert verify(tenant.organization) == []


def test_resolving_while_the_gateway_cannot_be_asked_is_refused(tenant, unchanged):
    _, refund = unreachable_refund(tenant)
    with unchanged():
        problem(tenant.api.post(f"/refunds/{refund.pk}/resolve", {
            "action": "paid_another_way", "method": "cash"}), 503, "gateway_unavailable")


def test_refusals_name_the_rule_and_change_nothing(tenant, other_tenant, unchanged):
    payment, refund = unreachable_refund(tenant)
    heal(payment_id=payment["id"])
    _, desk = tenant.user("front_desk")
    cash = tenant.pay(tenant.invoice()["id"], "10.00")
    recorded = ok(tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "1.00", "reason": "x"}), 201)
    with unchanged():
        problem(tenant.api.post(f"/refunds/{recorded['id']}/retry"), 409, "refund_not_stuck")
        problem(tenant.api.post(f"/refunds/{recorded['id']}/resolve",
                                {"action": "accept_gateway"}), 409, "refund_not_stuck")
        problem(desk.post(f"/refunds/{refund.pk}/retry"), 403, "forbidden")
        problem(other_tenant.api.post(f"/refunds/{refund.pk}/retry"), 404, "not_found")
        problem(tenant.api.post(f"/refunds/{refund.pk}/resolve", {"action": "shrug"}),
                422, "validation_error")
        problem(tenant.api.post(f"/refunds/{refund.pk}/resolve", {
            "action": "paid_another_way", "method": "card"}), 422, "validation_error")
        problem(tenant.api.post(f"/refunds/{refund.pk}/resolve", {
            "action": "paid_another_way", "method": "other"}), 422, "note_required")
