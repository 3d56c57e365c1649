"""Returned payments: a check or an ACH debit that the bank sent back (`POST
/payments/{id}/returns`), in one money transaction under the invoice's and the payment's locks.

The money leaves the tender it came in by, and the balance it paid is owed again: what it paid
into each line is taken back, pro rata like a refund of it — but nothing was refunded, the lines
were simply not paid (their `paid` drops, `refunded` stays), and a package loses what the
payment paid into it even below zero (what was redeemed of it is now owed). A fee the bank or
the business charges for it is a new untaxed `fee` line on the invoice (revenue kind `fee`).

    Dr receivable · Cr check (or ach)                         the return
    Dr package liability · Cr package sold, unpaid            what it paid into packages
    Dr receivable · Cr revenue: fees                          the fee (its own line)

A payment is returned once (409 `payment_already_returned`); what it returns is at most what is
not refunded of it (422 `return_exceeds_unrefunded`), by default all of that.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from kassa.audit.services import record
from kassa.billing import allocation
from kassa.billing import services as billing
from kassa.billing.models import LineKind, Method, Payment, PaymentEvent
from kassa.core.errors import (
    PaymentAlreadyReturned,
    ReturnExceedsUnrefunded,
    ReturnNotAllowed,
    ValidationFailed,
)
from kassa.core.locks import lock_invoice, lock_payment, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.ledger.services import add_postings, credit, debit, open_entry
from kassa.packages import services as packages
from kassa.refunds import taken_back
from kassa.refunds.models import PaymentReturn
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_admin

RETURNABLE = (Method.CHECK, Method.ACH)
MAX_REASON = 500


def record_return(*, actor: Membership, payment: str | int, reason: str,
                  amount: str | None = None, fee: str | None = None) -> PaymentReturn:
    require_admin(actor)
    organization = actor.organization
    target = get_scoped(Payment.objects.filter(organization=organization), payment)
    if target.method not in RETURNABLE:
        raise ReturnNotAllowed(
            f"A {target.get_method_display().lower()} payment cannot be returned by a bank: "
            "only a check or an ACH payment can", field="payment")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("reason", "is required")
    if len(reason) > MAX_REASON:
        raise ValidationFailed("reason", f"at most {MAX_REASON} characters")
    amount_minor = parse_amount(amount, organization.currency) if amount else None
    fee_minor = parse_amount(fee, organization.currency, field="fee",
                             allow_zero=True) if fee else 0
    if target.invoice_id is None:
        raise ReturnNotAllowed("A deposit's returned check comes out of the customer's credit: "
                               "record a credit write-off", field="payment")
    try:
        with transaction.atomic():
            return _record(actor=actor, payment_id=target.pk, invoice_id=target.invoice_id,
                           amount_minor=amount_minor, fee_minor=fee_minor, reason=reason)
    except IntegrityError as exc:  # two desks at once: the unique key is the last word
        if "payment_returned_once" not in str(exc):
            raise
        raise PaymentAlreadyReturned(f"Payment {target.pk} was returned already") from None


@money_transaction()
def _record(*, actor: Membership, payment_id: int, invoice_id: int, amount_minor: int | None,
            fee_minor: int, reason: str) -> PaymentReturn:
    invoice = lock_invoice(invoice_id)
    payment = lock_payment(payment_id)
    org = invoice.organization
    money = lambda minor: display(minor, org.currency, org.locale)  # noqa: E731
    if PaymentReturn.objects.filter(payment=payment).exists():
        raise PaymentAlreadyReturned(f"Payment {payment.pk} was returned already")
    unrefunded = payment.refundable_minor
    amount_minor = unrefunded if amount_minor is None else amount_minor
    if amount_minor > unrefunded or amount_minor <= 0:
        raise ReturnExceedsUnrefunded(
            f"At most {money(unrefunded)} of this payment is not refunded, so at most that "
            "can be returned" if unrefunded else "All of this payment was refunded: there is "
            "nothing left to return", field="amount")
    now = timezone.now()
    held = allocation.held_by(payment)
    shares = allocation.plan_take_back(held, amount_minor)
    out_of_packages = packages.pay_in(shares={
        line_id: (-net, -tax) for line_id, (net, tax) in shares.items()
        if held.kinds[line_id] == LineKind.PACKAGE and (net or tax)}, may_go_negative=True)
    entry = open_entry(organization=org, center=invoice.center, kind="payment_returned",
                       at=now, created_by=actor.user,
                       memo=f"Payment {payment.pk} returned by the bank: {reason}")
    returned = PaymentReturn.objects.create(
        organization=org, center=invoice.center, payment=payment, invoice=invoice,
        amount_minor=amount_minor, fee_minor=fee_minor, reason=reason, created_at=now,
        created_by=actor.user, entry=entry)
    refs = {"invoice": invoice, "payment": payment}
    add_postings(entry, [debit("receivable", amount_minor, **refs),
                         credit(payment.method, amount_minor, **refs),
                         *out_of_packages.ledger_lines(**refs)])
    allocation.take_back(payment=payment, payment_return_id=returned.pk, shares=shares, now=now)
    allocation.refresh(invoice)
    if fee_minor:
        returned.fee_line = billing.add_fee(invoice, amount_minor=fee_minor, at=now,
                                            by=actor.user,
                                            description=f"Returned {payment.method} fee")
        returned.save(update_fields=["fee_line"])
    taken_back.refresh(payment)
    record(organization_id=org.pk, actor=actor.user, action="payment.returned",
           object=f"payment:{payment.pk}",
           detail={"return": returned.pk, "amount_minor": amount_minor, "fee_minor": fee_minor,
                   "reason": reason})
    PaymentEvent.objects.create(
        organization_id=org.pk, payment=payment, at=now, kind="payment_returned",
        amount_minor=amount_minor, status=payment.status, by=actor.user,
        detail=(f"Returned by the bank ({reason}): {money(amount_minor)} is owed again"
                + (f", and a {money(fee_minor)} fee was added to invoice {invoice.number}"
                   if fee_minor else ""))[:500])
    return returned
