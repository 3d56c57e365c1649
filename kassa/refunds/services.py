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

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, Sum
from django.utils import timezone

from kassa.billing import allocation
from kassa.billing import credit as customer_credit
from kassa.billing.models import (
    CreditKind,
    Customer,
    Invoice,
    InvoiceLine,
    LineKind,
    Method,
    Payment,
    PaymentAllocation,
    PaymentStatus,
)
from kassa.core.errors import (
    CreditInsufficient,
    DomainError,
    NoteRequired,
    OnlineRefundNotAllowed,
    PackageAlreadyRefunded,
    PackageRefundExceedsBalance,
    PaymentDisputed,
    PaymentNotSucceeded,
    RefundExceedsRefundable,
    RefundPending,
    ValidationFailed,
)
from kassa.core.locks import (
    lock_customer,
    lock_customer_of_payment,
    lock_invoice,
    lock_invoice_and_payment,
    lock_package,
    lock_packages_of_lines,
    lock_payment,
    money_transaction,
)
from kassa.core.lookup import get_scoped, parse_id
from kassa.core.money import display, parse_amount
from kassa.ledger.services import Line, credit, debit
from kassa.packages import services as packages
from kassa.packages.models import Package
from kassa.refunds import lifecycle
from kassa.refunds.models import (
    OfflineMethod,
    Refund,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Center, Membership, Organization
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_admin, require_refund_permission

MAX_REASON = 500
MAX_NOTE = 2000
PACKAGE_REFUND_METHODS = (OfflineMethod.CASH, OfflineMethod.CHECK, OfflineMethod.OTHER)
CREDIT = "credit"  # a refund's method when it goes into the customer's credit


# Called with each row just locked (a payment, a package, a customer), before any rule reads
# it: an approval (kassa.refunds.requests) releases its own reservation there.
OnLocked = Callable[[Any], None] | None


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


def _check_not_disputed(payment: Payment, *, field: str | None) -> None:
    """A payment whose charge is disputed (open, or lost and not settled) takes no refund: the
    cardholder's bank is deciding, or has decided, where that money goes."""
    if payment.disputed:
        raise PaymentDisputed(
            f"Payment {payment.pk} is disputed by the cardholder's bank: it cannot be refunded "
            "until the dispute is decided (and, if lost, settled)", field=field)


def refund_payment(
    *, actor: Membership, payment: str | int, type: str, amount: str, reason: str,
    internal_note: str = "", method: str | None = None, note: str = "",
    decrease_balance_owed: bool = False, request_key: str | None = None,
    on_locked: OnLocked = None,
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
                               request_key=request_key or "", on_locked=on_locked)
    if type == RefundType.OFFLINE:
        return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                               internal_note=internal_note, online=False, method=method or "",
                               note=note, decrease_balance_owed=decrease_balance_owed,
                               request_key=request_key or "", on_locked=on_locked)
    if type == RefundType.CREDIT:
        if method:
            raise ValidationFailed("method", "a refund to account credit has no method: "
                                   "leave method out")
        return _refund_payment(actor=actor, payment=payment, amount=amount, reason=reason,
                               internal_note=internal_note, online=False, method=CREDIT,
                               note=note, decrease_balance_owed=decrease_balance_owed,
                               request_key=request_key or "", on_locked=on_locked)
    raise ValidationFailed("type", "must be online, offline or credit")


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
    request_key: str = "", on_locked: OnLocked = None,
) -> Refund:
    if parse_id(payment) is None:  # never a payment: no transaction, no read
        get_scoped(Payment.objects.none(), payment)
    # What the input says is checked before any lock (a refusal never waits on a row), in the
    # order it always was: an unknown payment first, then the person, the amount, the texts.
    try:
        amount_minor, reason, note = _asked(actor, amount, reason, note)
        internal_note = _clean(internal_note, "internal_note", MAX_NOTE)
    except DomainError:
        get_scoped(Payment.objects.filter(organization_id=actor.organization_id), payment)
        raise
    return _create_payment_refund(
        actor=actor, payment_ref=payment, amount_minor=amount_minor, reason=reason,
        internal_note=internal_note, note=note, method=method, online=online,
        decrease_balance_owed=decrease_balance_owed, request_key=request_key,
        on_locked=on_locked,
    )


def _payout_method(target: Payment, *, online: bool, method: str | None, note: str,
                   where: str = "") -> str:
    """How a refund of `target` pays out, checked before any lock: its own method online,
    a tender offline, or the customer's credit (`CREDIT`). `where` prefixes the fields (a
    split refund's part)."""
    if target.invoice_id is None:
        raise ValidationFailed(f"{where}payment", "is a deposit: refund it from the "
                               "customer's credit")
    if target.method == Method.CREDIT and method != CREDIT:
        raise ValidationFailed(f"{where}type", "a payment from account credit is refunded "
                               "to account credit")
    if online:
        if not target.online:
            raise OnlineRefundNotAllowed(
                "An offline payment takes offline refunds only: record an offline refund",
                field=f"{where}type")
        return target.method
    if method == CREDIT:
        return CREDIT
    if method not in OfflineMethod.values:
        raise ValidationFailed(f"{where}method",
                               f"must be one of {', '.join(OfflineMethod.values)}")
    if method == OfflineMethod.OTHER and not note:
        raise NoteRequired("A note is required when the refund method is other",
                           field=f"{where}note")
    return method


@money_transaction()
def _create_payment_refund(
    *, actor: Membership, payment_ref: str | int, amount_minor: int, reason: str,
    internal_note: str, note: str, method: str | None, online: bool,
    decrease_balance_owed: bool, request_key: str, on_locked: OnLocked = None,
) -> Refund:
    # The payment and its invoice are locked by one statement, by way of the payment's id (its
    # customer first when the refund goes into their credit: the lock order), so the payment
    # is read once, under its lock, and the input is checked against that row (issue 17: two
    # statements less).
    payment_id = parse_id(payment_ref)
    assert payment_id is not None
    organization_id = actor.organization_id
    into_credit = method == CREDIT
    customer = (lock_customer_of_payment(payment_id, organization_id=organization_id)
                if into_credit else None)
    found = lock_invoice_and_payment(payment_id, organization_id=organization_id)
    if found is None:  # not the organization's payment (a 404), or a deposit (a 422 below)
        invoice, target = None, get_scoped(
            Payment.objects.filter(organization_id=organization_id), payment_ref)
    else:
        invoice, target = found
    method = _payout_method(target, online=online, method=method, note=note)
    assert invoice is not None and (customer is not None) == into_credit
    payment = target
    if on_locked is not None:
        on_locked(payment)
    if request_key and (earlier := lifecycle.made_by_request(
            actor, request_key, payment_id=payment_id, package_id=None,
            amount_minor=amount_minor)):
        return earlier  # checked under the locks: two runs of one request make one refund
    return _refund_locked_payment(
        actor=actor, invoice=invoice, payment=payment, customer=customer,
        amount_minor=amount_minor, reason=reason, internal_note=internal_note, note=note,
        method=method, online=online, decrease_balance_owed=decrease_balance_owed,
        request_key=request_key)


def _refund_locked_payment(
    *, actor: Membership, invoice: Invoice, payment: Payment, customer: Customer | None,
    amount_minor: int, reason: str, internal_note: str, note: str, method: str, online: bool,
    decrease_balance_owed: bool, request_key: str = "", where: str = "",
    split_group: str = "", made_at_gateway: str = "",
) -> Refund:
    """A refund of a payment, its invoice and payment (and, into credit, its customer) locked:
    every rule checked, then everything written. `where` prefixes the fields its errors name
    (a split refund's part)."""
    organization = invoice.organization
    _check_succeeded(payment, field=f"{where}payment" if where else None)
    _check_not_disputed(payment, field=f"{where}payment" if where else None)
    if payment.refund_pending:
        raise RefundPending("An online refund of this payment is pending; wait until it settles",
                            field=f"{where}payment" if where else None)
    # What open refund requests hold of it is not refundable (read under the payment's lock).
    refundable = payment.refundable_minor - payment.requested_minor
    if amount_minor > refundable:
        raise RefundExceedsRefundable(
            f"At most {_money(max(refundable, 0), organization)} of this payment can be "
            "refunded.", field=f"{where}amount")
    if online and amount_minor > payment.refundable_online_minor:
        raise RefundExceedsRefundable(
            f"The gateway can refund at most "
            f"{_money(payment.refundable_online_minor, organization)} more of this charge.",
            field=f"{where}amount")
    # Like a negative payment: out of what the payment paid into each line, pro rata among the
    # lines that can give it back (a package gives back at most its balance, a closed one
    # nothing); with *decrease balance owed* the same shares are credited off the sale.
    held, locked = _able_to_give(allocation.held_by(payment), amount_minor, organization,
                                 field=f"{where}amount")
    tax_part = (allocation.credit_split(held, invoice, amount_minor)
                if decrease_balance_owed else None)
    shares = allocation.plan_take_back(held, amount_minor, tax_part=tax_part)
    # What it takes back from package lines leaves those packages: refused now, before anything
    # is written, if that would leave one below zero.
    out_of_packages = packages.pay_in(shares={
        line_id: (-net, -tax) for line_id, (net, tax) in shares.items()
        if held.kinds[line_id] == LineKind.PACKAGE and (net or tax)}, locked=locked)
    credited = ((sum(n for n, _ in shares.values()), sum(t for _, t in shares.values()))
                if decrease_balance_owed else (0, 0))

    to_credit = method == CREDIT
    now = timezone.now()
    refund = lifecycle.open_refund(
        actor=actor, invoice=invoice, payment=payment, online=online, amount_minor=amount_minor,
        method=method, reason=reason, internal_note=internal_note, note=note, now=now,
        decrease_balance_owed=decrease_balance_owed, credit=credited, request_key=request_key,
        to_credit=to_credit, split_group=split_group, made_at_gateway=made_at_gateway,
        kind=("refund_issued" if online else "refund_to_credit" if to_credit
              else "refund_recorded"),
        memo=f"Refund of payment {payment.pk}: {reason}")
    refs = {"invoice": invoice, "payment": payment, "refund": refund}
    lines = [debit("receivable", amount_minor, **refs)]
    moved = None
    if to_credit:
        assert customer is not None
        moved = _into_credit(customer, payment=payment, invoice=invoice, refund=refund,
                             amount_minor=amount_minor, by=actor.user, now=now)
        lines += moved.lines(invoice.center, **refs)
    else:
        lines.append(credit("refunds_in_transit" if online else method, amount_minor, **refs))
    lines += out_of_packages.ledger_lines(**refs)
    allocation.take_back(payment=payment, refund_id=refund.pk, shares=shares, now=now)
    if decrease_balance_owed:
        allocation.credit(organization_id=refund.organization_id, shares=shares,
                          refund_id=refund.pk)
        lines += [debit("sales_credits", credited[0], **refs),
                  debit("tax_payable", credited[1], **refs),
                  credit("receivable", amount_minor, **refs)]
    lifecycle.book(refund, lines)
    if moved is not None:
        moved.post_elsewhere(organization=organization, here=invoice.center,
                             kind="refund_to_credit", at=now, by=actor.user,
                             memo=f"Refund {refund.pk} to credit", refund_id=refund.pk)
    how = ("online, back to the card" if online else "to account credit" if to_credit
           else f"offline by {method}")
    lifecycle.start_payout(
        refund, payment=payment, invoice=invoice, actor=actor, now=now,
        detail=f"Refund {refund.pk} {how}: {reason}"
        + (" (balance owed decreased)" if decrease_balance_owed else ""))
    return refund


def _able_to_give(held: allocation.Held, amount_minor: int, organization: Organization, *,
                  field: str) -> tuple[allocation.Held, dict[int, Package]]:
    """What a payment holds on each line that the line can give back now: all of it on a
    service or product line, at most its package's balance (and the tax it has not returned)
    on a package line. Refused, saying how much can be refunded, when the amount is more."""
    package_lines = [line_id for line_id, kind in held.kinds.items() if kind == LineKind.PACKAGE]
    able, locked = _what_lines_give(held, package_lines, lock=True)
    if amount_minor > able.net + able.tax:
        short = [line_id for line_id in package_lines if able.shares[line_id] != held.shares[
            line_id]]
        names = ", ".join(packages.names_of_lines(short))
        raise PackageRefundExceedsBalance(
            f"At most {_money(able.net + able.tax, organization)} of this payment can be "
            f"refunded now: what it paid into the package {names} was used or refunded "
            "already. Refund the package instead, or refund less", field=field)
    return able, locked


def _what_lines_give(held: allocation.Held, package_lines: list[int], *, lock: bool
                     ) -> tuple[allocation.Held, dict[int, Package]]:
    caps, found = (packages.can_give_back(package_lines, lock=lock) if package_lines
                   else ({}, {}))
    return allocation.Held(
        {line_id: (min(net, caps[line_id][0]), min(tax, caps[line_id][1]))
         if line_id in caps else (net, tax) for line_id, (net, tax) in held.shares.items()},
        held.kinds), found


def refundable_now(payment: Payment) -> int:
    """What a refund of the payment could take right now (for the pages, no lock): its
    refundable, less what open refund requests reserve of it and what it paid into packages
    that have since been used or closed."""
    refundable = max(payment.refundable_minor - payment.requested_minor, 0)
    if payment.invoice_id is None or refundable == 0:
        return refundable
    held = allocation.held_by(payment)
    package_lines = [line_id for line_id, kind in held.kinds.items() if kind == LineKind.PACKAGE]
    if not package_lines:
        return refundable
    able, _ = _what_lines_give(held, package_lines, lock=False)
    return min(refundable, able.net + able.tax)


def _package_into_credit(customer: Customer, *, pkg: Package, invoice: Invoice, refund: Refund,
                         total: int, by: object, now: dt.datetime,
                         refs: dict[str, object]) -> list[Line]:
    """A package refund into its customer's credit keeps the money what it was: split pro rata
    over the payments that paid into the package, each part card money of its card (an online
    payment), back into the lots it came from (a payment from credit), or plain money. What no
    payment explains (nothing paid in) is plain money."""
    held = [(payment, int(paid)) for payment, paid in (
        (Payment.objects.get(pk=row["payment_id"]), row["s"]) for row in
        PaymentAllocation.objects.filter(line_id=pkg.line_id).values("payment_id")
        .annotate(s=Sum(F("net_minor") + F("tax_minor"))).order_by("payment_id"))
        if paid and paid > 0]
    capacity = sum(paid for _, paid in held)
    shares = allocation.split_pro_rata(min(total, capacity), [(p.pk, paid) for p, paid in held])
    note = f"Refund {refund.pk} of package {pkg.name}"
    moved: list[customer_credit.Moved] = []
    plain = total - sum(shares.values())
    for payment, _ in held:
        part = int(shares[payment.pk])
        if not part:
            continue
        if payment.method == Method.CREDIT:
            moved.append(customer_credit.put_back(
                customer, of_entries=customer_credit.entries_of_payment(payment),
                amount_minor=part, kind=CreditKind.REFUND_TO_CREDIT, center=invoice.center,
                at=now, by=by, payment=payment, invoice_id=invoice.pk, refund_id=refund.pk,
                note=note))
        else:
            moved.append(customer_credit.take_in(
                customer, kind=CreditKind.REFUND_TO_CREDIT, amount_minor=part,
                center=invoice.center, at=now, by=by, payment=payment, invoice_id=invoice.pk,
                refund_id=refund.pk, note=note))
    if plain:
        moved.append(customer_credit.take_in(
            customer, kind=CreditKind.REFUND_TO_CREDIT, amount_minor=plain,
            center=invoice.center, at=now, by=by, invoice_id=invoice.pk, refund_id=refund.pk,
            note=note))
    lines: list[Line] = []
    for movement in moved:
        lines += movement.lines(invoice.center, **refs)
        movement.post_elsewhere(organization=invoice.organization, here=invoice.center,
                                kind="package_refund", at=now, by=by,
                                memo=f"Refund {refund.pk} to credit", refund_id=refund.pk,
                                package_id=pkg.pk)
    return lines


def _into_credit(customer: Customer, *, payment: Payment, invoice: Invoice, refund: Refund,
                 amount_minor: int, by: object, now: dt.datetime) -> customer_credit.Moved:
    """A refund of a payment into its customer's credit: new money in (card money, if the
    payment was online: it goes back only to that card), or — for a payment that was made from
    credit — back into the lots it came from."""
    note = f"Refund {refund.pk} of payment {payment.pk}"
    if payment.method == Method.CREDIT:
        return customer_credit.put_back(
            customer, of_entries=customer_credit.entries_of_payment(payment),
            amount_minor=amount_minor, kind=CreditKind.REFUND_TO_CREDIT, center=invoice.center,
            at=now, by=by, payment=payment, invoice_id=invoice.pk, refund_id=refund.pk,
            note=note)
    return customer_credit.take_in(
        customer, kind=CreditKind.REFUND_TO_CREDIT, amount_minor=amount_minor,
        center=invoice.center, at=now, by=by, payment=payment, invoice_id=invoice.pk,
        refund_id=refund.pk, note=note)


def refund_package(
    *, actor: Membership, package: str | int, amount: str, reason: str,
    close_package: bool = False, refund_to_payment: str | None = None,
    method: str | None = None, note: str = "", request_key: str | None = None,
    to_credit: bool = False, on_locked: OnLocked = None,
) -> Refund:
    """Refund some of a package's balance (package-refunds.txt), with the tax received on it,
    paid out online to one of the invoice's online payments, offline, or into the customer's
    credit; optionally closing the package."""
    found = get_scoped(Package.objects.filter(organization=actor.organization), package)
    amount_minor, reason, note = _asked(actor, amount, reason, note)
    payment_id: int | None = None
    if to_credit:
        if refund_to_payment is not None or method:
            raise ValidationFailed("refund_to", "name a payment, a method or credit: one")
        method = CREDIT
    elif refund_to_payment is not None:
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
                                   "or refund to one of the invoice's online payments "
                                   "or to account credit")
        if method == OfflineMethod.OTHER and not note:
            raise NoteRequired("A note is required when the refund method is other",
                               field="refund_to.note")
    customer_id = (Invoice.objects.values_list("customer_id", flat=True)
                   .get(pk=found.invoice_id) if to_credit else None)
    return _refund_package(actor=actor, package_id=found.pk, invoice_id=found.invoice_id,
                           amount_minor=amount_minor, reason=reason, close=close_package,
                           payment_id=payment_id, method=method or "", note=note,
                           request_key=request_key or "", customer_id=customer_id,
                           on_locked=on_locked)


@money_transaction()
def _refund_package(*, actor: Membership, package_id: int, invoice_id: int, amount_minor: int,
                    reason: str, close: bool, payment_id: int | None, method: str,
                    note: str, request_key: str, customer_id: int | None = None,
                    on_locked: OnLocked = None) -> Refund:
    # Into credit: the customer first (the lock order).
    customer = lock_customer(customer_id) if customer_id is not None else None
    invoice = lock_invoice(invoice_id)
    # The organization as read with the lock (its rules), not as the token's look-up kept it.
    organization = invoice.organization
    payment = lock_payment(payment_id) if payment_id else None
    pkg = lock_package(package_id)
    if on_locked is not None:
        on_locked(pkg)
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
        _check_not_disputed(payment, field="refund_to.payment")
        if payment.refund_pending:
            raise RefundPending("An online refund of this payment is pending",
                                field="refund_to.payment")
        # What open refund requests reserve of it is not refundable.
        left = max(payment.refundable_minor - payment.requested_minor, 0)
        if total > left:
            raise RefundExceedsRefundable(
                f"The payment has {_money(left, organization)} left to refund",
                field="refund_to.payment")
        if total > payment.refundable_online_minor:
            raise RefundExceedsRefundable(
                f"The gateway can refund at most "
                f"{_money(payment.refundable_online_minor, organization)} more of this charge",
                field="refund_to.payment")

    now = timezone.now()
    refund = lifecycle.open_refund(
        actor=actor, invoice=invoice, payment=payment, online=online, amount_minor=amount_minor,
        tax_minor=tax_minor, method=payment.method if payment is not None else method,
        reason=reason, note=note, now=now, package_id=pkg.pk, close_package=close,
        request_key=request_key, kind="package_refund", to_credit=customer is not None,
        memo=f"Refund of package {pkg.pk}: {reason}")
    refs = {"invoice": invoice, "package": pkg, "refund": refund, "payment": payment}
    lines = [debit("package_liability", amount_minor, **refs),
             debit("tax_payable", tax_minor, **refs)]
    if customer is not None:
        lines += _package_into_credit(customer, pkg=pkg, invoice=invoice, refund=refund,
                                      total=total, by=actor.user, now=now, refs=refs)
    else:
        lines.append(credit("refunds_in_transit" if online else method, total, **refs))
    lifecycle.book(refund, lines)
    if close:
        packages.close(pkg, invoice=invoice, refunding_minor=amount_minor, actor=actor, now=now)
    # The sale goes down by what was refunded, and the paid money goes back: so the balance
    # due does not move.
    allocation.credit(organization_id=refund.organization_id,
                      shares={pkg.line_id: (amount_minor, tax_minor)}, refund_id=refund.pk,
                      gives_back=True)
    lifecycle.start_payout(refund, payment=payment, invoice=invoice, actor=actor, now=now,
                           detail=f"Refund {refund.pk} of package {pkg.name}, online: {reason}")
    return refund


# --- refunds out of a customer's credit ------------------------------------------------------

def refund_credit(
    *, actor: Membership, customer: str | int, amount: str, reason: str,
    refund_to: dict[str, str | None], center: str | None = None,
    override_reason: str | None = None, request_key: str | None = None,
    on_locked: OnLocked = None,
) -> Refund:
    """Give back money a customer holds as credit: online to one of their payments (v1's
    pending life; a failure puts the money back into credit), or offline (cash, check, other),
    optionally to a named payee (the family member or estate that receives the check).

    Card money goes back to its card: credit that came from an online payment is refunded
    out only to that payment, unless an admin gives `override_reason`. Oldest money first."""
    organization = actor.organization
    owner = get_scoped(Customer.objects.filter(organization=organization), customer)
    amount_minor, reason, _ = _asked(actor, amount, reason, "")
    override = _clean(override_reason, "override_reason", MAX_REASON)
    if override:
        require_admin(actor)
    where = get_center(organization, center, field="center") if center is not None else None
    payment_id = refund_to.get("payment")
    method = refund_to.get("method")
    note = _clean(refund_to.get("note"), "refund_to.note", MAX_NOTE)
    payee = _clean(refund_to.get("payee"), "refund_to.payee", 200)
    if payment_id is not None:
        if method or payee:
            raise ValidationFailed("refund_to", "name a payment, or a method (with its note "
                                   "and payee): not both")
        target = get_scoped(Payment.objects.filter(customer=owner), payment_id,
                            field="refund_to.payment")
        if not target.online:
            raise OnlineRefundNotAllowed("Refund credit online only to one of the customer's "
                                         "online payments", field="refund_to.payment")
        _check_succeeded(target, field="refund_to.payment")
        return _refund_credit(actor=actor, customer_id=owner.pk, payment_id=target.pk,
                              amount_minor=amount_minor, reason=reason, method=target.method,
                              note="", payee="", override=override, center=where,
                              request_key=request_key or "", on_locked=on_locked)
    if method not in PACKAGE_REFUND_METHODS:
        raise ValidationFailed("refund_to.method", "must be cash, check or other, or name one "
                               "of the customer's online payments")
    if method == OfflineMethod.OTHER and not note:
        raise NoteRequired("A note is required when the refund method is other",
                           field="refund_to.note")
    return _refund_credit(actor=actor, customer_id=owner.pk, payment_id=None,
                          amount_minor=amount_minor, reason=reason, method=method, note=note,
                          payee=payee, override=override, center=where,
                          request_key=request_key or "", on_locked=on_locked)


@money_transaction()
def _refund_credit(*, actor: Membership, customer_id: int, payment_id: int | None,
                   amount_minor: int, reason: str, method: str, note: str, payee: str,
                   override: str, center: Center | None, request_key: str,
                   on_locked: OnLocked = None) -> Refund:
    customer = lock_customer(customer_id)
    payment = lock_payment(payment_id) if payment_id is not None else None
    if on_locked is not None:
        on_locked(customer)
        if payment is not None:
            on_locked(payment)
    organization = actor.organization
    if request_key and (earlier := lifecycle.made_by_request(
            actor, request_key, payment_id=payment_id, package_id=None,
            amount_minor=amount_minor)):
        return earlier
    online = payment is not None
    if payment is not None:
        _check_not_disputed(payment, field="refund_to.payment")
        if payment.refund_pending:
            raise RefundPending("An online refund of this payment is pending; wait until it "
                                "settles", field="refund_to.payment")
        if amount_minor > payment.refundable_online_minor:
            raise RefundExceedsRefundable(
                f"The gateway can refund at most "
                f"{_money(payment.refundable_online_minor, organization)} more of payment "
                f"{payment.pk}.", field="amount")
        source = customer_credit.card(payment.pk)
    else:
        source = customer_credit.ANY if override else customer_credit.OFFLINE
    # What open refund requests of the credit reserve of it is not refundable.
    free = customer.credit_minor - customer.requested_minor
    if customer.requested_minor and amount_minor > free:
        raise CreditInsufficient(
            f"At most {_money(max(free, 0), organization)}"
            f" of {customer.name}'s credit can be refunded: "
            f"{_money(customer.requested_minor, organization)} is held by open refund requests",
            field="amount")
    where = center or (payment.center if payment is not None else None)
    now = timezone.now()
    # The movement first (it refuses what the credit cannot give), then the refund it names.
    refund = lifecycle.open_refund(
        actor=actor, invoice=None, customer=customer,
        center=where or customer_credit.home_center(customer),
        payment=payment, online=online, amount_minor=amount_minor, method=method,
        reason=reason, note=note, payee=payee, override_reason=override, now=now,
        request_key=request_key, kind="credit_refund",
        memo=f"Refund of {customer.name}'s credit: {reason}")
    moved = customer_credit.take_out(
        customer, kind=CreditKind.REFUNDED_OUT, amount_minor=amount_minor, center=refund.center,
        at=now, by=actor.user, source=source, organization=organization, payment=payment,
        refund_id=refund.pk, note=(f"To {payee}: " if payee else "") + reason)
    refs = {"payment": payment, "refund": refund}
    lifecycle.book(refund, [*moved.lines(refund.center, **refs),
                            credit("refunds_in_transit" if online else method, amount_minor,
                                   **refs)])
    moved.post_elsewhere(organization=organization, here=refund.center, kind="credit_refund",
                         at=now, by=actor.user, memo=f"Refund {refund.pk} of credit",
                         refund_id=refund.pk)
    how = f"online to payment {payment.pk}" if payment is not None else f"by {method}"
    lifecycle.start_payout(
        refund, payment=payment, actor=actor, now=now,
        detail=f"Refund {refund.pk} of account credit {how}: {reason}"
        + (f" (card rule overridden: {override})" if override else ""))
    return refund


# --- split refunds: one refund across the invoice's payments ---------------------------------

@dataclass(frozen=True)
class Part:
    payment: str
    type: str
    amount: str
    method: str | None = None
    note: str = ""


MAX_PARTS = 20


def refund_invoice(
    *, actor: Membership, invoice: str | int, reason: str, parts: list[Part],
    internal_note: str = "", decrease_balance_owed: bool = False, on_locked: OnLocked = None,
) -> tuple[str, list[Refund]]:
    """Refund an invoice across its payments at once (some to the card, some in cash, some
    to credit): all or nothing. Every part is checked — its input first, then, under the
    locks, v1's rules for its payment — before any is written; each error names its part
    (`parts[i].amount`). `decrease_balance_owed` applies to every part. Each online part then
    lives its own life."""
    require_refund_permission(actor)
    organization = actor.organization
    target = get_scoped(Invoice.objects.filter(organization=organization), invoice)
    reason = _clean(reason, "reason", MAX_REASON, required=True)
    internal_note = _clean(internal_note, "internal_note", MAX_NOTE)
    if not parts:
        raise ValidationFailed("parts", "a split refund needs at least one part")
    if len(parts) > MAX_PARTS:
        raise ValidationFailed("parts", f"at most {MAX_PARTS} parts")
    asked: list[tuple[int, int, str, str, bool]] = []  # payment, amount, method, note, online
    seen: set[int] = set()
    for i, part in enumerate(parts):
        where = f"parts[{i}]."
        found = get_scoped(Payment.objects.filter(organization=organization), part.payment,
                           field=f"{where}payment")
        if found.invoice_id != target.pk:
            raise ValidationFailed(f"{where}payment", "is a payment of another invoice")
        if found.pk in seen:
            raise ValidationFailed(f"{where}payment", "is listed twice: one part per payment")
        seen.add(found.pk)
        if part.type not in RefundType.values:
            raise ValidationFailed(f"{where}type", "must be online, offline or credit")
        if part.type != RefundType.OFFLINE and part.method:
            raise ValidationFailed(f"{where}method", "only an offline part has a method")
        amount_minor = parse_amount(part.amount, organization.currency,
                                    field=f"{where}amount")
        note = _clean(part.note, f"{where}note", MAX_NOTE)
        online = part.type == RefundType.ONLINE
        method = _payout_method(found, online=online, note=note, where=where,
                                method=CREDIT if part.type == RefundType.CREDIT
                                else part.method)
        asked.append((found.pk, amount_minor, method, note, online))
    return _refund_parts(actor=actor, invoice_id=target.pk, customer_id=target.customer_id,
                         reason=reason, internal_note=internal_note,
                         decrease_balance_owed=decrease_balance_owed, asked=asked,
                         on_locked=on_locked)


@money_transaction()
def _refund_parts(*, actor: Membership, invoice_id: int, customer_id: int, reason: str,
                  internal_note: str, decrease_balance_owed: bool,
                  asked: list[tuple[int, int, str, str, bool]],
                  on_locked: OnLocked = None) -> tuple[str, list[Refund]]:
    to_credit = any(method == CREDIT for _, _, method, _, _ in asked)
    customer = lock_customer(customer_id) if to_credit else None
    invoice = lock_invoice(invoice_id)
    # Every payment, then every package on the invoice, in id order (the lock order): the parts
    # then take no lock of their own out of order.
    locked = {payment_id: lock_payment(payment_id)
              for payment_id in sorted(payment_id for payment_id, *_ in asked)}
    if on_locked is not None:
        for payment in locked.values():
            on_locked(payment)
    lock_packages_of_lines(sorted(InvoiceLine.objects.filter(
        invoice=invoice, kind=LineKind.PACKAGE).values_list("pk", flat=True)))
    group = uuid.uuid4().hex
    refunds: list[Refund] = []
    # Each part checks its rules before it writes; a later part that breaks one rolls the
    # whole transaction back, so nothing of the group is written.
    for i, (payment_id, amount_minor, method, note, online) in enumerate(asked):
        refunds.append(_refund_locked_payment(
            actor=actor, invoice=invoice, payment=locked[payment_id], customer=customer,
            amount_minor=amount_minor, reason=reason, internal_note=internal_note, note=note,
            method=method, online=online, decrease_balance_owed=decrease_balance_owed,
            where=f"parts[{i}].", split_group=group))
    return group, refunds
