"""Packages and templates: the reads, scoped to one organization."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from kassa.billing.models import PaymentAllocation
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


def package_history(pkg: Package) -> list[dict[str, Any]]:
    """A package's life for its card, oldest first: the purchase, each payment's money paid
    into it (a payment refund's take-back is negative), its redemptions and its close. The
    refunds app adds the package's refunds (it sits above this one)."""
    events: list[dict[str, Any]] = [{
        "at": pkg.created_at, "kind": "purchase", "label": "Sold on invoice",
        "amount_minor": pkg.price_minor, "detail": pkg.invoice.number}]
    paid_in: dict[tuple[int, int | None], dict[str, Any]] = {}
    for row in (PaymentAllocation.objects.filter(line_id=pkg.line_id)
                .select_related("payment").order_by("created_at", "id")):
        key = (row.payment_id, row.refund_id)
        event = paid_in.setdefault(key, {
            "at": row.created_at, "kind": "paid_in" if row.refund_id is None else "taken_back",
            "label": "Paid in" if row.refund_id is None else "Taken back by a payment refund",
            "amount_minor": 0,
            "detail": f"payment #{row.payment_id} ({row.payment.get_method_display()})"})
        event["amount_minor"] += row.net_minor
    events += [e for e in paid_in.values() if e["amount_minor"]]
    for redemption in pkg.redemptions.select_related("benefit").order_by("created_at", "id"):
        events.append({"at": redemption.created_at, "kind": "redemption", "label": "Redeemed",
                       "amount_minor": redemption.amount_minor,
                       "detail": f"{redemption.quantity} × {redemption.benefit.name}"})
    if pkg.closed_at:
        events.append({"at": pkg.closed_at, "kind": "closed", "label": "Closed",
                       "amount_minor": pkg.forfeited_minor or None,
                       "detail": "balance forfeited" if pkg.forfeited_minor else ""})
    return sorted(events, key=lambda e: e["at"])
