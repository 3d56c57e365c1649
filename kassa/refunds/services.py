"""Refunds of payments: issue an online refund, record an offline one, and the online refund's
life after that (settled, failed — even after it had succeeded).

Every function that changes money runs in one transaction that locks, in order, the invoice,
then the payment, then the refund; writes the business rows, one balanced journal entry and the
outbox rows (receipt, gateway call) together. The gateway is never called here: an online
refund is recorded as pending with its call due, and `kassa.refunds.gateway_calls` makes the
call from a task, outside any lock.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from kassa.billing.locks import lock_invoice, lock_payment
from kassa.billing.models import Payment, PaymentEvent
from kassa.billing.services import refresh_invoice_figures
from kassa.core.errors import (
    NoteRequired,
    OnlineRefundNotAllowed,
    RefundExceedsRefundable,
    RefundNotPermitted,
    RefundPending,
    ValidationFailed,
)
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.gateways.base import RefundState
from kassa.ledger.services import credit, debit, post, reverse
from kassa.refunds import allocation
from kassa.refunds.models import (
    GatewayState,
    OfflineMethod,
    Receipt,
    ReceiptKind,
    Refund,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Membership, Role

logger = logging.getLogger("kassa.refunds")

MAX_REASON = 500
MAX_NOTE = 2000


def require_refund_permission(actor: Membership) -> None:
    """By default only an admin refunds; `refund_roles` widens that. An accountant never may."""
    roles = actor.organization.refund_roles
    if actor.role == Role.ACCOUNTANT or actor.role not in roles:
        raise RefundNotPermitted(f"The {actor.role} role may not refund in this organization")


def may_refund(actor: Membership) -> bool:
    try:
        require_refund_permission(actor)
    except RefundNotPermitted:
        return False
    return True


def _clean(value: str | None, field: str, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed(field, "is required")
    if len(text) > limit:
        raise ValidationFailed(field, f"at most {limit} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text) or "\x7f" in text:
        raise ValidationFailed(field, "must not contain control characters")
    return text


def refund_payment(
    *, actor: Membership, payment: str | int, type: str, amount: str, reason: str,
    internal_note: str = "", method: str | None = None, note: str = "",
    decrease_balance_owed: bool = False,
) -> Refund:
    """One entry point for both kinds, as the API and the forms receive them."""
    if type == RefundType.ONLINE:
        if method:
            raise ValidationFailed("method", "an online refund goes back by the payment's own "
                                   "method: leave method out")
        return issue_online_refund(actor=actor, payment=payment, amount=amount, reason=reason,
                                   internal_note=internal_note,
                                   decrease_balance_owed=decrease_balance_owed)
    if type == RefundType.OFFLINE:
        return record_offline_refund(actor=actor, payment=payment, amount=amount, reason=reason,
                                     method=method or "", note=note, internal_note=internal_note,
                                     decrease_balance_owed=decrease_balance_owed)
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
) -> Refund:
    organization = actor.organization
    target = get_scoped(Payment.objects.filter(organization=organization), payment)
    require_refund_permission(actor)
    amount_minor = parse_amount(amount, organization.currency)
    reason = _clean(reason, "reason", MAX_REASON, required=True)
    internal_note = _clean(internal_note, "internal_note", MAX_NOTE)
    note = _clean(note, "note", MAX_NOTE)
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
        actor=actor, payment_id=target.pk, amount_minor=amount_minor, reason=reason,
        internal_note=internal_note, note=note, method=method, online=online,
        decrease_balance_owed=decrease_balance_owed,
    )


@transaction.atomic
def _create_payment_refund(
    *, actor: Membership, payment_id: int, amount_minor: int, reason: str, internal_note: str,
    note: str, method: str, online: bool, decrease_balance_owed: bool,
) -> Refund:
    unlocked = Payment.objects.only("invoice_id").get(pk=payment_id)
    invoice = lock_invoice(unlocked.invoice_id)
    payment = lock_payment(payment_id)
    if payment.refund_pending:
        raise RefundPending("An online refund of this payment is pending; wait until it settles")
    if amount_minor > payment.refundable_minor:
        org = actor.organization
        raise RefundExceedsRefundable(
            f"At most {display(payment.refundable_minor, org.currency, org.locale)} of this "
            "payment can be refunded.",
            field="amount")
    now = timezone.now()
    refund = Refund.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id, invoice=invoice,
        payment=payment, type=RefundType.ONLINE if online else RefundType.OFFLINE,
        status=RefundStatus.PENDING if online else RefundStatus.RECORDED,
        amount_minor=amount_minor, method=method, reason=reason, internal_note=internal_note,
        note=note, decrease_balance_owed=decrease_balance_owed, created_by=actor.user,
        created_at=now, gateway=payment.gateway if online else "",
        gateway_state=GatewayState.TO_CALL if online else GatewayState.NONE,
        next_attempt_at=now if online else None,
    )
    tax_part = (allocation.credit_split(payment, invoice, amount_minor)
                if decrease_balance_owed else None)
    shares = allocation.take_back_from_lines(payment, refund, amount_minor, tax_part=tax_part)
    refs = {"invoice": invoice, "payment": payment, "refund": refund}
    lines = [debit("receivable", amount_minor, **refs),
             credit("refunds_in_transit" if online else method, amount_minor, **refs)]
    # What the refund takes back from package lines comes out of those packages.
    lines += allocation.take_back_from_packages(shares, refs)
    if decrease_balance_owed:
        net, tax = allocation.credit_lines(refund, shares)
        refund.credit_net_minor, refund.credit_tax_minor = net, tax
        lines += [debit("sales_credits", net, **refs), debit("tax_payable", tax, **refs),
                  credit("receivable", amount_minor, **refs)]
        invoice.credits_minor += amount_minor
    refund.issue_entry = post(
        organization=actor.organization, center=invoice.center, at=now, created_by=actor.user,
        kind="refund_issued" if online else "refund_recorded", lines=lines,
        memo=f"Refund of payment {payment.pk}: {reason}",
    )
    refund.save(update_fields=["issue_entry", "credit_net_minor", "credit_tax_minor"])

    invoice.refunded_minor += amount_minor
    refresh_invoice_figures(invoice)
    payment.refunded_minor += amount_minor
    payment.refund_pending = online
    payment.save(update_fields=["refunded_minor", "refund_pending"])

    how = "online, back to the card" if online else f"offline by {method}"
    PaymentEvent.objects.create(
        payment=payment, at=now, kind="refund_issued" if online else "refund_recorded",
        amount_minor=amount_minor, status=refund.status, by=actor.user,
        detail=f"Refund {refund.pk} {how}: {reason}"
        + (" (balance owed decreased)" if decrease_balance_owed else ""),
    )
    _queue_receipt(refund, ReceiptKind.RECEIPT, now)
    if online:
        from kassa.refunds.tasks import call_gateway

        call_gateway.enqueue(refund.pk)
    return refund


def _queue_receipt(refund: Refund, kind: str, now: dt.datetime) -> None:
    receipt, created = Receipt.objects.get_or_create(
        refund=refund, kind=kind,
        defaults={"to_email": refund.invoice.customer.email, "next_attempt_at": now},
    )
    if created:
        from kassa.refunds.tasks import send_receipt

        send_receipt.enqueue(receipt.pk)


def record_gateway_reference(*, refund_id: int, reference: str) -> bool:
    """Keep the gateway's id of a refund, once: the first one recorded stands."""
    return bool(Refund.objects.filter(pk=refund_id, gateway_reference="").update(
        gateway_reference=reference[:200]))


def apply_gateway_result(*, refund_id: int, state: str, failure_reason: str = "") -> bool:
    """Record what the gateway says of an online refund. Safe to call again and out of order:
    a refund moves pending → succeeded → failed only forwards, and each step happens once.
    Returns whether anything changed."""
    if state == RefundState.PENDING:
        return False
    with transaction.atomic():
        unlocked = Refund.objects.only("invoice_id", "payment_id").get(pk=refund_id)
        invoice = lock_invoice(unlocked.invoice_id)
        payment = lock_payment(unlocked.payment_id) if unlocked.payment_id else None
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        now = timezone.now()
        if state == RefundState.SUCCEEDED and refund.status == RefundStatus.PENDING:
            _settle(refund, payment, now)
        elif state == RefundState.FAILED and refund.status in (
                RefundStatus.PENDING, RefundStatus.SUCCEEDED):
            reason = failure_reason or "the gateway refused it"
            if refund.status == RefundStatus.SUCCEEDED and not allocation.fits_back(refund,
                                                                                  invoice):
                return _hold_late_failure(refund, payment, now, reason)
            _fail(refund, invoice, payment, now, reason)
        else:
            return False
        refund.gateway_state = GatewayState.DONE
        refund.save()
        return True


def _settle(refund: Refund, payment: Payment | None, now: dt.datetime) -> None:
    refs = {"invoice_id": refund.invoice_id, "payment_id": refund.payment_id, "refund": refund}
    refund.settle_entry = post(
        organization=refund.organization, center=refund.center, at=now, kind="refund_settled",
        lines=[debit("refunds_in_transit", refund.total_minor, **refs),
               credit(refund.method, refund.total_minor, **refs)],
        memo=f"Refund {refund.pk} settled by the gateway",
    )
    refund.status = RefundStatus.SUCCEEDED
    refund.settled_at = now
    if payment is not None:
        payment.refund_pending = False
        payment.save(update_fields=["refund_pending"])
        PaymentEvent.objects.create(payment=payment, at=now, kind="refund_succeeded",
                                    amount_minor=refund.total_minor, status=refund.status,
                                    detail=f"Refund {refund.pk} settled by the gateway")


def _hold_late_failure(refund: Refund, payment: Payment | None, now: dt.datetime,
                       reason: str) -> bool:
    """The gateway failed a refund after it had succeeded, and the balance that refund re-opened
    has been paid again since: its money cannot go back onto the invoice without paying it twice
    (Kassa keeps no overpayment, an invoice's balance due is never below zero). Record nothing
    in the books, flag the refund for a person and say so in the payment's history; never
    crash, so the gateway's news is not retried for ever nor lost."""
    if refund.gateway_state == GatewayState.STUCK:
        return False  # held already
    logger.error("refund %s failed after it succeeded, and the balance it re-opened was paid "
                 "since: flagged for a person", refund.pk)
    refund.gateway_state = GatewayState.STUCK
    refund.last_error = (f"the gateway failed it after it succeeded ({reason}); the balance it "
                         "re-opened was paid since: give the money back another way")[:500]
    refund.save(update_fields=["gateway_state", "last_error"])
    if payment is not None:
        PaymentEvent.objects.create(payment=payment, at=now, kind="refund_needs_attention",
                                    amount_minor=refund.total_minor, status=refund.status,
                                    detail=f"Refund {refund.pk}: {refund.last_error}"[:500])
    return True


def _fail(refund: Refund, invoice: object, payment: Payment | None, now: dt.datetime,
          reason: str) -> None:
    from kassa.billing.models import Invoice

    assert isinstance(invoice, Invoice)
    was_pending = refund.status == RefundStatus.PENDING
    if refund.settle_entry_id:
        reverse(refund.settle_entry, at=now)  # type: ignore[arg-type]
    assert refund.issue_entry is not None
    reverse(refund.issue_entry, at=now)
    invoice.refunded_minor -= refund.total_minor
    if refund.package_id:
        from kassa.packages.services import fail_package_refund

        fail_package_refund(refund, now)
        invoice.credits_minor -= refund.total_minor
    else:
        allocation.put_back(refund)
        if refund.decrease_balance_owed:
            invoice.credits_minor -= refund.credit_net_minor + refund.credit_tax_minor
    refresh_invoice_figures(invoice)
    refund.status = RefundStatus.FAILED
    refund.failure_reason = reason[:300]
    refund.settled_at = now
    if payment is not None:
        payment.refunded_minor -= refund.total_minor
        if was_pending:  # a refund failed after it succeeded was not the pending one, if any
            payment.refund_pending = False
        payment.save(update_fields=["refunded_minor", "refund_pending"])
        PaymentEvent.objects.create(payment=payment, at=now, kind="refund_failed",
                                    amount_minor=refund.total_minor, status=RefundStatus.FAILED,
                                    detail=f"Refund {refund.pk} failed: {reason}")
    _queue_receipt(refund, ReceiptKind.FAILURE_NOTICE, now)
