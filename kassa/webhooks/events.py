"""`emit`: the one way any app tells the integrators that something happened.

    from kassa.webhooks.events import emit
    emit("refund.created", organization_id=refund.organization_id,
         render=lambda: refund_object(refund))

It is called inside the transaction of the change (asserted), so the event and its deliveries
commit with the change or not at all: a refund rolled back was never announced. `render` gives
the event's `data.object` (the object as the API shows it) and runs only when some endpoint of
the organization listens for that type, so an organization without webhooks pays one query per
money transaction and renders nothing.

Inside a money transaction (`kassa.core.locks.money_transaction`) the events gather and are
written last, just before the commit (`core.locks.at_end`): one look at the endpoints however
many events the use case emits, and `render` then sees the objects as the transaction leaves
them. Outside one (a plain atomic block, or one nested in it) they are written at once.

The others wire themselves when their features land: disputes emit `dispute.created` and
`dispute.closed`, the customer's credit `credit.changed` (the object: the credit entry, with
the customer and their balance after), approvals `refund_request.created` and
`refund_request.decided` — each a one-line `emit` where the change is made.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from kassa.core import rows
from kassa.core.locks import at_end, organizations_read
from kassa.core.outbox import enqueue
from kassa.tenancy.models import Organization
from kassa.webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

Render = Callable[[], dict[str, Any]]
TYPES = frozenset(EventType.values)


@dataclass(frozen=True)
class Pending:
    type: str
    organization_id: int
    render: Render
    at: dt.datetime


def emit(type: str, *, organization_id: int, render: Render) -> None:
    """Announce an event of `type` about the object `render()` gives, to every endpoint of the
    organization that listens for it; in the caller's transaction."""
    assert type in TYPES, f"unknown webhook event type {type}"
    assert transaction.get_connection().in_atomic_block, (
        "emit inside the transaction of the change, so the event commits with it")
    event = Pending(type, organization_id, render, timezone.now())
    gathered = at_end("webhooks.emit", list, write)
    if gathered is None:
        write([event])
    else:
        gathered.append(event)


Listening = list[tuple[int, list[str]]]  # (endpoint id, its event types)

# The endpoints of each organization this process read, under the organization's
# webhooks_version at that read. Every money transaction asks; most organizations have none.
_KNOWN: dict[int, tuple[int, Listening]] = {}


def _listening(organizations: list[int]) -> dict[int, Listening]:
    """The endpoints of these organizations: those kept under the version this transaction
    read of the organization (with the invoice it locked), the others read now — by a
    statement text built once (kassa.core.rows)."""
    versions = organizations_read()
    found: dict[int, Listening] = {}
    missing = []
    for organization_id in organizations:
        known = _KNOWN.get(organization_id)
        if known is not None and known[0] == versions.get(organization_id):
            if known[1]:
                found[organization_id] = known[1]
        else:
            missing.append(organization_id)
    if not missing:
        return found
    marks = ", ".join(["%s"] * len(missing))
    read: dict[int, Listening] = {}
    for endpoint in rows.select(WebhookEndpoint, f"t.organization_id IN ({marks})", missing,
                                order_by="t.id"):
        read.setdefault(endpoint.organization_id, []).append((endpoint.pk, endpoint.events))
    for organization_id in missing:
        # Kept under the version read before these rows: a change since bumped it, so the
        # next transaction, reading the new version, reads the endpoints again.
        if organization_id in versions:
            _KNOWN[organization_id] = (versions[organization_id], read.get(organization_id, []))
    found.update(read)
    return found


def forget_endpoints() -> None:
    """Read every organization's endpoints again (the tests: rolled-back organizations come
    back under the same ids, at the same version)."""
    _KNOWN.clear()


def endpoints_changed(sender: Any, instance: WebhookEndpoint, **kwargs: Any) -> None:
    """An endpoint was added, changed or removed: its organization's next version, in the same
    transaction (every process then reads the endpoints again)."""
    Organization.objects.filter(pk=instance.organization_id).update(
        webhooks_version=F("webhooks_version") + 1)


def body(*, uid: str, type: str, at: dt.datetime, obj: dict[str, Any]) -> str:
    """The document every try sends: `{id, type, created, data: {object}}`, `created` in unix
    seconds (the signature's `t` is in the same unit)."""
    return json.dumps({"id": uid, "type": type, "created": int(at.timestamp()),
                       "data": {"object": obj}}, separators=(",", ":"), ensure_ascii=False)


def write(events: list[Pending]) -> None:
    """The events that some endpoint listens for, their deliveries and the delivery tasks."""
    if not events:
        return
    listening = _listening(sorted({e.organization_id for e in events}))
    if not listening:
        return  # nobody listens: one query, nothing rendered, nothing written
    deliveries = []
    for pending in events:
        targets = [endpoint_id for endpoint_id, types in listening.get(pending.organization_id, [])
                   if pending.type in types]
        if not targets:
            continue
        uid = f"evt_{uuid.uuid4().hex}"
        event = WebhookEvent.objects.create(
            organization_id=pending.organization_id, uid=uid, type=pending.type,
            created_at=pending.at,
            body=body(uid=uid, type=pending.type, at=pending.at, obj=pending.render()))
        deliveries += [WebhookDelivery(organization_id=pending.organization_id,
                                       endpoint_id=endpoint_id, event=event,
                                       status=DeliveryStatus.PENDING,
                                       next_attempt_at=pending.at, created_at=pending.at)
                       for endpoint_id in targets]
    for delivery in WebhookDelivery.objects.bulk_create(deliveries):
        enqueue("webhooks.deliver", delivery.pk)
