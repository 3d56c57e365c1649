"""The payment events for outgoing webhooks (kassa.webhooks.events): `payment.succeeded` when a
payment is booked, `payment.failed` when a charge is declined, fails, or fails after it was
booked; `credit.changed` whenever a customer's credit moves. `data.object` is the payment as
`GET /payments/{id}` answers it (held by a test); for `credit.changed`, the customer's balance
and the entry, as `GET /customers/{id}/credit` shows them (the API renders entries with
`credit_entry_object` itself)."""

from __future__ import annotations

from typing import Any

from kassa.audit.services import record
from kassa.billing.models import CreditEntry, Customer, Payment
from kassa.core.money import format_decimal_string
from kassa.webhooks.events import emit


def payment_object(payment: Payment, currency: str | None = None) -> dict[str, Any]:
    """The payment as `GET /payments/{id}` answers it (the API renders it with this too);
    `currency` when the caller has it, saving the organization's read."""
    currency = currency or payment.organization.currency
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(payment.pk),
        "invoice": str(payment.invoice_id) if payment.invoice_id else None,
        "customer": str(payment.customer_id), "amount": money(payment.amount_minor),
        "to_credit": money(payment.to_credit_minor), "method": payment.method,
        "online": payment.online, "refunded": money(payment.refunded_minor),
        # What open refund requests reserve of it is not refundable (DESIGN.md, "Governed
        # refunds"): the stored figure kassa.refunds.requests derives.
        "refundable": money(max(payment.refundable_minor - payment.requested_minor, 0)),
        "requested": money(payment.requested_minor),
        "refundable_online": money(payment.refundable_online_minor),
        "refund_pending": payment.refund_pending,
        "disputed": payment.disputed, "taken_back": money(payment.taken_back_minor),
        "status": payment.status, "failure_reason": payment.failure_reason,
        "created_at": payment.created_at.isoformat(),
    }


def announce(type: str, payment: Payment, *, actor: Any | None = None) -> None:
    """In the payment's transaction; rendered only if an endpoint listens, as it commits. The
    same moment is the payment's entry in the audit log (`actor` None: the worker, the
    gateway)."""
    emit(type, organization_id=payment.organization_id, render=lambda: payment_object(payment))
    record(organization_id=payment.organization_id, actor=actor, action=type,
           object=f"payment:{payment.pk}",
           detail={"amount_minor": payment.amount_minor, "method": payment.method,
                   "online": payment.online, "invoice": payment.invoice_id,
                   "customer": payment.customer_id, "status": payment.status})


def credit_entry_object(entry: CreditEntry, currency: str) -> dict[str, Any]:
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(entry.pk), "at": entry.at.isoformat(), "kind": entry.kind,
        "amount": money(entry.amount_minor), "balance_after": money(entry.balance_after_minor),
        "center": str(entry.center_id),
        "payment": str(entry.payment_id) if entry.payment_id else None,
        "invoice": str(entry.invoice_id) if entry.invoice_id else None,
        "refund": str(entry.refund_id) if entry.refund_id else None,
        "by": entry.by.email if entry.by else None, "note": entry.note,
    }


def announce_credit(customer: Customer, entry: CreditEntry) -> None:
    """`credit.changed`, in the movement's transaction (its organization read only if an
    endpoint listens)."""
    def render() -> dict[str, Any]:
        currency = customer.organization.currency
        return {"customer": str(customer.pk),
                "balance": format_decimal_string(entry.balance_after_minor, currency),
                "entry": credit_entry_object(entry, currency)}

    emit("credit.changed", organization_id=entry.organization_id, render=render)
    record(organization_id=entry.organization_id, actor=entry.by_id,
           action=f"credit.{entry.kind}", object=f"customer:{customer.pk}",
           detail={"entry": entry.pk, "amount_minor": entry.amount_minor,
                   "balance_after_minor": entry.balance_after_minor,
                   "payment": entry.payment_id, "invoice": entry.invoice_id,
                   "refund": entry.refund_id})
