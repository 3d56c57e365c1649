"""The Stripe gateway's tests run against `FakeStripe`, a local HTTP server the SDK is pointed
at through `STRIPE_API_BASE`: no network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kassa.gateways.stripe import StripeGateway
from kassa.gateways.tests.fake_stripe import FakeStripe

WEBHOOK_SECRET = "whsec_kassa_test"


@pytest.fixture
def fake_stripe(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    settings.KASSA_GATEWAY = "stripe"
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_API_KEY = fake.api_key
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    # A "hang" must outlast the client's patience, and the tests must not wait long for it.
    monkeypatch.setattr(StripeGateway, "timeout_seconds", 0.5)
    yield fake
    fake.stop()


@pytest.fixture
def stripe_paid(tenant: Any, fake_stripe: FakeStripe) -> tuple[dict[str, Any], dict[str, Any]]:
    """An invoice of 200.00 + 8.875% tax (217.75), paid in full online with pm_card_visa."""
    inv = tenant.invoice({"kind": "service", "description": "Service", "unit_price": "200.00",
                          "tax_rate": "8.875"})
    payment = tenant.pay(inv["id"], inv["total"], method="card", online=True,
                         source="pm_card_visa")
    return inv, payment


def issue_refund(tenant: Any, payment_id: str, amount: str = "50.00") -> dict[str, Any]:
    r = tenant.api.post(f"/payments/{payment_id}/refunds",
                        {"type": "online", "amount": amount, "reason": "Guest changed plans"})
    assert r.status_code == 201, r.content
    return r.json()


def snapshot() -> tuple[Any, ...]:
    """Everything a webhook or a payment could change: compare before and after a refusal."""
    from kassa.billing.models import Invoice, Payment, PaymentEvent
    from kassa.ledger.models import JournalEntry, Posting
    from kassa.refunds.models import Receipt, Refund

    return (
        JournalEntry.objects.count(), Posting.objects.count(), Receipt.objects.count(),
        PaymentEvent.objects.count(),
        list(Refund.objects.order_by("pk").values_list(
            "status", "gateway_state", "gateway_reference", "failure_reason")),
        list(Payment.objects.order_by("pk").values_list("refunded_minor", "refund_pending")),
        list(Invoice.objects.order_by("pk").values_list("balance_due_minor", "refunded_minor")),
    )
