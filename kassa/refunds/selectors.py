"""Refunds: the reads, scoped to one organization."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from kassa.core.lookup import get_scoped, parse_id
from kassa.refunds.models import GatewayState, Refund
from kassa.tenancy.models import Organization


def refunds(organization: Organization) -> QuerySet[Refund]:
    return (Refund.objects.filter(organization=organization)
            .select_related("created_by", "organization").order_by("created_at", "id"))


def find_refunds(
    organization: Organization, *, payment: str | None = None, invoice: str | None = None,
    case: str | None = None, needs_attention: bool | None = None,
) -> QuerySet[Refund]:
    found = refunds(organization)
    if needs_attention is not None:
        stuck = Q(gateway_state=GatewayState.STUCK)
        found = found.filter(stuck if needs_attention else ~stuck)
    for field, value in (("payment_id", payment), ("invoice_id", invoice),
                         ("invoice__case_id", case)):
        if value is not None:
            found = found.filter(**{field: parse_id(value) or -1})
    return found


def get_refund(organization: Organization, refund_id: object) -> Refund:
    return get_scoped(refunds(organization), refund_id)
