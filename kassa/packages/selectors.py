"""Packages and templates: the reads, scoped to one organization."""

from __future__ import annotations

from django.db.models import QuerySet

from kassa.core.lookup import get_scoped, parse_id
from kassa.packages.models import Package, PackageTemplate
from kassa.tenancy.models import Organization


def templates(organization: Organization) -> QuerySet[PackageTemplate]:
    return (PackageTemplate.objects.filter(organization=organization)
            .prefetch_related("benefits").order_by("id"))


def get_template(organization: Organization, template_id: object) -> PackageTemplate:
    return get_scoped(templates(organization), template_id)


def packages(organization: Organization, *, customer: str | None = None) -> QuerySet[Package]:
    found = (Package.objects.filter(organization=organization)
             .select_related("organization", "line").prefetch_related("benefits").order_by("id"))
    if customer is not None:
        found = found.filter(customer_id=parse_id(customer) or -1)
    return found


def get_package(organization: Organization, package_id: object) -> Package:
    return get_scoped(packages(organization), package_id)
