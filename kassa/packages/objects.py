"""A package as the API answers it and the webhooks send it: one rendering for both."""

from __future__ import annotations

from typing import Any

from kassa.core.money import format_decimal_string
from kassa.packages.models import Package


def package_object(p: Package) -> dict[str, Any]:
    currency = p.organization.currency
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(p.pk), "invoice": str(p.invoice_id), "customer": str(p.customer_id),
        "name": p.name, "status": p.status, "price": money(p.price_minor),
        "paid": money(p.paid_minor), "redeemed": money(p.redeemed_minor),
        "refunded": money(p.refunded_minor), "forfeited": money(p.forfeited_minor),
        "balance": money(p.balance_minor),
        # What an open refund request reserves of the balance (not refundable while open).
        "requested": money(p.requested_minor), "tax_rate": str(p.tax_rate.normalize()),
        "tax_paid": money(p.tax_paid_minor), "tax_refunded": money(p.tax_refunded_minor),
        "benefits": [{"id": str(b.pk), "name": b.name, "quantity": b.quantity, "used": b.used,
                      "unit_value": money(b.unit_value_minor)} for b in p.benefits.all()],
    }
