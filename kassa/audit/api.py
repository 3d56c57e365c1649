"""`GET /audit`: the audit log over HTTP, for admins and accountants."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema
from pydantic import Field

from kassa.audit import selectors
from kassa.audit.models import AuditEntry
from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS
from kassa.core.text import Code, Moment, ObjectId
from kassa.tenancy.auth import AuthedRequest
from kassa.tenancy.services import require_auditor

router = Router(tags=["audit"])


class AuditQuery(Schema):
    actor: ObjectId | None = Field(None, description="a user's id")
    object: Code | None = Field(None, description='"refund:12", or a kind: "refund"')
    since: Moment | None = Field(None, description="ISO date-time, inclusive")
    limit: int = Field(50, ge=1, le=selectors.MAX_PAGE)
    offset: int = Field(0, ge=0, le=10_000_000)


class AuditOut(Schema):
    id: str
    at: str
    actor: str | None = Field(..., description="the user's id; null for the system")
    action: str
    object: str
    detail: dict[str, Any]
    hash: str


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": str(entry.pk), "at": entry.at.isoformat(),
            "actor": str(entry.actor_id) if entry.actor_id is not None else None,
            "action": entry.action, "object": entry.object, "detail": entry.detail,
            "hash": entry.hash}


@router.get("/audit", response={200: list[AuditOut], **READ_ERRORS, 403: WRITE_ERRORS[403]})
def list_audit(request: AuthedRequest, q: Query[AuditQuery]) -> Any:
    require_auditor(request.auth)
    found = selectors.entries(request.auth.organization_id,
                              actor=int(q.actor) if q.actor else None, object=q.object,
                              since=q.since)
    return [entry_json(e) for e in found[q.offset: q.offset + q.limit]]
