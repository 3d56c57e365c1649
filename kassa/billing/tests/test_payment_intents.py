"""Online payments as intents: recorded before the charge, booked after it, and never lost in
between. Every step of the payment path is made to fail — the gateway answering, timing out
before or after it charged, failing with a 5xx, the process dying after the intent, after the
charge, in the middle of the booking — and after recovery (the worker, or a retry of the same
request) each charge is booked exactly once or not at all: the sandbox's charges equal Kassa's
succeeded payments one to one, and `kassa verify` is clean."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from conftest import make_all_tasks_due, run_tasks
from kassa.billing import charges
from kassa.billing.models import Payment
from kassa.core.models import IdempotentRequest
from kassa.gateways.base import GatewayError
from kassa.gateways.models import SandboxCharge
from kassa.gateways.sandbox import SandboxGateway
from kassa.ledger.models import JournalEntry
from kassa.ledger.verify import verify


class Died(BaseException):
    """The process dying at this point (nothing after it runs; no handler catches it)."""


def pay(tenant: Any, invoice_id: str, key: str | None = None, **body: Any) -> Any:
    return tenant.api.post(f"/invoices/{invoice_id}/payments",
                           {"amount": "100.00", "method": "card", "online": True, **body},
                           key=key)


def one_to_one(tenant: Any) -> None:
    """Every charge the sandbox kept (succeeded, not given back) is exactly one succeeded
    payment, and back."""
    kept = sorted(SandboxCharge.objects.filter(state="succeeded", cancelled=False)
                  .values_list("reference", flat=True))
    booked = sorted(Payment.objects.filter(status="succeeded", online=True)
                    .values_list("gateway_reference", flat=True))
    assert kept == booked
    assert verify(tenant.organization) == []


def recover() -> None:
    """Time passes and the worker runs: whatever is due is done."""
    make_all_tasks_due()
    run_tasks()


def died_holding(tenant: Any, key: str, fingerprint: str) -> None:
    """What a SIGKILL leaves of the request's claim: its row, with no answer, claimed long ago
    (in this process the middleware's clean-up for an exception ran; a killed one's cannot)."""
    import datetime as dt

    from django.utils import timezone

    long_ago = timezone.now() - dt.timedelta(minutes=5)
    IdempotentRequest.objects.filter(key=key).delete()
    IdempotentRequest.objects.create(organization=tenant.organization, key=key,
                                     fingerprint=fingerprint, claimed_at=long_ago)


def record_fingerprints(monkeypatch: Any) -> list[str]:
    from kassa import idempotency

    seen: list[str] = []
    real = idempotency._claim

    def claim(organization_id: int, key: str, fingerprint: str) -> Any:
        seen.append(fingerprint)
        return real(organization_id, key, fingerprint)

    monkeypatch.setattr(idempotency, "_claim", claim)
    return seen


def fail_charge(monkeypatch: Any, *, after_charging: bool, error: BaseException) -> None:
    real = SandboxGateway.charge

    def charge(self: Any, **kwargs: Any) -> Any:
        if after_charging:
            real(self, **kwargs)
        raise error

    monkeypatch.setattr(SandboxGateway, "charge", charge)


# step → (how it fails, whether the sandbox kept a charge)
def _gateway_5xx(mp: Any) -> None:
    fail_charge(mp, after_charging=False, error=GatewayError("502 from the gateway"))


def _answer_lost(mp: Any) -> None:
    fail_charge(mp, after_charging=True, error=GatewayError("read timed out"))


def _died_before_charging(mp: Any) -> None:
    fail_charge(mp, after_charging=False, error=Died())


def _died_after_charging(mp: Any) -> None:
    fail_charge(mp, after_charging=True, error=Died())


def _died_in_the_booking(mp: Any) -> None:
    real = charges.book

    def book(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise Died()  # inside the booking's transaction: it all rolls back

    mp.setattr(charges, "book", book)


STEPS = {
    "gateway 5xx": (_gateway_5xx, False),
    "answer lost": (_answer_lost, True),
    "died before charging": (_died_before_charging, False),
    "died after charging": (_died_after_charging, True),
    "died in the booking": (_died_in_the_booking, True),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_every_failure_is_booked_once_or_not_at_all_by_the_worker(tenant, monkeypatch, step):
    inject, charged = STEPS[step]
    inv = tenant.invoice()
    inject(monkeypatch)
    try:
        r = pay(tenant, inv["id"])
        assert r.status_code == 503, r.content  # the gateway's trouble, told as such
    except Died:
        pass  # the process died: no answer at all
    monkeypatch.undo()
    [payment] = Payment.objects.all()
    assert payment.status == "processing" and not JournalEntry.objects.filter(
        kind="payment").exists()
    # Meanwhile the intent holds its amount: no one else takes the same balance.
    assert tenant.api.post(f"/invoices/{inv['id']}/payments", {
        "amount": "0.01", "method": "cash", "online": False}).json()["code"] == (
        "payment_exceeds_balance")

    recover()
    payment.refresh_from_db()
    assert payment.status == ("succeeded" if charged else "failed")
    assert payment.charge_state == ""
    assert SandboxCharge.objects.count() == (1 if charged else 0)
    balance_due = tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"]
    assert balance_due == ("0.00" if charged else "100.00")
    recover()  # again: nothing more happens
    assert Payment.objects.get().status == payment.status
    one_to_one(tenant)


@pytest.mark.parametrize("step", list(STEPS))
def test_a_retry_of_the_request_takes_over_and_charges_once(tenant, monkeypatch, step):
    """The same request again (same Idempotency-Key) after the first died or failed: it goes
    on with the same payment and the same gateway key — one charge, one payment."""
    inject, _ = STEPS[step]
    inv = tenant.invoice()
    seen = record_fingerprints(monkeypatch)
    inject(monkeypatch)
    died = False
    try:
        pay(tenant, inv["id"], key="desk-1")
    except Died:
        died = True
    monkeypatch.undo()
    [intent] = Payment.objects.all()
    if died:
        died_holding(tenant, "desk-1", seen[0])
    else:  # a 503 is not kept: the key is free for the retry at once
        assert not IdempotentRequest.objects.filter(key="desk-1").exists()

    again = pay(tenant, inv["id"], key="desk-1")
    assert again.status_code == 201, again.content
    assert again.json()["id"] == str(intent.pk) and again.json()["status"] == "succeeded"
    assert SandboxCharge.objects.count() == 1 and Payment.objects.count() == 1
    replay = pay(tenant, inv["id"], key="desk-1")
    assert replay.content == again.content and replay["Idempotent-Replayed"] == "true"
    recover()
    one_to_one(tenant)


@pytest.mark.parametrize(("claimed", "path"), [
    ("now", "payments"),  # still running: never taken over
    ("long ago", "invoices"),  # died, but issuing an invoice again would issue it twice
])
def test_a_claim_is_taken_over_only_when_dead_and_its_request_resumes(tenant, claimed, path):
    import datetime as dt
    import hashlib
    import json

    from django.utils import timezone

    inv = tenant.invoice()
    if path == "payments":
        url, body = f"/api/v1/invoices/{inv['id']}/payments", {
            "amount": "100.00", "method": "card", "online": True}
    else:
        url, body = "/api/v1/invoices", {"customer": inv["customer"], "center": inv["center"],
                                         "lines": [{"kind": "service", "description": "x",
                                                    "unit_price": "1.00"}]}
    fingerprint = hashlib.sha256(b"\n".join([b"POST", url.encode(),
                                              json.dumps(body).encode()])).hexdigest()
    at = timezone.now() - (dt.timedelta(0) if claimed == "now" else dt.timedelta(minutes=5))
    IdempotentRequest.objects.create(organization=tenant.organization, key="held",
                                     fingerprint=fingerprint, claimed_at=at)
    before = (Payment.objects.count(), JournalEntry.objects.count())
    r = tenant.api.post(url.removeprefix("/api/v1"), body, key="held")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert (Payment.objects.count(), JournalEntry.objects.count()) == before


def test_the_same_key_for_another_payment_is_a_conflict(tenant, monkeypatch):
    """A 503 lets the key go; the same key then sent for another amount is not answered with
    the first payment."""
    inv = tenant.invoice()
    _gateway_5xx(monkeypatch)
    assert pay(tenant, inv["id"], key="k", amount="40.00").status_code == 503
    monkeypatch.undo()
    r = pay(tenant, inv["id"], key="k", amount="50.00")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert Payment.objects.count() == 1


def test_a_charge_the_gateway_makes_after_the_payment_failed_goes_back(tenant, monkeypatch):
    """The worker found no charge and failed the payment; then the slow request's charge
    lands after all. The money goes back: no charge is kept without a booked payment."""
    inv = tenant.invoice()
    _died_before_charging(monkeypatch)
    with pytest.raises(Died):
        pay(tenant, inv["id"])
    monkeypatch.undo()
    recover()
    payment = Payment.objects.get()
    assert payment.status == "failed"
    late = SandboxGateway().charge(amount_minor=10000, currency="USD", source="",
                                   idempotency_key=charges.payment_key(payment),
                                   organization_id=payment.organization_id)
    charges.settle_charge(payment.pk, late)
    payment.refresh_from_db()
    assert (payment.status, payment.charge_state) == ("failed", "give_back")
    run_tasks()
    assert SandboxCharge.objects.get().cancelled
    payment.refresh_from_db()
    assert payment.charge_state == "" and not JournalEntry.objects.filter(kind="payment").exists()
    one_to_one(tenant)


@pytest.mark.django_db(transaction=True)
def test_a_processing_charge_is_booked_when_the_sandbox_decides(tenant, unchanged, tmp_path):
    """sandbox_processing: 201 processing, nothing booked, not refundable; `kassa sandbox
    decide` (a real process) books it, or fails it and frees the balance."""
    from kassa.refunds.tests.test_worker_killed import ROOT, environment

    env = environment(tmp_path)
    first, second = tenant.invoice(), tenant.invoice()
    answers = [pay(tenant, inv["id"], source="sandbox_processing") for inv in (first, second)]
    assert [(r.status_code, r.json()["status"]) for r in answers] == [(201, "processing")] * 2
    assert not JournalEntry.objects.filter(kind="payment").exists()
    payment_id = answers[0].json()["id"]
    with unchanged():
        refused = tenant.api.post(f"/payments/{payment_id}/refunds", {
            "type": "offline", "method": "cash", "amount": "1.00", "reason": "Goodwill"})
    assert refused.status_code == 409 and refused.json()["code"] == "payment_not_succeeded"
    assert "processing" in refused.json()["detail"]

    for answer, outcome in zip(answers, ("succeeded", "failed"), strict=True):
        done = subprocess.run([sys.executable, "-m", "kassa.cli", "sandbox", "decide",
                               answer.json()["id"], "--outcome", outcome], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f'"status": "{outcome}"' in done.stdout
    assert [tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"]
            for inv in (first, second)] == ["0.00", "100.00"]
    again = subprocess.run([sys.executable, "-m", "kassa.cli", "sandbox", "decide", payment_id,
                            "--outcome", "failed"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and "only a processing charge" in again.stderr
    one_to_one(tenant)


def test_the_workers_stale_nothing_never_undoes_a_retry_that_charged(tenant, monkeypatch):
    """The worker asks the gateway for the key and hears "no such charge"; at that moment
    the client's retry (same key) charges and books. The worker's stale "nothing" is dropped:
    the charge stays booked, once."""
    inv = tenant.invoice()
    _gateway_5xx(monkeypatch)
    assert pay(tenant, inv["id"], key="k1").status_code == 503
    monkeypatch.undo()
    real_find = SandboxGateway.find_charge

    def find_then_the_retry_lands(self: Any, **kwargs: Any) -> Any:
        found = real_find(self, **kwargs)  # nothing yet
        again = pay(tenant, inv["id"], key="k1")
        assert again.status_code == 201 and again.json()["status"] == "succeeded"
        return found

    monkeypatch.setattr(SandboxGateway, "find_charge", find_then_the_retry_lands)
    recover()
    monkeypatch.undo()
    assert Payment.objects.get().status == "succeeded"
    recover()
    one_to_one(tenant)


def test_a_redelivered_success_after_the_late_failure_changes_nothing(tenant):
    from kassa.gateways.base import ChargeResult
    from kassa.gateways.base import ChargeState as Gateway

    inv = tenant.invoice()
    pay(tenant, inv["id"], source="sandbox_processing")
    payment = Payment.objects.get()
    reference = payment.gateway_reference
    for state in (Gateway.SUCCEEDED, Gateway.FAILED, Gateway.SUCCEEDED):
        charges.settle_charge(payment.pk, ChargeResult(reference, state, "account closed"))
    payment.refresh_from_db()
    assert (payment.status, payment.charge_state) == ("failed", "")
    assert verify(tenant.organization) == []


def test_an_offline_payment_whose_answer_died_is_answered_not_taken_again(tenant):
    import datetime as dt

    from django.utils import timezone

    inv = tenant.invoice()
    body = {"amount": "40.00", "method": "cash", "online": False}
    first = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="cash-1")
    assert first.status_code == 201
    # SIGKILL after the commit, before the answer was stored:
    IdempotentRequest.objects.filter(key="cash-1").update(
        status_code=None, body=b"", claimed_at=timezone.now() - dt.timedelta(minutes=5))
    again = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="cash-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert Payment.objects.count() == 1
    assert verify(tenant.organization) == []
