"""The life of every refund, whatever it refunds and however it pays out: opened and booked,
its payout started, then — for an online refund — settled, failed (even after it had
succeeded) or held for a person. The use cases (`kassa.refunds.services`) open refunds; the
gateway's news (`gateway_calls`, `webhooks`, `sandbox`) moves them on, through
`apply_gateway_result` alone.

Everything here runs inside the caller's money transaction, under its locks, except
`apply_gateway_result`, which is one: invoice, then payment, then refund (`kassa.core.locks`).
A payment's `refunded` and `refund_pending` are its refunds' figures: derived here from the
refund rows, in `refresh_payment`, and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection
from django.utils import timezone

from kassa.billing import allocation
from kassa.billing.models import Invoice, LineKind, Payment, PaymentEvent
from kassa.core.errors import IdempotencyConflict
from kassa.core.locks import (
    lock_invoice,
    lock_package,
    lock_packages_of_lines,
    lock_payment,
    lock_refund,
    money_transaction,
)
from kassa.core.models import KEY_LIFE
from kassa.core.outbox import enqueue
from kassa.gateways.base import RefundState
from kassa.ledger.services import Line, add_postings, open_entry, post, reverse
from kassa.packages import services as packages
from kassa.refunds import receipts, webhook_events
from kassa.refunds.models import GatewayState, ReceiptKind, Refund, RefundStatus, RefundType
from kassa.tenancy.models import Membership

logger = logging.getLogger("kassa.refunds")


# --- opened, booked, paid out ---------------------------------------------------------------

def open_refund(
    *, actor: Membership, invoice: Invoice, payment: Payment | None, online: bool,
    amount_minor: int, method: str, reason: str, now: dt.datetime, kind: str, memo: str,
    tax_minor: int = 0, package_id: int | None = None, close_package: bool = False,
    internal_note: str = "", note: str = "", decrease_balance_owed: bool = False,
    credit: tuple[int, int] = (0, 0), request_key: str = "",
) -> Refund:
    """The refund's row: pending with its gateway call due (online), or recorded (offline);
    with its issuing entry (of `kind`), whose postings `book` adds. The refund holds
    everything an answer about it shows (its organization, invoice, payment, creator), so
    nothing is read again to render it."""
    assert not online or payment is not None, "an online refund goes back to a payment"
    entry = open_entry(organization=invoice.organization, center=invoice.center, kind=kind,
                       memo=memo, at=now, created_by=actor.user)
    return Refund.objects.create(
        organization=invoice.organization, center_id=invoice.center_id, invoice=invoice,
        payment=payment, package_id=package_id, close_package=close_package,
        type=RefundType.ONLINE if online else RefundType.OFFLINE,
        status=RefundStatus.PENDING if online else RefundStatus.RECORDED,
        amount_minor=amount_minor, tax_minor=tax_minor, method=method, reason=reason,
        internal_note=internal_note, note=note, decrease_balance_owed=decrease_balance_owed,
        credit_net_minor=credit[0], credit_tax_minor=credit[1],
        created_by=actor.user, created_at=now,
        gateway=payment.gateway if online and payment is not None else "",
        gateway_state=GatewayState.TO_CALL if online else GatewayState.NONE,
        next_attempt_at=now if online else None, request_key=request_key, issue_entry=entry,
    )


def made_by_request(actor: Membership, request_key: str, *, payment_id: int | None,
                    package_id: int | None, amount_minor: int) -> Refund | None:
    """The refund a request with this Idempotency-Key made within the key's life, if any: its
    retry (after the first died unanswered) answers it instead of refunding again. The same
    key for another refund is a conflict, not that refund's answer."""
    since = timezone.now() - KEY_LIFE
    found = (Refund.objects.filter(organization_id=actor.organization_id,
                                   request_key=request_key, created_at__gte=since)
             .order_by("-pk").first())
    if found is not None and (found.payment_id, found.package_id, found.amount_minor) != (
            payment_id, package_id, amount_minor):
        raise IdempotencyConflict("This Idempotency-Key was used for another refund")
    return found


def book(refund: Refund, lines: list[Line]) -> None:
    """The postings of the refund's issuing entry (the one a failure reverses)."""
    assert refund.issue_entry is not None
    add_postings(refund.issue_entry, lines)


def start_payout(refund: Refund, *, payment: Payment | None, actor: Membership,
                 now: dt.datetime, detail: str) -> None:
    """The refund is booked: its payment's figures and history, the receipt, and for an
    online refund the gateway call — all outbox rows of this transaction."""
    if payment is not None:
        refresh_payment(payment)
        PaymentEvent.objects.create(
            organization_id=payment.organization_id, payment=payment, at=now,
            kind="refund_issued" if refund.type == RefundType.ONLINE else "refund_recorded",
            amount_minor=refund.total_minor, status=refund.status, by=actor.user,
            detail=detail[:500])
    receipts.queue(refund, ReceiptKind.RECEIPT, now)
    webhook_events.announce_created(refund)
    if refund.type == RefundType.ONLINE:
        enqueue("refunds.call_gateway", refund.pk)
    logger.info("refund %s %s: %s of invoice %s, payment %s, package %s", refund.pk,
                refund.status, refund.total_minor, refund.invoice_id, refund.payment_id,
                refund.package_id)


def refresh_payment(payment: Payment) -> None:
    """A payment's refunded amount (its refunds that did not fail, pending ones included)
    and whether one of them is pending, derived from its refunds: one statement, which
    derives, stores and returns them (both databases have UPDATE … RETURNING)."""
    refunds = Refund._meta.db_table  # our own tables' names; every value is a parameter
    sql = (
        f"UPDATE {Payment._meta.db_table} SET "  # noqa: S608
        "refunded_minor = (SELECT COALESCE(SUM(r.amount_minor + r.tax_minor), 0) "
        f"FROM {refunds} r WHERE r.payment_id = %s AND r.status <> %s), "
        f"refund_pending = EXISTS (SELECT 1 FROM {refunds} r "
        "WHERE r.payment_id = %s AND r.status = %s) "
        "WHERE id = %s RETURNING refunded_minor, refund_pending"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [payment.pk, RefundStatus.FAILED, payment.pk, RefundStatus.PENDING,
                             payment.pk])
        refunded, pending = cursor.fetchone()
    payment.refunded_minor = int(refunded)
    payment.refund_pending = bool(pending)


# --- what the gateway says ------------------------------------------------------------------

def record_gateway_reference(*, refund_id: int, reference: str) -> bool:
    """Keep the gateway's id of a refund, once: the first one recorded stands."""
    return bool(Refund.objects.filter(pk=refund_id, gateway_reference="").update(
        gateway_reference=reference[:200]))


def lock_with_its_payment(refund_id: int) -> tuple[Invoice, Payment | None, Refund]:
    """A refund and what it changes, locked in the order: its invoice, its payment, itself."""
    unlocked = Refund.objects.only("invoice_id", "payment_id").get(pk=refund_id)
    invoice = lock_invoice(unlocked.invoice_id)
    payment = lock_payment(unlocked.payment_id) if unlocked.payment_id else None
    return invoice, payment, lock_refund(refund_id)


def apply_gateway_result(*, refund_id: int, state: str, failure_reason: str = "") -> bool:
    """Record what the gateway says of an online refund. Safe to call again and out of order:
    a refund moves pending → succeeded → failed only forwards, and each step happens once.
    Returns whether anything changed."""
    if state == RefundState.PENDING:
        return False
    with money_transaction():
        invoice, payment, refund = lock_with_its_payment(refund_id)
        now = timezone.now()
        if state == RefundState.SUCCEEDED and refund.status == RefundStatus.PENDING:
            settle(refund, invoice, payment, now)
            return True
        if state == RefundState.FAILED and refund.status in (RefundStatus.PENDING,
                                                             RefundStatus.SUCCEEDED):
            reason = failure_reason or "the gateway refused it"
            if refund.status == RefundStatus.SUCCEEDED and not _fits_back(refund, invoice):
                return hold(refund, payment, now, reason)
            fail(refund, invoice, payment, now, reason)
            return True
        return False


def post_settlement(refund: Refund, invoice: Invoice, now: dt.datetime, *, memo: str,
                    actor: Membership | None = None) -> None:
    """What was in transit leaves by the refund's tender: its settling entry."""
    refs = {"invoice_id": refund.invoice_id, "payment_id": refund.payment_id, "refund": refund}
    refund.settle_entry = post(
        organization=invoice.organization, center=invoice.center, at=now, kind="refund_settled",
        created_by=actor.user if actor else None, memo=memo,
        lines=[Line("refunds_in_transit", refund.total_minor, refs),
               Line(refund.method, -refund.total_minor, refs)])


def settle(refund: Refund, invoice: Invoice, payment: Payment | None, now: dt.datetime) -> None:
    post_settlement(refund, invoice, now, memo=f"Refund {refund.pk} settled by the gateway")
    _finished(refund, payment, RefundStatus.SUCCEEDED, now, event="refund_succeeded",
              detail=f"Refund {refund.pk} settled by the gateway")


def _finished(refund: Refund, payment: Payment | None, status: str, now: dt.datetime, *,
              event: str, detail: str) -> None:
    """The gateway's last word is recorded: the refund's status, then its payment's figures
    (derived from the refunds, so after the status) and history."""
    logger.info("refund %s %s: %s", refund.pk, status, refund.total_minor)
    refund.status = status
    refund.settled_at = now
    refund.gateway_state = GatewayState.DONE
    refund.save(update_fields=["status", "failure_reason", "settled_at", "gateway_state",
                               "settle_entry"])
    webhook_events.announce(f"refund.{status}", refund)  # refund.succeeded, refund.failed
    if payment is not None:
        refresh_payment(payment)
        PaymentEvent.objects.create(organization_id=payment.organization_id,
                                    payment=payment, at=now, kind=event,
                                    amount_minor=refund.total_minor, status=status,
                                    detail=detail[:500])


def _fits_back(refund: Refund, invoice: Invoice) -> bool:
    """Whether a failing refund's money can go back where it came from. Always, for a package
    refund and for one that decreased the balance owed (its credit comes off as its money goes
    back, so what each line owes is unchanged); for the others, billing says."""
    if refund.package_id or refund.decrease_balance_owed:
        return True
    return allocation.fits_back(invoice, refund_id=refund.pk, total_minor=refund.total_minor)


def hold(refund: Refund, payment: Payment | None, now: dt.datetime, reason: str) -> bool:
    """The gateway failed a refund after it had succeeded, and the balance that refund re-opened
    has been paid again since: its money cannot go back onto the invoice without paying it twice
    (an invoice's balance due is never below zero). Record nothing in the books, flag the refund
    for a person and say so in the payment's history; never crash, so the gateway's news is not
    retried for ever nor lost."""
    if refund.gateway_state == GatewayState.STUCK:
        return False  # held already
    logger.error("refund %s failed after it succeeded, and the balance it re-opened was paid "
                 "since: flagged for a person", refund.pk)
    refund.gateway_state = GatewayState.STUCK
    refund.last_error = (f"the gateway failed it after it succeeded ({reason}); the balance it "
                         "re-opened was paid since: give the money back another way")[:500]
    refund.save(update_fields=["gateway_state", "last_error"])
    if payment is not None:
        PaymentEvent.objects.create(organization_id=payment.organization_id,
                                    payment=payment, at=now, kind="refund_needs_attention",
                                    amount_minor=refund.total_minor, status=refund.status,
                                    detail=f"Refund {refund.pk}: {refund.last_error}"[:500])
    return True


def fail(refund: Refund, invoice: Invoice, payment: Payment | None, now: dt.datetime,
         reason: str) -> None:
    """The refund failed: reverse exactly its entries, put back exactly what it did to the
    lines (and so to the packages on them), tell the customer."""
    if refund.settle_entry is not None:
        reverse(refund.settle_entry, at=now, organization=invoice.organization,
                center=invoice.center)
    assert refund.issue_entry is not None
    reverse(refund.issue_entry, at=now, organization=invoice.organization, center=invoice.center)
    restored = allocation.put_back(organization_id=refund.organization_id, refund_id=refund.pk,
                                   now=now)
    lines = allocation.refresh(invoice)
    # Money that came back into a closed package is forfeited, as the rest of it was.
    if refund.package_id:
        back_to = [lock_package(refund.package_id)]
    else:
        back_to = list(lock_packages_of_lines(
            sorted(line_id for line_id in restored
                   if lines[line_id].kind == LineKind.PACKAGE)).values())
    for pkg in back_to:
        pkg.line = lines[pkg.line_id]
        packages.forfeit_if_closed(pkg, invoice=invoice, now=now,
                                   memo=f"Package {pkg.pk}: failed refund {refund.pk} forfeited")
    refund.failure_reason = reason[:300]
    _finished(refund, payment, RefundStatus.FAILED, now, event="refund_failed",
              detail=f"Refund {refund.pk} failed: {reason}")
    receipts.queue(refund, ReceiptKind.FAILURE_NOTICE, now)
