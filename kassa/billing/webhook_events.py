"""The payment events for outgoing webhooks (kassa.webhooks.events): `payment.succeeded` when a
payment is booked, `payment.failed` when a charge is declined, fails, or fails after it was
booked. `data.object` is the payment as `GET /payments/{id}` answers it (held by a test)."""

from __future__ import annotations

from typing import Any

from kassa.billing.models import Payment
from kassa.core.money import format_decimal_string
from kassa.webhooks.events import emit


def payment_object(payment: Payment) -> dict[str, Any]:
    currency = payment.organization.currency
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(payment.pk), "invoice": str(payment.invoice_id),
        "amount": money(payment.amount_minor), "method": payment.method,
        "online": payment.online, "refunded": money(payment.refunded_minor),
        "refundable": money(payment.refundable_minor), "refund_pending": payment.refund_pending,
        "status": payment.status, "failure_reason": payment.failure_reason,
        "created_at": payment.created_at.isoformat(),
    }


def announce(type: str, payment: Payment) -> None:
    """In the payment's transaction; rendered only if an endpoint listens, as it commits."""
    emit(type, organization_id=payment.organization_id, render=lambda: payment_object(payment))
