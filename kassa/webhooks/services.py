"""The endpoints' use cases: add one (its secret returned this once), remove one. Admins only."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from kassa.audit.services import record
from kassa.core.errors import ValidationFailed
from kassa.core.lookup import get_scoped
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_admin
from kassa.webhooks import addresses, secret_box
from kassa.webhooks.events import TYPES
from kassa.webhooks.models import EventType, WebhookEndpoint

logger = logging.getLogger("kassa.webhooks")

MAX_ENDPOINTS = 20  # per organization: every money change renders an event for each listener


def clean_events(events: list[str]) -> list[str]:
    """The event types, each once, in the order EventType lists them; 422 naming `events`."""
    if not events:
        raise ValidationFailed("events", "name at least one event type")
    unknown = sorted(set(events) - TYPES)
    if unknown:
        raise ValidationFailed("events", f"unknown event type {', '.join(unknown)}; known: "
                               f"{', '.join(EventType.values)}")
    return [t for t in EventType.values if t in set(events)]


def add_endpoint(*, actor: Membership, url: str, events: list[str]) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, the only time the secret is given out."""
    require_admin(actor)
    types = clean_events(events)
    addresses.resolve(url)  # before anything is written: a refused URL changes nothing
    secret = secret_box.new_secret()
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(organization_id=actor.organization_id).count() >= \
                MAX_ENDPOINTS:
            raise ValidationFailed("url", f"an organization has at most {MAX_ENDPOINTS} "
                                   "webhook endpoints: remove one first")
        endpoint = WebhookEndpoint.objects.create(
            organization_id=actor.organization_id, url=url, events=types,
            secret_encrypted=secret_box.encrypt(secret), created_at=timezone.now(),
            created_by=actor.user)
        record(organization_id=actor.organization_id, actor=actor.user,
               action="webhook_endpoint.added", object=f"webhook_endpoint:{endpoint.pk}",
               detail={"url": url, "events": types})
    logger.info("webhook endpoint %s added for %s by %s", endpoint.pk, ", ".join(types),
                actor.user_id)
    return endpoint, secret


def remove_endpoint(*, actor: Membership, endpoint: object) -> None:
    """The endpoint goes, with its deliveries: what is still due to it is not sent."""
    require_admin(actor)
    found = get_scoped(WebhookEndpoint.objects.filter(organization_id=actor.organization_id),
                       endpoint)
    with transaction.atomic():
        record(organization_id=actor.organization_id, actor=actor.user,
               action="webhook_endpoint.removed", object=f"webhook_endpoint:{found.pk}",
               detail={"url": found.url})
        found.delete()
    logger.info("webhook endpoint %s removed by %s", found.pk, actor.user_id)
