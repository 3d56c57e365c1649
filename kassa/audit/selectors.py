"""The audit log as admins and accountants read it: newest first, filtered."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from kassa.audit.models import AuditEntry

MAX_PAGE = 200


def entries(organization_id: int, *, actor: int | None = None, object: str | None = None,
            since: dt.datetime | None = None) -> QuerySet[AuditEntry]:
    """`object` is one object ("refund:12") or a kind of them ("refund"); `since` inclusive."""
    found = AuditEntry.objects.filter(organization_id=organization_id)
    if actor is not None:
        found = found.filter(actor_id=actor)
    if object:
        found = (found.filter(object=object) if ":" in object
                 else found.filter(object__startswith=f"{object}:"))
    if since is not None:
        found = found.filter(at__gte=since)
    return found.order_by("-seq")
