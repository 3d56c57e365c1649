"""Package templates, packages and redemptions over HTTP (package refunds: `kassa.refunds.api`)."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import Field

from kassa.core.money import format_decimal_string
from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging
from kassa.core.text import Code, Count, MoneyText, Name, ObjectId
from kassa.packages import selectors, services
from kassa.packages.models import Package, PackageTemplate
from kassa.packages.objects import package_object
from kassa.tenancy.auth import AuthedRequest

router = Router(tags=["packages"])


class BenefitIn(Schema):
    name: Name
    quantity: Count = Field(..., ge=1, le=10_000)
    unit_value: MoneyText


class TemplateIn(Schema):
    name: Name
    price: MoneyText
    tax_rate: Code = "0"
    benefits: list[BenefitIn] = Field(..., min_length=1, max_length=50)


class TemplateBenefitOut(Schema):
    name: str
    quantity: int
    unit_value: str


class TemplateOut(Schema):
    id: str
    name: str
    price: str
    tax_rate: str
    benefits: list[TemplateBenefitOut]


class BenefitOut(Schema):
    id: str
    name: str
    quantity: int
    used: int
    unit_value: str


class PackageOut(Schema):
    id: str
    invoice: str
    customer: str
    name: str
    status: str
    price: str
    paid: str
    redeemed: str
    refunded: str
    forfeited: str
    balance: str
    requested: str  # reserved by an open refund request (not refundable while open)
    tax_rate: str
    tax_paid: str
    tax_refunded: str
    benefits: list[BenefitOut]


class RedemptionIn(Schema):
    benefit: Code
    quantity: Count = Field(1, ge=1, le=10_000)


class PackageFilters(Schema):
    customer: ObjectId | None = None


def template_json(t: PackageTemplate) -> dict[str, Any]:
    currency = t.organization.currency
    return {
        "id": str(t.pk), "name": t.name, "price": format_decimal_string(t.price_minor, currency),
        "tax_rate": str(t.tax_rate.normalize()),
        "benefits": [{"name": b.name, "quantity": b.quantity,
                      "unit_value": format_decimal_string(b.unit_value_minor, currency)}
                     for b in t.benefits.all()],
    }


def package_json(p: Package) -> dict[str, Any]:
    return package_object(p)  # the same object the webhooks send


@router.post("/package-templates", response={201: TemplateOut, **WRITE_ERRORS})
def create_template(request: AuthedRequest, payload: TemplateIn) -> Any:
    template = services.create_template(
        actor=request.auth, name=payload.name, price=payload.price, tax_rate=payload.tax_rate,
        benefits=[services.BenefitInput(**b.model_dump()) for b in payload.benefits])
    return Status(201, template_json(selectors.get_template(request.auth.organization,
                                                            template.pk)))


@router.get("/package-templates", response={200: list[TemplateOut], **READ_ERRORS})
def list_templates(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.templates(request.auth.organization).select_related("organization")
    return [template_json(t) for t in found[paging.offset: paging.offset + paging.limit]]


@router.get("/package-templates/{template_id}", response={200: TemplateOut, **READ_ERRORS})
def get_template(request: AuthedRequest, template_id: str) -> Any:
    return template_json(selectors.get_template(request.auth.organization, template_id))


@router.get("/packages", response={200: list[PackageOut], **READ_ERRORS})
def list_packages(request: AuthedRequest, filters: Query[PackageFilters],
                  paging: Query[Paging]) -> Any:
    found = selectors.packages(request.auth.organization, customer=filters.customer)
    return [package_json(p) for p in found[paging.offset: paging.offset + paging.limit]]


@router.get("/packages/{package_id}", response={200: PackageOut, **READ_ERRORS})
def get_package(request: AuthedRequest, package_id: str) -> Any:
    return package_json(selectors.get_package(request.auth.organization, package_id))


@router.post("/packages/{package_id}/redemptions", response={201: PackageOut, **WRITE_ERRORS})
def redeem(request: AuthedRequest, package_id: str, payload: RedemptionIn) -> Any:
    pkg = services.redeem_benefit(actor=request.auth, package=package_id,
                                  benefit=payload.benefit, quantity=payload.quantity)
    return Status(201, package_json(selectors.get_package(request.auth.organization, pkg.pk)))
