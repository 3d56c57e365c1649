"""Packages: templates, selling them on invoice lines, paying into them, redeeming benefits, and
the package arithmetic that a package refund needs (package-refunds.txt): the tax that goes
back, closing, forfeiting. The refund itself — its row, its payout, its life — is the refunds
app's (`kassa.refunds.services.refund_package`), which calls in here under its locks.

A package's `paid` and `refunded` are its invoice line's figures (billing's allocation writes
them); this app writes only `redeemed`, `forfeited` and the status, and plugs into billing for
what a package line does when it is sold or paid (`PackageLines`, registered when ready).

Tax on a package refund: `amount × the line's tax rate`, rounded half-up to the minor unit, but
never so much that the package's refunds together return more than the tax (rounded the same
way) on all they refunded; the refund that brings the balance to zero returns instead what
remains of the tax paid into the package less the tax on what was redeemed or forfeited. So
$1,000 at 8.875 % refunded 333.33, 333.33, 333.34 returns 29.58, 29.58, 29.59 — and never, in
total, more than came in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from kassa.audit.services import record
from kassa.billing import allocation
from kassa.billing.inputs import LineInput
from kassa.billing.models import Invoice, InvoiceLine
from kassa.billing.services import parse_tax_rate, tax_on
from kassa.core.errors import (
    BenefitExhausted,
    PackageClosed,
    PackageRefundExceedsBalance,
    ValidationFailed,
)
from kassa.core.locks import (
    lock_benefit,
    lock_invoice,
    lock_package,
    lock_packages_of_lines,
    money_transaction,
)
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.ledger.services import Line, credit, debit, post
from kassa.packages.models import (
    Benefit,
    Package,
    PackageStatus,
    PackageTemplate,
    Redemption,
    TemplateBenefit,
)
from kassa.tenancy.models import Membership, Organization
from kassa.tenancy.services import require_writer

MAX_BENEFITS = 50


@dataclass(frozen=True)
class BenefitInput:
    name: str
    quantity: int
    unit_value: str


def _money(minor: int, organization: Organization) -> str:
    return display(minor, organization.currency, organization.locale)


# --- templates ------------------------------------------------------------------------------

@money_transaction()
def create_template(
    *, actor: Membership, name: str, price: str, tax_rate: str, benefits: list[BenefitInput],
) -> PackageTemplate:
    require_writer(actor)
    currency = actor.organization.currency
    price_minor = parse_amount(price, currency, field="price")
    rate = parse_tax_rate(tax_rate, field="tax_rate")
    if not benefits:
        raise ValidationFailed("benefits", "a package needs at least one benefit")
    if len(benefits) > MAX_BENEFITS:
        raise ValidationFailed("benefits", f"at most {MAX_BENEFITS} benefits")
    rows = []
    for i, benefit in enumerate(benefits):
        if not 1 <= benefit.quantity <= 10_000:
            raise ValidationFailed(f"benefits[{i}].quantity", "must be 1 to 10000")
        unit = parse_amount(benefit.unit_value, currency, field=f"benefits[{i}].unit_value")
        rows.append(TemplateBenefit(organization=actor.organization, position=i + 1,
                                    name=benefit.name,
                                    quantity=benefit.quantity, unit_value_minor=unit))
    template = PackageTemplate.objects.create(organization=actor.organization, name=name,
                                              price_minor=price_minor, tax_rate=rate)
    for row in rows:
        row.template = template
    TemplateBenefit.objects.bulk_create(rows)
    record(organization_id=template.organization_id, actor=actor.user,
           action="package_template.created", object=f"package_template:{template.pk}",
           detail={"name": name, "price_minor": price_minor})
    return template


# --- selling and paying in (billing calls these, inside its transaction) ---------------------

class PackageLines:
    """What a package line does in billing's use cases (see `kassa.billing.line_kinds`)."""

    def prepare(self, *, organization_id: int, line: LineInput, where: str) -> PackageTemplate:
        if not line.package_template:
            raise ValidationFailed(f"{where}.package_template",
                                   "a package line names its package template")
        template = get_scoped(PackageTemplate.objects.filter(organization_id=organization_id),
                              line.package_template, field=f"{where}.package_template")
        if line.quantity != 1:
            raise ValidationFailed(f"{where}.quantity",
                                   "a package line sells one package: use one line each")
        return template

    def defaults(self, prepared: PackageTemplate) -> tuple[int, Decimal]:
        return prepared.price_minor, prepared.tax_rate

    def opened(self, *, invoice: Invoice, line: InvoiceLine, prepared: PackageTemplate
               ) -> list[Line]:
        package = Package.objects.create(
            organization_id=invoice.organization_id, center_id=invoice.center_id,
            customer_id=invoice.customer_id, invoice=invoice, line=line, template=prepared,
            name=line.description, price_minor=line.net_minor, tax_rate=line.tax_rate,
            created_at=invoice.created_at,
        )
        Benefit.objects.bulk_create([
            Benefit(organization_id=package.organization_id, package=package,
                    position=b.position, name=b.name, quantity=b.quantity,
                    unit_value_minor=b.unit_value_minor)
            for b in prepared.benefits.all()
        ])
        return [credit("package_sold_unpaid", line.net_minor, invoice=invoice, package=package)]

    def paid_in(self, *, shares: Mapping[int, tuple[int, int]], refs: Mapping[str, Any]
                ) -> list[Line]:
        return pay_in(shares=shares).ledger_lines(**refs)


@dataclass(frozen=True)
class PaidIn:
    """Money paid into (or taken out of) packages, checked: what it posts."""

    shares: Mapping[int, tuple[int, int]]
    packages: Mapping[int, Package]  # by line id

    def ledger_lines(self, **refs: Any) -> list[Line]:
        lines: list[Line] = []
        for line_id, (net, _) in self.shares.items():
            package = self.packages[line_id]
            lines += [debit("package_sold_unpaid", net, package=package, **refs),
                      credit("package_liability", net, package=package, **refs)]
        return lines


def pay_in(*, shares: Mapping[int, tuple[int, int]],
           locked: Mapping[int, Package] | None = None, may_go_negative: bool = False) -> PaidIn:
    """What of a payment reaches package lines is paid into their packages (the line's own
    figures say so once billing writes them). A negative share takes money back out (a refund
    of the payment): refused — before anything is written — when it would leave a package
    below zero or take back tax the package already returned. `may_go_negative`: the money
    never came (a returned check, a lost chargeback re-billed): what was redeemed of it is
    owed, and the package's balance goes below zero."""
    packages = (dict(locked) if locked is not None and set(shares) <= set(locked)
                else lock_packages_of_lines(sorted(shares)))
    for line_id, (net, tax) in shares.items():
        package = packages[line_id]
        if net < 0 and package.balance_minor + net < 0 and not may_go_negative:
            org = package.organization
            raise PackageRefundExceedsBalance(
                f"Refunding this payment would take {_money(-net, org)} out of the "
                f"{package.name} package, whose balance is "
                f"{_money(package.balance_minor, org)}: refund the package instead",
                field="amount")
        if tax < 0 and package.tax_refunded_minor > package.tax_paid_minor + tax:
            raise PackageRefundExceedsBalance(
                f"Refunding this payment would take back tax that the {package.name} package "
                "already returned: refund the package instead", field="amount")
    return PaidIn(shares, packages)


def can_give_back(line_ids: list[int], *, lock: bool = True,
                  ) -> tuple[dict[int, tuple[int, int]], dict[int, Package]]:
    """What each package sold on these lines can give back to a refund of a payment, net and
    tax apart: an open package its balance and the tax it has not returned; a closed one, or
    one with nothing left, nothing. The refund then takes its amount from the lines that can
    give it. Also the packages, locked (for `pay_in`); `lock=False` for a page that only says
    how much a refund could take now."""
    packages = (lock_packages_of_lines(sorted(line_ids)) if lock else
                {p.line_id: p for p in Package.objects.select_related("line")
                 .filter(line_id__in=line_ids)})
    return ({line_id: (0, 0) if package.status == PackageStatus.CLOSED
             else (max(package.balance_minor, 0),
                   max(package.tax_paid_minor - package.tax_refunded_minor, 0))
             for line_id, package in packages.items()}, packages)


def names_of_lines(line_ids: list[int]) -> list[str]:
    return list(Package.objects.filter(line_id__in=line_ids).order_by("pk")
                .values_list("name", flat=True))


# --- redemptions ----------------------------------------------------------------------------

@money_transaction()
def redeem_benefit(*, actor: Membership, package: str | int, benefit: str | int,
                   quantity: int) -> Package:
    require_writer(actor)
    found = get_scoped(Package.objects.filter(organization=actor.organization), package)
    if not 1 <= quantity <= 10_000:
        raise ValidationFailed("quantity", "must be 1 to 10000")
    lock_invoice(found.invoice_id)
    pkg = lock_package(found.pk)
    chosen = lock_benefit(pkg.pk, benefit, field="benefit")
    if pkg.status == PackageStatus.CLOSED:
        raise PackageClosed("The package is closed: its benefits can no longer be redeemed",
                            field="benefit")
    left = chosen.quantity - chosen.used
    if quantity > left:
        raise BenefitExhausted(f"Only {left} of {chosen.name} left", field="quantity")
    amount = quantity * chosen.unit_value_minor
    now = timezone.now()
    chosen.used += quantity
    chosen.save(update_fields=["used"])
    pkg.redeemed_minor += amount
    pkg.save(update_fields=["redeemed_minor"])
    Redemption.objects.create(organization_id=pkg.organization_id, package=pkg,
                              benefit=chosen, quantity=quantity,
                              amount_minor=amount, created_by=actor.user, created_at=now)
    if amount:
        post(organization=actor.organization, center=pkg.center, kind="redemption", at=now,
             created_by=actor.user, memo=f"{quantity} × {chosen.name}",
             lines=[debit("package_liability", amount, package=pkg, invoice_id=pkg.invoice_id),
                    credit("revenue_redemption", amount, package=pkg,
                           invoice_id=pkg.invoice_id)])
    record(organization_id=pkg.organization_id, actor=actor.user, action="package.redeemed",
           object=f"package:{pkg.pk}",
           detail={"benefit": chosen.pk, "quantity": quantity, "amount_minor": amount})
    return pkg


# --- the arithmetic of a package refund (the refunds app calls these, under its locks) -------

def check_open(pkg: Package) -> None:
    if pkg.status == PackageStatus.CLOSED:
        raise PackageClosed("The package is closed", field="package")


def check_within_balance(pkg: Package, amount_minor: int, organization: Organization) -> None:
    """A package refund needs a balance and may not exceed it, less what an open refund
    request reserves of it (`requested_minor`)."""
    left = pkg.balance_minor - pkg.requested_minor
    if left <= 0 or amount_minor > left:
        held = (f" ({_money(pkg.requested_minor, organization)} of it is held by an open "
                "refund request)" if pkg.requested_minor else "")
        raise PackageRefundExceedsBalance(
            f"The refund amount cannot exceed the package balance that remains, "
            f"{_money(max(left, 0), organization)}{held}.", field="amount")


def refund_tax(pkg: Package, amount_minor: int) -> int:
    """The tax returned with a refund of `amount_minor` from `pkg` (see the module's doc)."""
    received_left = pkg.tax_paid_minor - pkg.tax_refunded_minor
    if amount_minor == pkg.balance_minor:
        used = tax_on(pkg.redeemed_minor + pkg.forfeited_minor, pkg.tax_rate)
        tax = pkg.tax_paid_minor - pkg.tax_refunded_minor - used
    else:
        # Each refund's own tax, rounded half-up — but never so that the refunds together
        # return more than the tax on all they refunded: many small refunds rounding up one
        # after another would otherwise drain the tax that later redemptions still owe.
        tax = min(tax_on(amount_minor, pkg.tax_rate),
                  tax_on(pkg.refunded_minor + amount_minor, pkg.tax_rate)
                  - pkg.tax_refunded_minor)
    return max(0, min(tax, received_left))


def close(pkg: Package, *, invoice: Invoice, refunding_minor: int, actor: Membership,
          now: dt.datetime) -> None:
    """Close the package as a refund of `refunding_minor` from it is made: no more
    redemptions, what balance is left after that refund is forfeited (recognised as revenue),
    and what is still unpaid on its line is credited so nothing stays due for it. The figures
    are read before the refund's own rows are written; the caller refreshes the invoice."""
    line = pkg.line
    left = pkg.balance_minor - refunding_minor
    # A package refund credits and gives back the same amount, so what the line owes is the
    # same before and after it.
    unpaid_net, unpaid_tax = line.owed_net_minor, line.owed_tax_minor
    lines: list[Line] = []
    refs = {"invoice": invoice, "package": pkg}
    if left > 0:
        lines += [debit("package_liability", left, **refs),
                  credit("revenue_forfeit", left, **refs)]
        pkg.forfeited_minor += left
    if unpaid_net or unpaid_tax:
        lines += [debit("package_sold_unpaid", unpaid_net, **refs),
                  debit("tax_payable", unpaid_tax, **refs),
                  credit("receivable", unpaid_net + unpaid_tax, **refs)]
        allocation.credit(organization_id=pkg.organization_id,
                          shares={line.pk: (unpaid_net, unpaid_tax)}, refund_id=None)
    if lines:
        post(organization=actor.organization, center=invoice.center, at=now,
             created_by=actor.user, kind="package_closed", lines=lines,
             memo=f"Package {pkg.pk} closed")
    pkg.status = PackageStatus.CLOSED
    pkg.closed_at = now
    pkg.save(update_fields=["forfeited_minor", "status", "closed_at"])
    record(organization_id=pkg.organization_id, actor=actor.user, action="package.closed",
           object=f"package:{pkg.pk}",
           detail={"forfeited_minor": max(left, 0), "refunding_minor": refunding_minor})


def forfeit_if_closed(pkg: Package, *, invoice: Invoice, now: dt.datetime, memo: str) -> None:
    """Money that comes back into a package already closed (a refund failed) is forfeited like
    the rest of its balance was: a closed package keeps no balance. `pkg.line` must be fresh;
    `invoice` is the package's, locked, with its organization and center."""
    if pkg.status != PackageStatus.CLOSED or pkg.balance_minor <= 0:
        return
    assert pkg.invoice_id == invoice.pk
    left = pkg.balance_minor
    post(organization=invoice.organization, center=invoice.center, at=now,
         kind="package_closed",
         memo=memo,
         lines=[debit("package_liability", left, package=pkg, invoice_id=pkg.invoice_id),
                credit("revenue_forfeit", left, package=pkg, invoice_id=pkg.invoice_id)])
    pkg.forfeited_minor += left
    pkg.save(update_fields=["forfeited_minor"])
