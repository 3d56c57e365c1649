"""Simultaneous refunds and redemptions of one package, in real threads on PostgreSQL: the
balance never goes below what the rules allow, and the books stay right."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import outcome, race
from kassa.ledger.models import Posting
from kassa.ledger.verify import verify
from kassa.packages.models import Package
from kassa.packages.services import redeem_benefit
from kassa.refunds.models import Refund
from kassa.refunds.services import refund_package
from kassa.tenancy.models import Membership

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def sold_and_paid(tenant):
    tpl = tenant.api.post("/package-templates", {
        "name": "Facials, 10", "price": "1000.00", "tax_rate": "8.875",
        "benefits": [{"name": "Facial", "quantity": 10, "unit_value": "100.00"}]}).json()
    inv = tenant.invoice({"kind": "package", "description": "Facials, 10",
                          "package_template": tpl["id"]})
    tenant.pay(inv["id"], inv["total"], method="cash")
    return Package.objects.get(pk=inv["packages"][0]["id"])


def test_simultaneous_refunds_never_exceed_the_balance(tenant):
    pkg = sold_and_paid(tenant)  # balance 1,000.00

    def work(i: int):
        actor = Membership.objects.select_related("organization", "user").get(pk=tenant.admin.pk)
        return refund_package(actor=actor, package=pkg.pk, amount="150.00", reason=f"r{i}",
                              method="cash")

    results = Counter(outcome(r) for r in race(12, work))
    assert results == {"ok": 6, "package_refund_exceeds_balance": 6}, results
    pkg.refresh_from_db()
    assert pkg.refunded_minor == 90000 and pkg.balance_minor == 10000
    assert pkg.tax_refunded_minor <= pkg.tax_paid_minor
    assert verify(tenant.organization) == []


def test_refunds_and_redemptions_racing_keep_the_balance_within_the_rules(tenant):
    pkg = sold_and_paid(tenant)
    benefit = pkg.benefits.get()

    def work(i: int):
        actor = Membership.objects.select_related("organization", "user").get(pk=tenant.admin.pk)
        if i % 2:
            return redeem_benefit(actor=actor, package=pkg.pk, benefit=benefit.pk, quantity=1)
        return refund_package(actor=actor, package=pkg.pk, amount="200.00", reason=f"r{i}",
                              method="check")

    results = race(16, work)
    pkg.refresh_from_db()
    benefit.refresh_from_db()
    refunds = Refund.objects.filter(package=pkg).count()
    # Redemptions are limited by the benefits left, refunds by the balance at their moment;
    # a refund can never take the balance below zero (a redemption may: the guest owes it).
    assert benefit.used == sum(1 for i, r in enumerate(results) if i % 2 and outcome(r) == "ok")
    assert benefit.used <= 10
    assert pkg.refunded_minor == refunds * 20000
    assert all(outcome(r) in ("ok", "package_refund_exceeds_balance", "benefit_exhausted")
               for r in results), [outcome(r) for r in results]
    assert pkg.balance_minor == 100000 - benefit.used * 10000 - refunds * 20000
    # Replayed in the order they were written, no refund ever left the balance below zero.
    running = 0
    for entry_kind, amount in (Posting.objects.filter(package=pkg, code="package_liability")
                               .order_by("entry_id").values_list("kind", "amount_minor")):
        running -= amount
        if entry_kind == "package_refund":
            assert running >= 0, "a refund took the package below zero"
    assert running == pkg.balance_minor
    assert verify(tenant.organization) == []
