"""Row locks, taken here only and always in one order: organization → invoice → payment →
package. On PostgreSQL these are `SELECT … FOR UPDATE`; on SQLite the whole transaction already
holds the write lock from BEGIN (IMMEDIATE), so they are plain reads there.
"""

from __future__ import annotations

from kassa.billing.models import Invoice, Payment
from kassa.tenancy.models import Organization


def lock_organization(organization_id: int) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization_id)


def lock_invoice(invoice_id: int) -> Invoice:
    return Invoice.objects.select_for_update().get(pk=invoice_id)


def lock_payment(payment_id: int) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)
