"""Outgoing webhook endpoints over HTTP: parse, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import Field

from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging
from kassa.core.text import LINE_PATTERN, Code
from kassa.tenancy.auth import AuthedRequest
from kassa.webhooks import selectors, services
from kassa.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint

router = Router(tags=["webhooks"])

READ_ADMIN_ERRORS = {**READ_ERRORS, 403: WRITE_ERRORS[403]}


class EndpointIn(Schema):
    url: str = Field(..., max_length=2000, pattern=LINE_PATTERN,
                     description="http:// or https://, resolving to public addresses only")
    events: list[Code] = Field(..., min_length=1, max_length=len(EventType.values),
                               description="any of: " + ", ".join(EventType.values))


class EndpointOut(Schema):
    id: str
    url: str
    events: list[str]
    created_at: str


class NewEndpointOut(EndpointOut):
    secret: str = Field(..., description="signs every delivery; shown this once only")


class DeliveryOut(Schema):
    id: str
    event: str
    type: str
    status: str = Field(..., description="pending | sending | delivered | gave_up")
    attempts: int
    last_status_code: int | None
    last_error: str
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": str(endpoint.pk), "url": endpoint.url, "events": list(endpoint.events),
            "created_at": endpoint.created_at.isoformat()}


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    when = lambda at: at.isoformat() if at else None  # noqa: E731
    return {"id": str(d.pk), "event": d.event.uid, "type": d.event.type, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code,
            "last_error": d.last_error, "created_at": d.created_at.isoformat(),
            "next_attempt_at": when(d.next_attempt_at), "delivered_at": when(d.delivered_at)}


@router.post("/webhook-endpoints", response={201: NewEndpointOut, **WRITE_ERRORS})
def add_endpoint(request: AuthedRequest, payload: EndpointIn) -> Any:
    endpoint, secret = services.add_endpoint(actor=request.auth, url=payload.url,
                                             events=payload.events)
    return Status(201, {**endpoint_json(endpoint), "secret": secret})


@router.get("/webhook-endpoints", response={200: list[EndpointOut], **READ_ADMIN_ERRORS})
def list_endpoints(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.endpoints(request.auth)
    return [endpoint_json(e) for e in found[paging.offset: paging.offset + paging.limit]]


@router.delete("/webhook-endpoints/{endpoint_id}", response={204: None, **WRITE_ERRORS})
def remove_endpoint(request: AuthedRequest, endpoint_id: str) -> Any:
    services.remove_endpoint(actor=request.auth, endpoint=endpoint_id)
    return Status(204, None)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries",
            response={200: list[DeliveryOut], **READ_ADMIN_ERRORS})
def list_deliveries(request: AuthedRequest, endpoint_id: str, paging: Query[Paging]) -> Any:
    found = selectors.deliveries(request.auth, endpoint_id)
    return [delivery_json(d) for d in found[paging.offset: paging.offset + paging.limit]]
