"""Settings and centers."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from kassa.core.money import format_decimal_string
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
    approval_threshold: str | None
    request_roles: list[str]
    approver_roles: list[str]
    daily_refund_limit: dict[str, str] | None
    online_refund_window_days: int | None
    reason_codes: list[dict[str, Any]]
    request_expiry_days: int


class SettingsPatch(Schema):
    # Every field is optional, so without "forbid" a misspelt field (`refund_role`) or a body
    # that is not an object at all (`[]`, `5`) would be a 200 that changed nothing.
    model_config = ConfigDict(extra="forbid")

    currency: Code | None = None
    timezone: Code | None = None
    allow_multiple_package_refunds: Flag | None = None
    refund_roles: list[Code] | None = Field(None, max_length=3)
    business_kind: Code | None = Field(None, description="funeral_home or spa")
    # The refund policy; null clears a money or a window (sent explicitly).
    approval_threshold: str | None = None
    request_roles: list[Code] | None = Field(None, max_length=3)
    approver_roles: list[Code] | None = Field(None, max_length=3)
    daily_refund_limit: dict[str, str] | None = None
    online_refund_window_days: int | None = None
    reason_codes: list[dict[str, Any]] | None = Field(None, max_length=50)
    request_expiry_days: int | None = None


class CenterIn(Schema):
    name: Name


class CenterOut(Schema):
    id: str
    name: str


def settings_json(org: Organization) -> dict[str, Any]:
    return {"currency": org.currency, "timezone": org.timezone,
            "allow_multiple_package_refunds": org.allow_multiple_package_refunds,
            "refund_roles": list(org.refund_roles), "business_kind": org.business_kind,
            **policy_json(org)}


def policy_json(org: Organization) -> dict[str, Any]:
    money = lambda minor: format_decimal_string(minor, org.currency)  # noqa: E731
    threshold = org.approval_threshold_minor
    return {"approval_threshold": None if threshold is None else money(threshold),
            "request_roles": list(org.request_roles), "approver_roles": list(org.approver_roles),
            "daily_refund_limit": (None if org.daily_refund_limit is None else
                                   {r: money(a) for r, a in org.daily_refund_limit.items()}),
            "online_refund_window_days": org.online_refund_window_days,
            "reason_codes": list(org.reason_codes),
            "request_expiry_days": org.request_expiry_days}


def center_json(center: Center) -> dict[str, Any]:
    return {"id": str(center.pk), "name": center.name}


@router.get("/settings", response={200: SettingsOut, **READ_ERRORS})
def get_settings(request: AuthedRequest) -> Any:
    return settings_json(request.auth.organization)


@router.patch("/settings", response={200: SettingsOut, **WRITE_ERRORS})
def patch_settings(request: AuthedRequest, payload: SettingsPatch) -> Any:
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    # A policy field sent as null clears it (no threshold, no limit, no window).
    for field in ("approval_threshold", "daily_refund_limit", "online_refund_window_days"):
        if field in payload.model_fields_set and getattr(payload, field) is None:
            changes[field] = None
    return settings_json(services.update_settings(actor=request.auth, changes=changes))


@router.post("/centers", response={201: CenterOut, **WRITE_ERRORS})
def create_center(request: AuthedRequest, payload: CenterIn) -> Any:
    center = services.add_center(actor=request.auth, name=payload.name)
    return Status(201, center_json(center))


@router.get("/centers", response={200: list[CenterOut], **READ_ERRORS})
def list_centers(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.centers(request.auth.organization)
    return [center_json(c) for c in found[paging.offset: paging.offset + paging.limit]]
