"""Idempotency-Key: the same key and body give the same answer and write once; the same key
with another body is a 409 that writes nothing."""

from __future__ import annotations

from kassa.billing.models import Customer, Invoice, Payment
from kassa.core.models import IdempotentRequest
from kassa.gateways.models import SandboxCharge
from kassa.ledger.models import JournalEntry


def test_a_retried_payment_gives_the_same_answer_and_writes_one_payment(tenant):
    inv = tenant.invoice()
    body = {"amount": "40.00", "method": "card", "online": True}
    first = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="pay-1")
    entries = JournalEntry.objects.count()
    again = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="pay-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1 and SandboxCharge.objects.count() == 1
    assert JournalEntry.objects.count() == entries
    assert Invoice.objects.get().balance_due_minor == 6000


def test_the_same_key_with_another_body_is_409_and_changes_nothing(tenant, unchanged):
    inv = tenant.invoice()
    path = f"/invoices/{inv['id']}/payments"
    assert tenant.api.post(path, {"amount": "40.00", "method": "cash"}, key="k").status_code == 201
    with unchanged():
        r = tenant.api.post(path, {"amount": "45.00", "method": "cash"}, key="k")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert r["Content-Type"] == "application/problem+json"
    other = tenant.invoice()
    with unchanged():  # the same body to another path is another request too
        r = tenant.api.post(f"/invoices/{other['id']}/payments",
                            {"amount": "40.00", "method": "cash"}, key="k")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert Payment.objects.count() == 1


def test_a_refusal_is_replayed_as_it_was(tenant):
    inv = tenant.invoice()
    body = {"amount": "500.00", "method": "cash"}
    first = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="too-much")
    assert first.status_code == 422
    again = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="too-much")
    assert (again.status_code, again.content) == (422, first.content)
    declined = {"amount": "5.00", "method": "card", "online": True, "source": "sandbox_declined"}
    first = tenant.api.post(f"/invoices/{inv['id']}/payments", declined, key="declined")
    again = tenant.api.post(f"/invoices/{inv['id']}/payments", declined, key="declined")
    assert first.status_code == again.status_code == 402 and again.content == first.content
    assert list(Payment.objects.values_list("status", flat=True)) == ["declined"]


def test_any_post_is_idempotent(tenant):
    body = {"name": "Ann", "email": "ann@example.com"}
    first = tenant.api.post("/customers", body, key="c-1")
    again = tenant.api.post("/customers", body, key="c-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and Customer.objects.count() == 1
    assert tenant.api.post("/customers", body, key="c-2").json()["id"] != first.json()["id"]
    assert Customer.objects.count() == 2


def test_keys_are_per_organization(tenant, other_tenant):
    body = {"name": "Ann", "email": "ann@example.com"}
    mine = tenant.api.post("/customers", body, key="shared")
    theirs = other_tenant.api.post("/customers", body, key="shared")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert IdempotentRequest.objects.filter(key="shared").count() == 2


def test_a_bad_key_is_refused_and_changes_nothing(tenant, unchanged):
    for key in ("k" * 256, "tab\there"):
        with unchanged():
            r = tenant.api.post("/customers", {"name": "Ann", "email": "ann@example.com"},
                                key=key)
        assert r.status_code == 422 and r.json()["code"] == "validation_error"
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"


def test_without_a_token_a_key_is_not_stored(anonymous, tenant, unchanged):
    with unchanged():
        r = anonymous.post("/customers", {"name": "Ann", "email": "ann@example.com"}, key="k")
    assert r.status_code == 401


def test_a_server_error_is_not_stored_so_the_client_may_retry(tenant, monkeypatch):
    from kassa.gateways.base import GatewayError
    from kassa.gateways.sandbox import SandboxGateway

    inv = tenant.invoice()
    body = {"amount": "10.00", "method": "card", "online": True}
    original = SandboxGateway.charge

    def down(self, **kwargs):
        raise GatewayError("timeout")

    monkeypatch.setattr(SandboxGateway, "charge", down)
    assert tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="k").status_code == 503
    assert not IdempotentRequest.objects.filter(key="k").exists()
    monkeypatch.setattr(SandboxGateway, "charge", original)
    r = tenant.api.post(f"/invoices/{inv['id']}/payments", body, key="k")
    assert r.status_code == 201 and Payment.objects.count() == 1
