"""An Idempotency-Key whose first request let it go (it answered 5xx) between a second
request's failed claim and its read: the second claims the key again instead of crashing."""

from __future__ import annotations

from typing import Any

from kassa import idempotency
from kassa.billing.models import Customer


def test_a_key_released_meanwhile_is_claimed_again(tenant: Any, monkeypatch: Any) -> None:
    real_claim = idempotency._claim
    calls: list[str] = []

    def lose_the_first_claim(organization_id: int, key: str, fingerprint: str) -> Any:
        calls.append(key)
        if len(calls) == 1:
            return None  # another request held the key, and has released it since
        return real_claim(organization_id, key, fingerprint)

    monkeypatch.setattr(idempotency, "_claim", lose_the_first_claim)
    body = {"name": "Ann Guest", "email": "ann@example.com"}
    first = tenant.api.post("/customers", body, key="race-1")
    assert first.status_code == 201, first.content
    again = tenant.api.post("/customers", body, key="race-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Customer.objects.count() == 1


def test_a_key_still_held_by_a_running_request_is_409(tenant: Any, monkeypatch: Any) -> None:
    from kassa.core.models import IdempotentRequest

    body = {"name": "Ann Guest", "email": "ann@example.com"}
    first = tenant.api.post("/customers", body, key="busy-1")
    assert first.status_code == 201
    # As if the first were still running: its answer not stored yet.
    IdempotentRequest.objects.filter(key="busy-1").update(status_code=None)
    r = tenant.api.post("/customers", body, key="busy-1")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert r["Content-Type"] == "application/problem+json"
    assert Customer.objects.count() == 1
