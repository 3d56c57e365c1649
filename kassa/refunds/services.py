"""The refund use cases: a refund of a payment (online back to the card, or recorded offline)
and a refund of a package's balance (paid out online to one of the invoice's payments, or
offline). Both are one money transaction that locks, in the one order, the invoice, then the
payment, then the package; checks every rule before writing anything; then opens the refund,
books it and starts its payout through `kassa.refunds.lifecycle`, which every refund shares.

The gateway is never called here: an online refund is recorded as pending with its call due,
and `kassa.refunds.gateway_calls` makes the call from a task, outside any lock.

A refund's amount goes, in a straight line: the API or the form → `refund_payment` (parse and
check the input) → `_create_payment_refund` (the rules under the locks; what it takes back from
each line, planned by billing's allocation) → the journal entry, the allocation rows and the
payment's figures, all written there, in that one transaction.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from kassa.billing import allocation
from kassa.billing.models import LineKind, Payment, PaymentStatus
from kassa.core.errors import (
    NoteRequired,
    OnlineRefundNotAllowed,
    PackageAlreadyRefunded,
    PaymentNotSucceeded,
    RefundExceedsRefundable,
    RefundPending,
    ValidationFailed,
)
from kassa.core.locks import lock_invoice, lock_package, lock_payment, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.ledger.services import credit, debit
from kassa.packages import services as packages
from kassa.packages.models import Package
from kassa.refunds import lifecycle
from kassa.refunds.models import OfflineMethod, Refund, RefundStatus, RefundType
from kassa.tenancy.models import Membership, Organization
from kassa.tenancy.services import require_refund_permission

MAX_REASON = 500
MAX_NOTE = 2000
PACKAGE_REFUND_METHODS = (OfflineMethod.CASH, OfflineMethod.CHECK, OfflineMethod.OTHER)


def _money(minor: int, organization: Organization) -> str:
    return display(minor, organization.currency, organization.locale)


def _asked(actor: Membership, amount: str, reason: str, note: str) -> tuple[int, str, str]:
    """What every refund asks, checked in one order: may this person refund, then the amount
    at the currency's precision, the reason (required) and the note."""
    require_refund_permission(actor)
    return (parse_amount(amount, actor.organization.currency),
            _clean(reason, "reason", MAX_REASON, required=True), _clean(note, "note", MAX_NOTE))


def _clean(value: str | None, field: str, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed(field, "is required")
    if len(text) > limit:
        raise ValidationFailed(field, f"at most {limit} characters")
    if any((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text):
        raise ValidationFailed(field, "must not contain control characters")
    return text


def _check_succeeded(payment: Payment, *, field: str | None) -> None:
    if payment.status != PaymentStatus.SUCCEEDED:
        raise PaymentNotSucceeded(
            f"Payment {payment.pk} is {payment.get_status_display().lower()}: only money "
            "received can be refunded", field=field)


def refund_payment(
    *, actor: Membership, payment: str | int, type: str, amount: str, reason: str,
    internal_note: str = "", method: str | None = None, note: str = "",
    decrease_balance_owed: bool = False, request_key: str | None = None,
) -> Refund:
    """One entry point for both kinds, as the API and the forms receive them. A retry of a
    request that died after making its refund (same Idempotency-Key) answers that refund."""
    if type == RefundType.ONLINE:
        if method:
            raise ValidationFailed("method", "an online refund goes back by the payment's own "
                                   "method: leave method out")
        return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                               internal_note=internal_note, online=True, method=None, note="",
                               decrease_balance_owed=decrease_balance_owed,
                               request_key=request_key or "")
    if type == RefundType.OFFLINE:
        return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                               internal_note=internal_note, online=False, method=method or "",
                               note=note, decrease_balance_owed=decrease_balance_owed,
                               request_key=request_key or "")
    raise ValidationFailed("type", "must be online or offline")


def issue_online_refund(
    *, actor: Membership, payment: str | int, amount: str, reason: str,
    internal_note: str = "", decrease_balance_owed: bool = False,
) -> Refund:
    """Refund back to the original online payment, through the gateway (pending until settled)."""
    return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                           internal_note=internal_note, decrease_balance_owed=decrease_balance_owed,
                           online=True, method=None, note="")


def record_offline_refund(
    *, actor: Membership, payment: str | int, amount: str, reason: str, method: str,
    note: str = "", internal_note: str = "", decrease_balance_owed: bool = False,
) -> Refund:
    """Record money given back outside Kassa (check, cash, insurance, other)."""
    return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                           internal_note=internal_note, decrease_balance_owed=decrease_balance_owed,
                           online=False, method=method, note=note)


def _refund_payment(
    *, actor: Membership, payment: str | int, amount: str, reason: str, internal_note: str,
    decrease_balance_owed: bool, online: bool, method: str | None, note: str,
    request_key: str = "",
) -> Refund:
    target = get_scoped(Payment.objects.filter(organization=actor.organization), payment)
    amount_minor, reason, note = _asked(actor, amount, reason, note)
    internal_note = _clean(internal_note, "internal_note", MAX_NOTE)
    if online:
        if not target.online:
            raise OnlineRefundNotAllowed(
                "An offline payment takes offline refunds only: record an offline refund",
                field="type")
        method = target.method
    else:
        if method not in OfflineMethod.values:
            raise ValidationFailed("method", f"must be one of {', '.join(OfflineMethod.values)}")
        if method == OfflineMethod.OTHER and not note:
            raise NoteRequired("A note is required when the refund method is other", field="note")
    assert method is not None
    return _create_payment_refund(
        actor=actor, payment_id=target.pk, invoice_id=target.invoice_id,
        amount_minor=amount_minor, reason=reason,
        internal_note=internal_note, note=note, method=method, online=online,
        decrease_balance_owed=decrease_balance_owed, request_key=request_key,
    )


@money_transaction()
def _create_payment_refund(
    *, actor: Membership, payment_id: int, invoice_id: int, amount_minor: int, reason: str,
    internal_note: str, note: str, method: str, online: bool, decrease_balance_owed: bool,
    request_key: str,
) -> Refund:
    organization = actor.organization
    invoice = lock_invoice(invoice_id)
    payment = lock_payment(payment_id)
    if request_key and (earlier := lifecycle.made_by_request(
            actor, request_key, payment_id=payment_id, package_id=None,
            amount_minor=amount_minor)):
        return earlier  # checked under the locks: two runs of one request make one refund
    _check_succeeded(payment, field=None)
    if payment.refund_pending:
        raise RefundPending("An online refund of this payment is pending; wait until it settles")
    if amount_minor > payment.refundable_minor:
        raise RefundExceedsRefundable(
            f"At most {_money(payment.refundable_minor, organization)} of this payment can be "
            "refunded.", field="amount")
    # Like a negative payment: out of what the payment paid into each line, pro rata; with
    # *decrease balance owed* the same shares are credited off the sale.
    held = allocation.held_by(payment)
    tax_part = (allocation.credit_split(held, invoice, amount_minor)
                if decrease_balance_owed else None)
    shares = allocation.plan_take_back(held, amount_minor, tax_part=tax_part)
    # What it takes back from package lines leaves those packages: refused now, before anything
    # is written, if that would leave one below zero.
    out_of_packages = packages.pay_in(shares={
        line_id: (-net, -tax) for line_id, (net, tax) in shares.items()
        if held.kinds[line_id] == LineKind.PACKAGE and (net or tax)})
    credited = ((sum(n for n, _ in shares.values()), sum(t for _, t in shares.values()))
                if decrease_balance_owed else (0, 0))

    now = timezone.now()
    refund = lifecycle.open_refund(
        actor=actor, invoice=invoice, payment=payment, online=online, amount_minor=amount_minor,
        method=method, reason=reason, internal_note=internal_note, note=note, now=now,
        decrease_balance_owed=decrease_balance_owed, credit=credited, request_key=request_key,
        kind="refund_issued" if online else "refund_recorded",
        memo=f"Refund of payment {payment.pk}: {reason}")
    refs = {"invoice": invoice, "payment": payment, "refund": refund}
    lines = [debit("receivable", amount_minor, **refs),
             credit("refunds_in_transit" if online else method, amount_minor, **refs),
             *out_of_packages.ledger_lines(**refs)]
    allocation.take_back(payment=payment, refund_id=refund.pk, shares=shares, now=now)
    if decrease_balance_owed:
        allocation.credit(organization_id=refund.organization_id, shares=shares,
                          refund_id=refund.pk)
        lines += [debit("sales_credits", credited[0], **refs),
                  debit("tax_payable", credited[1], **refs),
                  credit("receivable", amount_minor, **refs)]
    lifecycle.book(refund, lines)
    allocation.refresh(invoice)
    how = "online, back to the card" if online else f"offline by {method}"
    lifecycle.start_payout(
        refund, payment=payment, actor=actor, now=now,
        detail=f"Refund {refund.pk} {how}: {reason}"
        + (" (balance owed decreased)" if decrease_balance_owed else ""))
    return refund


def refund_package(
    *, actor: Membership, package: str | int, amount: str, reason: str,
    close_package: bool = False, refund_to_payment: str | None = None,
    method: str | None = None, note: str = "", request_key: str | None = None,
) -> Refund:
    """Refund some of a package's balance (package-refunds.txt), with the tax received on it,
    paid out online to one of the invoice's online payments or offline; optionally closing the
    package."""
    found = get_scoped(Package.objects.filter(organization=actor.organization), package)
    amount_minor, reason, note = _asked(actor, amount, reason, note)
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
            raise NoteRequired("A note is required when the refund method is other",
                               field="refund_to.note")
    return _refund_package(actor=actor, package_id=found.pk, invoice_id=found.invoice_id,
                           amount_minor=amount_minor, reason=reason, close=close_package,
                           payment_id=payment_id, method=method or "", note=note,
                           request_key=request_key or "")


@money_transaction()
def _refund_package(*, actor: Membership, package_id: int, invoice_id: int, amount_minor: int,
                    reason: str, close: bool, payment_id: int | None, method: str,
                    note: str, request_key: str) -> Refund:
    invoice = lock_invoice(invoice_id)
    # The organization as read with the lock (its rules), not as the token's look-up kept it.
    organization = invoice.organization
    payment = lock_payment(payment_id) if payment_id else None
    pkg = lock_package(package_id)
    if request_key and (earlier := lifecycle.made_by_request(
            actor, request_key, payment_id=payment_id, package_id=package_id,
            amount_minor=amount_minor)):
        return earlier  # checked under the locks: two runs of one request make one refund
    packages.check_open(pkg)
    if close and Refund.objects.filter(invoice=invoice, status=RefundStatus.PENDING,
                                       package__isnull=True).exists():
        # Closing credits what the line still owes; part of that is only re-opened by a
        # pending payment refund, which may yet fail and take it back. Close once it settles.
        raise RefundPending("An online refund of a payment on this invoice is pending: close "
                            "the package once it settles", field="close_package")
    if not organization.allow_multiple_package_refunds and Refund.objects.filter(
            ~Q(status=RefundStatus.FAILED), package=pkg).exists():
        raise PackageAlreadyRefunded(
            "This organization allows one refund per package, and this one has had it")
    packages.check_within_balance(pkg, amount_minor, organization)
    tax_minor = packages.refund_tax(pkg, amount_minor)
    total = amount_minor + tax_minor
    online = payment is not None
    if payment is not None:
        _check_succeeded(payment, field="refund_to.payment")
        if payment.refund_pending:
            raise RefundPending("An online refund of this payment is pending",
                                field="refund_to.payment")
        if total > payment.refundable_minor:
            raise RefundExceedsRefundable(
                f"The payment has {_money(payment.refundable_minor, organization)} left to "
                "refund", field="refund_to.payment")

    now = timezone.now()
    refund = lifecycle.open_refund(
        actor=actor, invoice=invoice, payment=payment, online=online, amount_minor=amount_minor,
        tax_minor=tax_minor, method=payment.method if payment is not None else method,
        reason=reason, note=note, now=now, package_id=pkg.pk, close_package=close,
        request_key=request_key, kind="package_refund",
        memo=f"Refund of package {pkg.pk}: {reason}")
    refs = {"invoice": invoice, "package": pkg, "refund": refund, "payment": payment}
    lifecycle.book(refund, [debit("package_liability", amount_minor, **refs),
                            debit("tax_payable", tax_minor, **refs),
                            credit("refunds_in_transit" if online else method, total, **refs)])
    if close:
        packages.close(pkg, invoice=invoice, refunding_minor=amount_minor, actor=actor, now=now)
    # The sale goes down by what was refunded, and the paid money goes back: so the balance
    # due does not move.
    allocation.credit(organization_id=refund.organization_id,
                      shares={pkg.line_id: (amount_minor, tax_minor)}, refund_id=refund.pk,
                      gives_back=True)
    allocation.refresh(invoice)
    lifecycle.start_payout(refund, payment=payment, actor=actor, now=now,
                           detail=f"Refund {refund.pk} of package {pkg.name}, online: {reason}")
    return refund
