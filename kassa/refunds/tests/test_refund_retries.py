"""Retries that must not refund twice nor lose a refund: the API's Idempotency-Key, the gateway
call repeated (by a retry, a duplicate task, or a worker that died between the call and the
write), and a gateway that keeps failing (backed off, bounded, then flagged for a person)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from conftest import make_all_tasks_due, run_tasks
from kassa.billing.models import Payment
from kassa.gateways.base import GatewayError
from kassa.gateways.models import SandboxRefund
from kassa.gateways.sandbox import SandboxGateway
from kassa.ledger.models import JournalEntry
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds import gateway_calls
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.sandbox import settle
from kassa.refunds.tasks import sweep_refunds


@pytest.fixture
def card_payment(tenant: Any) -> dict[str, Any]:
    inv = tenant.invoice()
    return tenant.pay(inv["id"], "100.00", method="card", online=True)


def online_refund(tenant: Any, payment: dict[str, Any], amount: str = "40.00") -> Refund:
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": amount, "reason": "Guest changed plans"})
    assert r.status_code == 201, r.content
    return Refund.objects.get(pk=r.json()["id"])


def sandbox_refunds(refund: Refund) -> int:
    return SandboxRefund.objects.filter(
        idempotency_key=gateway_calls.idempotency_key(refund)).count()


class WorkerDied(BaseException):
    """What the process sees of a kill -9: nothing after this point runs."""


# The API: the same Idempotency-Key and body give the same answer, once.

def test_refund_retried_with_the_same_idempotency_key_is_made_once(tenant, card_payment):
    body = {"type": "offline", "amount": "15.00", "reason": "Late cancellation",
            "method": "check", "note": "check #77"}
    path = f"/payments/{card_payment['id']}/refunds"
    first = tenant.api.post(path, body, key="refund-attempt-1")
    again = tenant.api.post(path, body, key="refund-attempt-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Refund.objects.filter(payment_id=card_payment["id"]).count() == 1
    assert Receipt.objects.filter(refund__payment_id=card_payment["id"]).count() == 1
    assert Payment.objects.get(pk=card_payment["id"]).refunded_minor == 1500
    assert verify(tenant.organization) == []


def test_online_refund_retried_with_the_same_key_is_one_gateway_refund(tenant, card_payment):
    body = {"type": "online", "amount": "20.00", "reason": "Duplicate charge"}
    path = f"/payments/{card_payment['id']}/refunds"
    first = tenant.api.post(path, body, key="k-online")
    run_tasks()
    again = tenant.api.post(path, body, key="k-online")
    run_tasks()

    assert (again.status_code, again.json()) == (first.status_code, first.json())
    [refund] = Refund.objects.filter(payment_id=card_payment["id"])
    assert sandbox_refunds(refund) == 1 and SandboxRefund.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_a_conflict_and_changes_nothing(
        tenant, card_payment):
    path = f"/payments/{card_payment['id']}/refunds"
    base = {"type": "offline", "amount": "15.00", "reason": "Late cancellation",
            "method": "cash"}
    assert tenant.api.post(path, base, key="k-1").status_code == 201
    entries = JournalEntry.objects.count()

    r = tenant.api.post(path, {**base, "amount": "16.00"}, key="k-1")

    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert Refund.objects.filter(payment_id=card_payment["id"]).count() == 1
    assert JournalEntry.objects.count() == entries
    assert Payment.objects.get(pk=card_payment["id"]).refunded_minor == 1500


def test_a_refused_refund_replays_its_refusal(tenant, card_payment):
    path = f"/payments/{card_payment['id']}/refunds"
    body = {"type": "offline", "amount": "100.01", "reason": "Too much", "method": "cash"}
    first = tenant.api.post(path, body, key="k-over")
    again = tenant.api.post(path, body, key="k-over")
    assert first.status_code == again.status_code == 422
    assert again.json() == first.json() and first.json()["code"] == "refund_exceeds_refundable"
    assert not Refund.objects.exists()


def test_a_keyed_refund_its_claim_and_its_answer_commit_together(tenant, card_payment,
                                                                   monkeypatch):
    """The request fails after the refund is written, while its answer is made: the refund
    goes with it, and so does the claim, so the retry simply runs."""
    from kassa.core.models import IdempotentRequest
    from kassa.refunds import api

    path = f"/payments/{card_payment['id']}/refunds"
    body = {"type": "offline", "amount": "10.00", "reason": "Changed plans", "method": "cash"}
    entries = JournalEntry.objects.count()
    real = api.refund_json
    monkeypatch.setattr(api, "refund_json", lambda refund: 1 / 0)
    tenant.api.client.raise_request_exception = False
    failed = tenant.api.post(path, body, key="k-dies")
    assert failed.status_code == 500
    assert not Refund.objects.exists() and JournalEntry.objects.count() == entries
    assert not IdempotentRequest.objects.filter(key="k-dies").exists()
    assert Payment.objects.get(pk=card_payment["id"]).refunded_minor == 0

    monkeypatch.setattr(api, "refund_json", real)
    again = tenant.api.post(path, body, key="k-dies")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Refund.objects.count() == 1
    assert verify(tenant.organization) == []


def test_a_keyed_refund_waiting_out_the_database_is_503_busy_and_changes_nothing(
        tenant, card_payment, monkeypatch):
    from django.db import OperationalError

    from kassa import idempotency
    from kassa.core.models import IdempotentRequest

    def locked(*args):
        raise OperationalError("database is locked")

    monkeypatch.setattr(idempotency, "_claim_in_transaction", locked)
    path = f"/payments/{card_payment['id']}/refunds"
    body = {"type": "offline", "amount": "10.00", "reason": "Changed plans", "method": "cash"}
    r = tenant.api.post(path, body, key="k-busy")
    assert r.status_code == 503 and r.json()["code"] == "busy", r.content
    assert not Refund.objects.exists() and not IdempotentRequest.objects.exists()


def test_a_refund_whose_claim_was_left_unanswered_is_answered_not_made_again(tenant,
                                                                             card_payment):
    """A claim left unanswered with its refund committed (as the earlier, three-transaction
    path could leave one, or a takeover's run): the retry takes it over and answers the
    refund its key made, found under the locks."""
    from kassa.core.models import IdempotentRequest

    path = f"/payments/{card_payment['id']}/refunds"
    body = {"type": "offline", "amount": "10.00", "reason": "Changed plans", "method": "cash"}
    first = tenant.api.post(path, body, key="k-left")
    assert first.status_code == 201
    IdempotentRequest.objects.filter(key="k-left").update(
        status_code=None, body=b"", claimed_at=timezone.now() - dt.timedelta(minutes=5))
    again = tenant.api.post(path, body, key="k-left")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert Refund.objects.count() == 1
    assert Payment.objects.get(pk=card_payment["id"]).refunded_minor == 1000
    assert verify(tenant.organization) == []


def test_a_keyed_refunds_key_is_free_again_after_its_day(tenant, card_payment):
    """Its claim was written in the refund's transaction, by hand-written SQL: stored as the
    ORM stores it, so the look-up that frees an expired key matches it."""
    import time_machine

    path = f"/payments/{card_payment['id']}/refunds"
    body = {"type": "offline", "amount": "10.00", "reason": "Changed plans", "method": "cash"}
    assert tenant.api.post(path, body, key="k-day").status_code == 201
    with time_machine.travel(dt.timedelta(hours=25)):
        again = tenant.api.post(path, {**body, "amount": "5.00"}, key="k-day")
    assert again.status_code == 201, again.content
    assert "Idempotent-Replayed" not in again
    assert Refund.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_make_one_refund_and_share_its_answer(tenant):
    """The later ones wait for the first's transaction to end (its claim is not committed
    before), then answer what it answered."""
    from django.test import Client

    from conftest import Api, race

    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    path = f"/payments/{payment['id']}/refunds"
    body = {"type": "offline", "amount": "10.00", "reason": "Changed plans", "method": "cash"}
    answers = race(4, lambda i: Api(tenant.token, Client()).post(path, body, key="k-race"))
    assert [a.status_code for a in answers] == [201] * 4, answers
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.get("Idempotent-Replayed") == "true" for a in answers) == 3
    assert Refund.objects.count() == 1
    assert Payment.objects.get(pk=payment["id"]).refunded_minor == 1000
    assert verify(tenant.organization) == []


# The gateway call: repeated, it is one refund at the gateway.

def test_gateway_call_made_twice_refunds_once(tenant, card_payment):
    refund = online_refund(tenant, card_payment)
    gateway_calls.call_gateway(refund.pk)
    gateway_calls.call_gateway(refund.pk)  # a duplicate task: the claim makes it a no-op
    refund.refresh_from_db()
    reference = refund.gateway_reference
    assert refund.gateway_state == "called" and reference.startswith("re_")

    # Even forced to call again (as after a lost claim), the key makes it the same refund.
    Refund.objects.filter(pk=refund.pk).update(gateway_state="to_call",
                                               next_attempt_at=timezone.now())
    gateway_calls.call_gateway(refund.pk)
    refund.refresh_from_db()
    assert refund.gateway_reference == reference and sandbox_refunds(refund) == 1

    run_tasks()
    settle(refund_ids=[str(refund.pk)], everything=False)
    refund.refresh_from_db()
    assert refund.status == "succeeded" and sandbox_refunds(refund) == 1
    assert balance("card", organization=tenant.organization) == 10000 - 4000
    assert verify(tenant.organization) == []


def test_worker_dying_after_the_gateway_call_finishes_the_refund_once(
        tenant, card_payment, monkeypatch):
    refund = online_refund(tenant, card_payment)
    real_refund = SandboxGateway.refund

    def refund_then_die(self: SandboxGateway, **kwargs: Any) -> Any:
        real_refund(self, **kwargs)
        raise WorkerDied  # the gateway has the refund; Kassa never hears of it

    monkeypatch.setattr(SandboxGateway, "refund", refund_then_die)
    run_tasks()
    monkeypatch.undo()

    refund.refresh_from_db()
    assert refund.gateway_state == "calling" and refund.gateway_reference == ""
    assert sandbox_refunds(refund) == 1
    # While the claim stands, the sweep leaves the call alone: its worker may still be at it.
    assert sweep_refunds(refund.next_attempt_at - dt.timedelta(seconds=1)) == 0
    assert run_tasks() == 0

    make_all_tasks_due()  # the claim expires: the sweep gives the call to another worker
    run_tasks()

    refund.refresh_from_db()
    assert refund.gateway_state == "called" and refund.gateway_reference.startswith("re_")
    assert sandbox_refunds(refund) == 1
    settle(refund_ids=[str(refund.pk)], everything=False)
    refund.refresh_from_db()
    assert refund.status == "succeeded" and sandbox_refunds(refund) == 1
    payment = Payment.objects.get(pk=card_payment["id"])
    assert payment.refunded_minor == 4000 and not payment.refund_pending
    assert verify(tenant.organization) == []


def test_worker_dying_before_the_gateway_call_makes_the_call_later(
        tenant, card_payment, monkeypatch):
    refund = online_refund(tenant, card_payment)

    def die(self: SandboxGateway, **kwargs: Any) -> Any:
        raise WorkerDied

    monkeypatch.setattr(SandboxGateway, "refund", die)
    run_tasks()
    monkeypatch.undo()
    assert sandbox_refunds(refund) == 0

    make_all_tasks_due()
    run_tasks()
    refund.refresh_from_db()
    assert refund.gateway_state == "called" and sandbox_refunds(refund) == 1
    assert verify(tenant.organization) == []


def test_gateway_down_is_retried_with_backoff_then_succeeds_once(
        tenant, card_payment, monkeypatch):
    refund = online_refund(tenant, card_payment)
    real_refund = SandboxGateway.refund
    calls: list[dt.datetime] = []

    def flaky(self: SandboxGateway, **kwargs: Any) -> Any:
        calls.append(timezone.now())
        if len(calls) <= 2:
            raise GatewayError("503 Service Unavailable")
        return real_refund(self, **kwargs)

    monkeypatch.setattr(SandboxGateway, "refund", flaky)
    run_tasks()
    refund.refresh_from_db()
    assert len(calls) == 1
    assert (refund.gateway_state, refund.attempts) == ("to_call", 1)
    assert "503" in refund.last_error
    first_wait = refund.next_attempt_at - calls[0]
    assert dt.timedelta(seconds=9) <= first_wait <= dt.timedelta(seconds=11)
    assert run_tasks() == 0  # the retry waits for its time

    for _ in range(5):
        make_all_tasks_due()
        run_tasks()
        refund.refresh_from_db()
        if refund.gateway_state == "called":
            break
    assert refund.gateway_state == "called" and refund.last_error == ""
    assert sandbox_refunds(refund) == 1
    assert gateway_calls.backoff(2) == 2 * gateway_calls.backoff(1)
    settle(refund_ids=[str(refund.pk)], everything=False)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert verify(tenant.organization) == []


def test_gateway_that_keeps_failing_is_flagged_after_the_bound_not_forgotten(
        tenant, card_payment, monkeypatch):
    refund = online_refund(tenant, card_payment)
    calls = []

    def down(self: SandboxGateway, **kwargs: Any) -> Any:
        calls.append(kwargs["idempotency_key"])
        raise GatewayError("connection reset by peer")

    monkeypatch.setattr(SandboxGateway, "refund", down)
    run_tasks()
    for _ in range(3 * gateway_calls.max_call_attempts()):
        make_all_tasks_due()
        run_tasks()
    refund.refresh_from_db()

    assert len(calls) == gateway_calls.max_call_attempts()
    assert set(calls) == {gateway_calls.idempotency_key(refund)}  # one key for every try
    assert refund.gateway_state == "stuck" and refund.attempts == gateway_calls.max_call_attempts()
    assert refund.status == "pending" and "connection reset" in refund.last_error
    got = tenant.api.get(f"/refunds/{refund.pk}").json()
    assert got["needs_attention"] is True and got["status"] == "pending"
    # Not forgotten: the money stays reserved, no second refund can start, nothing refunded.
    p = tenant.api.get(f"/payments/{card_payment['id']}").json()
    assert p["refund_pending"] is True and p["refundable"] == "60.00"
    r = tenant.api.post(f"/payments/{card_payment['id']}/refunds",
                        {"type": "online", "amount": "1.00", "reason": "again"})
    assert r.status_code == 409 and r.json()["code"] == "refund_pending"
    assert balance("refunds_in_transit", organization=tenant.organization) == -4000
    assert SandboxRefund.objects.count() == 0
    assert verify(tenant.organization) == []


def test_gateway_refusing_for_good_fails_the_refund_and_gives_the_money_back(
        tenant, card_payment, monkeypatch):
    refund = online_refund(tenant, card_payment)

    def refused(self: SandboxGateway, **kwargs: Any) -> Any:
        raise GatewayError("charge already fully refunded", permanent=True)

    monkeypatch.setattr(SandboxGateway, "refund", refused)
    run_tasks()
    refund.refresh_from_db()
    assert refund.status == "failed" and "fully refunded" in refund.failure_reason
    p = Payment.objects.get(pk=card_payment["id"])
    assert p.refunded_minor == 0 and not p.refund_pending
    assert Receipt.objects.filter(refund=refund, kind="failure_notice").exists()
    assert verify(tenant.organization) == []


def test_a_call_whose_worker_keeps_dying_is_flagged_after_the_bound(
        tenant, card_payment, monkeypatch):
    """Not only gateway errors are bounded: a call that never comes back (its worker killed,
    an unexpected exception) is given up after max_call_attempts() claims too."""
    refund = online_refund(tenant, card_payment)
    calls = []

    def die(self: SandboxGateway, **kwargs: Any) -> Any:
        calls.append(1)
        raise WorkerDied

    monkeypatch.setattr(SandboxGateway, "refund", die)
    run_tasks()
    for _ in range(3 * gateway_calls.max_call_attempts()):
        make_all_tasks_due()
        run_tasks()
    refund.refresh_from_db()
    assert len(calls) == gateway_calls.max_call_attempts()
    assert refund.gateway_state == "stuck" and refund.status == "pending"
    assert tenant.api.get(f"/refunds/{refund.pk}").json()["needs_attention"] is True
    assert verify(tenant.organization) == []
