"""The endpoints and their deliveries, as an admin reads them."""

from __future__ import annotations

from django.db.models import QuerySet

from kassa.core.lookup import get_scoped
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_admin
from kassa.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints(actor: Membership) -> QuerySet[WebhookEndpoint]:
    require_admin(actor)
    return WebhookEndpoint.objects.filter(organization_id=actor.organization_id).order_by("pk")


def get_endpoint(actor: Membership, endpoint: object) -> WebhookEndpoint:
    return get_scoped(endpoints(actor), endpoint)


def deliveries(actor: Membership, endpoint: object) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    found = get_endpoint(actor, endpoint)
    return (WebhookDelivery.objects.filter(endpoint=found).select_related("event")
            .order_by("-pk"))
