"""Packages: templates, selling them on invoice lines, paying into them, redeeming benefits and
refunding them (package-refunds.txt).

Selling and paying are called by the billing services inside their own transaction (the
invoice is locked there); redeeming and refunding are use cases of their own, each one
transaction that locks the invoice, then the payment it pays out to (if any), then the package.

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

from django.db import transaction
from django.utils import timezone

from kassa.billing.locks import lock_invoice, lock_payment
from kassa.billing.models import Invoice, InvoiceLine, Payment, PaymentEvent
from kassa.core.errors import (
    BenefitExhausted,
    OnlineRefundNotAllowed,
    PackageAlreadyRefunded,
    PackageClosed,
    PackageRefundExceedsBalance,
    RefundExceedsRefundable,
    RefundPending,
    ValidationFailed,
)
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount, round_half_up_minor
from kassa.ledger.services import Line, credit, debit, post
from kassa.packages.models import (
    Benefit,
    Package,
    PackageStatus,
    PackageTemplate,
    Redemption,
    TemplateBenefit,
)
from kassa.refunds.models import (
    GatewayState,
    OfflineMethod,
    Refund,
    RefundCredit,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_writer

MAX_BENEFITS = 50
PACKAGE_REFUND_METHODS = (OfflineMethod.CASH, OfflineMethod.CHECK, OfflineMethod.OTHER)


@dataclass(frozen=True)
class BenefitInput:
    name: str
    quantity: int
    unit_value: str


def tax_on(amount_minor: int, rate: Decimal) -> int:
    return round_half_up_minor(Decimal(amount_minor) * rate / 100)


# --- templates ------------------------------------------------------------------------------

@transaction.atomic
def create_template(
    *, actor: Membership, name: str, price: str, tax_rate: str, benefits: list[BenefitInput],
) -> PackageTemplate:
    from kassa.billing.services import parse_tax_rate

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
        rows.append(TemplateBenefit(position=i + 1, name=benefit.name,
                                    quantity=benefit.quantity, unit_value_minor=unit))
    template = PackageTemplate.objects.create(organization=actor.organization, name=name,
                                              price_minor=price_minor, tax_rate=rate)
    for row in rows:
        row.template = template
    TemplateBenefit.objects.bulk_create(rows)
    return template


def template_for_line(organization_id: int, template_id: object, *, field: str) -> PackageTemplate:
    return get_scoped(PackageTemplate.objects.filter(organization_id=organization_id),
                      template_id, field=field)


# --- selling and paying in (called by billing, inside its transaction) ----------------------

def open_package(*, invoice: Invoice, line: InvoiceLine, template: PackageTemplate) -> Package:
    package = Package.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id,
        customer_id=invoice.customer_id, invoice=invoice, line=line, template=template,
        name=line.description, price_minor=line.net_minor, tax_rate=line.tax_rate,
        created_at=invoice.created_at,
    )
    Benefit.objects.bulk_create([
        Benefit(package=package, position=b.position, name=b.name, quantity=b.quantity,
                unit_value_minor=b.unit_value_minor)
        for b in template.benefits.all()
    ])
    return package


def pay_in(*, line: InvoiceLine, net_minor: int, tax_minor: int, refs: Mapping[str, object]
           ) -> list[Line]:
    """What reaches a package line is paid into its package: the ledger lines for it.

    A negative amount takes money back out (a refund of the payment); refused when that would
    leave the package below zero.
    """
    package = Package.objects.select_for_update().get(line=line)
    package.paid_minor += net_minor
    package.tax_paid_minor += tax_minor
    if net_minor < 0 and package.balance_minor < 0:
        raise PackageRefundExceedsBalance(
            f"Refunding this payment would take {-net_minor} out of package {package.pk}, "
            f"whose balance is {package.balance_minor - net_minor}: refund the package instead",
            field="amount")
    if package.tax_refunded_minor > package.tax_paid_minor:
        raise PackageRefundExceedsBalance(
            "Refunding this payment would take back tax the package already returned",
            field="amount")
    package.save(update_fields=["paid_minor", "tax_paid_minor"])
    return [debit("package_sold_unpaid", net_minor, package=package, **refs),
            credit("package_liability", net_minor, package=package, **refs)]


# --- redemptions ----------------------------------------------------------------------------

@transaction.atomic
def redeem_benefit(*, actor: Membership, package: str | int, benefit: str | int,
                   quantity: int) -> Package:
    require_writer(actor)
    found = get_scoped(Package.objects.filter(organization=actor.organization), package)
    if not 1 <= quantity <= 10_000:
        raise ValidationFailed("quantity", "must be 1 to 10000")
    lock_invoice(found.invoice_id)
    pkg = Package.objects.select_for_update().get(pk=found.pk)
    chosen = get_scoped(Benefit.objects.select_for_update().filter(package=pkg), benefit,
                        field="benefit")
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
    Redemption.objects.create(package=pkg, benefit=chosen, quantity=quantity,
                              amount_minor=amount, created_by=actor.user, created_at=now)
    if amount:
        post(organization=actor.organization, center=pkg.center, kind="redemption", at=now,
             created_by=actor.user, memo=f"{quantity} × {chosen.name}",
             lines=[debit("package_liability", amount, package=pkg, invoice_id=pkg.invoice_id),
                    credit("revenue_redemption", amount, package=pkg,
                           invoice_id=pkg.invoice_id)])
    return pkg


# --- package refunds ------------------------------------------------------------------------

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


def refund_package(
    *, actor: Membership, package: str | int, amount: str, reason: str,
    close_package: bool = False, refund_to_payment: str | None = None,
    method: str | None = None, note: str = "",
) -> Refund:
    from kassa.refunds.services import _clean, require_refund_permission

    organization = actor.organization
    found = get_scoped(Package.objects.filter(organization=organization), package)
    require_refund_permission(actor)
    amount_minor = parse_amount(amount, organization.currency)
    reason = _clean(reason, "reason", 500, required=True)
    note = _clean(note, "note", 2000)
    payment_id: int | None = None
    if refund_to_payment is not None:
        if method:
            raise ValidationFailed("refund_to", "name a payment or a method, not both")
        target = get_scoped(Payment.objects.filter(invoice_id=found.invoice_id),
                            refund_to_payment, field="refund_to.payment")
        if not target.online:
            raise OnlineRefundNotAllowed(
                "Refund online only to one of the invoice's online payments",
                field="refund_to.payment")
        payment_id = target.pk
    else:
        if method not in PACKAGE_REFUND_METHODS:
            raise ValidationFailed("refund_to.method", "must be cash, check or other, "
                                   "or refund to one of the invoice's online payments")
        if method == OfflineMethod.OTHER and not note:
            from kassa.core.errors import NoteRequired

            raise NoteRequired("A note is required when the refund method is other",
                               field="refund_to.note")
    return _refund_package(actor=actor, package_id=found.pk, amount_minor=amount_minor,
                           reason=reason, close=close_package, payment_id=payment_id,
                           method=method or "", note=note)


@transaction.atomic
def _refund_package(*, actor: Membership, package_id: int, amount_minor: int, reason: str,
                    close: bool, payment_id: int | None, method: str, note: str) -> Refund:
    from kassa.billing.services import refresh_invoice_figures
    from kassa.refunds.services import _queue_receipt

    organization = actor.organization
    unlocked = Package.objects.only("invoice_id").get(pk=package_id)
    invoice = lock_invoice(unlocked.invoice_id)
    payment = lock_payment(payment_id) if payment_id else None
    pkg = Package.objects.select_for_update().get(pk=package_id)
    if pkg.status == PackageStatus.CLOSED:
        raise PackageClosed("The package is closed", field="package")
    if close and Refund.objects.filter(invoice=invoice, status=RefundStatus.PENDING,
                                       package__isnull=True).exists():
        # Closing credits what the line still owes; part of that is only re-opened by a
        # pending payment refund, which may yet fail and take it back. Close once it settles.
        raise RefundPending("An online refund of a payment on this invoice is pending: close "
                            "the package once it settles", field="close_package")
    if not organization.allow_multiple_package_refunds and Refund.objects.filter(
            package=pkg).exclude(status=RefundStatus.FAILED).exists():
        raise PackageAlreadyRefunded(
            "This organization allows one refund per package, and this one has had it")
    if pkg.balance_minor <= 0 or amount_minor > pkg.balance_minor:
        raise PackageRefundExceedsBalance(
            f"The refund amount cannot exceed the package balance that remains, "
            f"{display(max(pkg.balance_minor, 0), organization.currency, organization.locale)}.",
            field="amount")
    tax_minor = refund_tax(pkg, amount_minor)
    total = amount_minor + tax_minor
    online = payment is not None
    if payment is not None:
        if payment.refund_pending:
            raise RefundPending("An online refund of this payment is pending",
                                field="refund_to.payment")
        if total > payment.refundable_minor:
            raise RefundExceedsRefundable(
                f"The payment has "
                f"{display(payment.refundable_minor, organization.currency, organization.locale)}"
                " left to refund",
                field="refund_to.payment")
    now = timezone.now()
    refund = Refund.objects.create(
        organization=organization, center_id=invoice.center_id, invoice=invoice,
        payment=payment, package=pkg, close_package=close,
        type=RefundType.ONLINE if online else RefundType.OFFLINE,
        status=RefundStatus.PENDING if online else RefundStatus.RECORDED,
        amount_minor=amount_minor, tax_minor=tax_minor,
        method=payment.method if payment is not None else method, reason=reason, note=note,
        created_by=actor.user, created_at=now,
        gateway=payment.gateway if payment is not None else "",
        gateway_state=GatewayState.TO_CALL if online else GatewayState.NONE,
        next_attempt_at=now if online else None,
    )
    refs = {"invoice": invoice, "package": pkg, "refund": refund,
            "payment": payment}
    refund.issue_entry = post(
        organization=organization, center=invoice.center, at=now, created_by=actor.user,
        kind="package_refund", memo=f"Refund of package {pkg.pk}: {reason}", lines=[
            debit("package_liability", amount_minor, **refs),
            debit("tax_payable", tax_minor, **refs),
            credit("refunds_in_transit" if online else method, total, **refs),
        ])
    refund.save(update_fields=["issue_entry"])
    # The sale goes down by what was refunded, and the paid money goes back: on the line and
    # on the invoice both, so that its balance due does not move.
    line = InvoiceLine.objects.get(pk=pkg.line_id)
    line.credited_net_minor += amount_minor
    line.credited_tax_minor += tax_minor
    line.refunded_net_minor += amount_minor
    line.refunded_tax_minor += tax_minor
    line.save(update_fields=["credited_net_minor", "credited_tax_minor", "refunded_net_minor",
                             "refunded_tax_minor"])
    RefundCredit.objects.create(refund=refund, line=line, net_minor=amount_minor,
                                tax_minor=tax_minor)
    invoice.credits_minor += total
    invoice.refunded_minor += total
    pkg.refunded_minor += amount_minor
    pkg.tax_refunded_minor += tax_minor
    pkg.save(update_fields=["refunded_minor", "tax_refunded_minor"])
    if close:
        _close(pkg, invoice, line, actor, now)
    refresh_invoice_figures(invoice)
    if payment is not None:
        payment.refunded_minor += total
        payment.refund_pending = True
        payment.save(update_fields=["refunded_minor", "refund_pending"])
        PaymentEvent.objects.create(
            payment=payment, at=now, kind="refund_issued", amount_minor=total,
            status=refund.status, by=actor.user,
            detail=f"Refund {refund.pk} of package {pkg.name}, online: {reason}")
    from kassa.refunds.models import ReceiptKind

    _queue_receipt(refund, ReceiptKind.RECEIPT, now)
    if online:
        from kassa.refunds.tasks import call_gateway

        call_gateway.enqueue(refund.pk)
    return refund


def _close(pkg: Package, invoice: Invoice, line: InvoiceLine, actor: Membership | None,
           now: dt.datetime) -> None:
    """Close the package: no more redemptions, what balance is left is forfeited (recognised as
    revenue), and what is still unpaid on its line is credited so nothing stays due for it."""
    left = pkg.balance_minor
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
        line.credited_net_minor += unpaid_net
        line.credited_tax_minor += unpaid_tax
        line.save(update_fields=["credited_net_minor", "credited_tax_minor"])
        invoice.credits_minor += unpaid_net + unpaid_tax
        from kassa.packages.models import PackageCancellation

        PackageCancellation.objects.create(package=pkg, line=line, net_minor=unpaid_net,
                                           tax_minor=unpaid_tax, created_at=now)
    if lines:
        post(organization=invoice.organization, center=invoice.center, at=now,
             created_by=actor.user if actor else None, kind="package_closed", lines=lines,
             memo=f"Package {pkg.pk} closed")
    pkg.status = PackageStatus.CLOSED
    pkg.closed_at = now
    pkg.save(update_fields=["forfeited_minor", "status", "closed_at"])


def fail_package_refund(refund: Refund, now: dt.datetime) -> None:
    """The online package refund failed (called by the refunds service, under its locks): the
    money stays with the package. A package closed by that refund forfeits it instead."""
    assert refund.package_id is not None
    pkg = Package.objects.select_for_update().get(pk=refund.package_id)
    line = InvoiceLine.objects.get(pk=pkg.line_id)
    line.credited_net_minor -= refund.amount_minor
    line.credited_tax_minor -= refund.tax_minor
    line.refunded_net_minor -= refund.amount_minor
    line.refunded_tax_minor -= refund.tax_minor
    line.save(update_fields=["credited_net_minor", "credited_tax_minor", "refunded_net_minor",
                             "refunded_tax_minor"])
    RefundCredit.objects.create(refund=refund, line=line, net_minor=-refund.amount_minor,
                                tax_minor=-refund.tax_minor)
    pkg.refunded_minor -= refund.amount_minor
    pkg.tax_refunded_minor -= refund.tax_minor
    pkg.save(update_fields=["refunded_minor", "tax_refunded_minor"])
    forfeit_if_closed(pkg, refund, now)


def forfeit_if_closed(pkg: Package, refund: Refund, now: dt.datetime) -> None:
    """Money that comes back into a package already closed (its refund failed) is forfeited
    like the rest of its balance was: a closed package keeps no balance."""
    if pkg.status != PackageStatus.CLOSED or pkg.balance_minor <= 0:
        return
    left = pkg.balance_minor
    post(organization=refund.organization, center=refund.center, at=now,
         kind="package_closed", memo=f"Package {pkg.pk}: failed refund {refund.pk} forfeited",
         lines=[debit("package_liability", left, package=pkg, invoice_id=pkg.invoice_id),
                credit("revenue_forfeit", left, package=pkg, invoice_id=pkg.invoice_id)])
    pkg.forfeited_minor += left
    pkg.save(update_fields=["forfeited_minor"])
