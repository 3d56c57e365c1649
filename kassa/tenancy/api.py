"""Settings and centers."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging
from kassa.core.text import Code, Flag, Name
from kassa.tenancy import selectors, services
from kassa.tenancy.auth import AuthedRequest
from kassa.tenancy.models import Center, Organization

router = Router(tags=["organization"])


class SettingsOut(Schema):
    currency: str
    timezone: str
    allow_multiple_package_refunds: bool
    refund_roles: list[str]
    business_kind: str  # funeral_home or spa: the words of the pages and receipts


class SettingsPatch(Schema):
    # Every field is optional, so without "forbid" a misspelt field (`refund_role`) or a body
    # that is not an object at all (`[]`, `5`) would be a 200 that changed nothing.
    model_config = ConfigDict(extra="forbid")

    currency: Code | None = None
    timezone: Code | None = None
    allow_multiple_package_refunds: Flag | None = None
    refund_roles: list[Code] | None = Field(None, max_length=3)
    business_kind: Code | None = Field(None, description="funeral_home or spa")


class CenterIn(Schema):
    name: Name


class CenterOut(Schema):
    id: str
    name: str


def settings_json(org: Organization) -> dict[str, Any]:
    return {"currency": org.currency, "timezone": org.timezone,
            "allow_multiple_package_refunds": org.allow_multiple_package_refunds,
            "refund_roles": list(org.refund_roles), "business_kind": org.business_kind}


def center_json(center: Center) -> dict[str, Any]:
    return {"id": str(center.pk), "name": center.name}


@router.get("/settings", response={200: SettingsOut, **READ_ERRORS})
def get_settings(request: AuthedRequest) -> Any:
    return settings_json(request.auth.organization)


@router.patch("/settings", response={200: SettingsOut, **WRITE_ERRORS})
def patch_settings(request: AuthedRequest, payload: SettingsPatch) -> Any:
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    return settings_json(services.update_settings(actor=request.auth, changes=changes))


@router.post("/centers", response={201: CenterOut, **WRITE_ERRORS})
def create_center(request: AuthedRequest, payload: CenterIn) -> Any:
    center = services.add_center(actor=request.auth, name=payload.name)
    return Status(201, center_json(center))


@router.get("/centers", response={200: list[CenterOut], **READ_ERRORS})
def list_centers(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.centers(request.auth.organization)
    return [center_json(c) for c in found[paging.offset: paging.offset + paging.limit]]
