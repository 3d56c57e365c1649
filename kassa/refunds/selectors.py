"""Refunds: the reads, scoped to one organization."""

from __future__ import annotations

from django.db.models import QuerySet

from kassa.core.lookup import get_scoped, parse_id
from kassa.refunds.models import Refund
from kassa.tenancy.models import Organization


def refunds(organization: Organization) -> QuerySet[Refund]:
    return (Refund.objects.filter(organization=organization)
            .select_related("created_by", "organization").order_by("created_at", "id"))


def find_refunds(
    organization: Organization, *, payment: str | None = None, invoice: str | None = None,
    case: str | None = None,
) -> QuerySet[Refund]:
    found = refunds(organization)
    for field, value in (("payment_id", payment), ("invoice_id", invoice),
                         ("invoice__case_id", case)):
        if value is not None:
            found = found.filter(**{field: parse_id(value) or -1})
    return found


def get_refund(organization: Organization, refund_id: object) -> Refund:
    return get_scoped(refunds(organization), refund_id)
