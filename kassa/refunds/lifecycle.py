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

from django.utils import timezone

from kassa.billing import allocation
from kassa.billing import credit as customer_credit
from kassa.billing.models import CreditKind, Customer, Invoice, LineKind, Payment, PaymentEvent
from kassa.core import batch, rows
from kassa.core.errors import IdempotencyConflict
from kassa.core.locks import (
    key_claimed_here,
    lock_customer,
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
from kassa.ledger.models import JournalEntry
from kassa.ledger.services import Line, add_postings, new_entry, open_entry, post, reverse
from kassa.packages import services as packages
from kassa.refunds import receipts, webhook_events
from kassa.refunds.models import (
    GatewayState,
    ReceiptKind,
    Refund,
    RefundOrigin,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Center, Membership

logger = logging.getLogger("kassa.refunds")


# Why a processor fails a refund of a disputed charge (Stripe's error code and refund failure
# reason): the cardholder's bank is refunding them, so telling the customer that their refund
# failed (and will be "arranged another way") would be wrong.
DISPUTED_FAILURES = ("charge_disputed", "charge_for_pending_refund_disputed")


def charge_disputed(reason: str) -> bool:
    return any(code in reason for code in DISPUTED_FAILURES)


# --- opened, booked, paid out ---------------------------------------------------------------

def open_refund(
    *, actor: Membership, invoice: Invoice | None, payment: Payment | None, online: bool,
    amount_minor: int, method: str, reason: str, now: dt.datetime, kind: str, memo: str,
    tax_minor: int = 0, package_id: int | None = None, close_package: bool = False,
    internal_note: str = "", note: str = "", decrease_balance_owed: bool = False,
    credit: tuple[int, int] = (0, 0), request_key: str = "", to_credit: bool = False,
    customer: Customer | None = None, center: Center | None = None, payee: str = "",
    override_reason: str = "", split_group: str = "", made_at_gateway: str = "",
) -> Refund:
    """The refund's row: pending with its gateway call due (online), or recorded (offline, or
    into credit); with its issuing entry (of `kind`), whose postings `book` adds. The refund
    holds everything an answer about it shows (its organization, invoice, payment, creator),
    so nothing is read again to render it. A refund out of a customer's credit has no invoice:
    it names the `customer` and the `center` it is made at. `made_at_gateway`: the gateway's
    id of a refund made there (its dashboard), which Kassa books: there is no call to make,
    only its outcome to learn."""
    assert not online or payment is not None, "an online refund goes back to a payment"
    organization = invoice.organization if invoice is not None else actor.organization
    where = invoice.center if invoice is not None else center
    assert where is not None
    entry = new_entry(organization=organization, center=where, kind=kind,
                      memo=memo, at=now, created_by=actor.user)
    # The refund and its entry in one statement on PostgreSQL (kassa.core.rows).
    return rows.insert_linked(Refund(
        organization=organization, center=where, invoice=invoice,
        customer=customer if invoice is None else None, from_credit=invoice is None,
        payment=payment, package_id=package_id, close_package=close_package,
        type=(RefundType.ONLINE if online else RefundType.CREDIT if to_credit
              else RefundType.OFFLINE),
        status=RefundStatus.PENDING if online else RefundStatus.RECORDED,
        amount_minor=amount_minor, tax_minor=tax_minor, method=method, reason=reason,
        internal_note=internal_note, note=note, decrease_balance_owed=decrease_balance_owed,
        credit_net_minor=credit[0], credit_tax_minor=credit[1],
        created_by=actor.user, created_at=now, payee=payee, override_reason=override_reason,
        split_group=split_group,
        gateway=payment.gateway if online and payment is not None else "",
        gateway_state=(GatewayState.NONE if not online else GatewayState.CALLED
                       if made_at_gateway else GatewayState.TO_CALL),
        gateway_reference=made_at_gateway[:200],
        origin=RefundOrigin.GATEWAY if made_at_gateway else RefundOrigin.KASSA,
        next_attempt_at=now if online else None, request_key=request_key, issue_entry=entry,
    ), "issue_entry")


def made_by_request(actor: Membership, request_key: str, *, payment_id: int | None,
                    package_id: int | None, amount_minor: int) -> Refund | None:
    """The refund a request with this Idempotency-Key made within the key's life, if any: its
    retry (after the first died unanswered) answers it instead of refunding again. The same
    key for another refund is a conflict, not that refund's answer."""
    if key_claimed_here():
        # The key was claimed just now, in this transaction, and a refund is made only in the
        # transaction that claims its key: no refund can carry it yet (issue 17: one
        # statement less per keyed refund).
        return None
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
                 now: dt.datetime, detail: str, invoice: Invoice | None = None) -> None:
    """The refund is booked: its payment's figures, its invoice's (`invoice`: the one whose
    lines it changed), the payment's history, the receipt, and for an online refund the
    gateway call — all outbox rows of this transaction."""
    if payment is not None:
        # The payment's figures first: they read its refunds, not the allocations and postings
        # just written, so their statement carries those writes (kassa.core.batch), and the
        # lines' derivation that reads them next needs no statement of its own to send them
        # first: one round trip less while the payment is locked (issue 17).
        refresh_payment(payment)
    if invoice is not None:
        allocation.refresh(invoice)
    if payment is not None:
        rows.insert([PaymentEvent(
            organization_id=payment.organization_id, payment=payment, at=now,
            kind="refund_issued" if refund.type == RefundType.ONLINE else "refund_recorded",
            amount_minor=refund.total_minor, status=refund.status, by=actor.user,
            detail=detail[:500])], returning=False)
    receipts.queue(refund, ReceiptKind.RECEIPT, now)
    webhook_events.announce_created(refund)
    if refund.type == RefundType.ONLINE:
        enqueue("refunds.poll_refund" if refund.origin == RefundOrigin.GATEWAY
                else "refunds.call_gateway", refund.pk)
    logger.info("refund %s %s: %s of invoice %s, payment %s, package %s", refund.pk,
                refund.status, refund.total_minor, refund.invoice_id, refund.payment_id,
                refund.package_id)


def refresh_payment(payment: Payment) -> None:
    """A payment's refunded amount (its refunds that did not fail, pending ones included, but
    not refunds out of credit to its card: the refund to credit counted that money already),
    what of its charge went back online (direct or out of credit), and whether one of them is
    pending, derived from its refunds: one statement, which derives, stores and returns them
    (both databases have UPDATE … RETURNING)."""
    refunds = Refund._meta.db_table  # our own tables' names; every value is a parameter
    amount = "r.amount_minor + r.tax_minor"
    # Both sums in one pass over the payment's refunds: a payment refunded many times pays for
    # that pass while it is locked (issue 17).
    sql = (
        f"UPDATE {Payment._meta.db_table} SET "  # noqa: S608
        "(refunded_minor, refunded_online_minor) = ("
        f"SELECT COALESCE(SUM(CASE WHEN NOT r.from_credit THEN {amount} ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN r.type = %s THEN {amount} ELSE 0 END), 0) "
        f"FROM {refunds} r WHERE r.payment_id = %s AND r.status <> %s), "
        f"refund_pending = EXISTS (SELECT 1 FROM {refunds} r "
        "WHERE r.payment_id = %s AND r.status = %s) "
        "WHERE id = %s RETURNING refunded_minor, refunded_online_minor, refund_pending"
    )
    [(refunded, online, pending)] = batch.run(
        sql, [RefundType.ONLINE, payment.pk, RefundStatus.FAILED, payment.pk,
              RefundStatus.PENDING, payment.pk],
        reads=(refunds, Payment._meta.db_table), writes=Payment._meta.db_table, changes=True)
    payment.refunded_minor = int(refunded)
    payment.refunded_online_minor = int(online)
    payment.refund_pending = bool(pending)


# --- what the gateway says ------------------------------------------------------------------

def record_gateway_reference(*, refund_id: int, reference: str) -> bool:
    """Keep the gateway's id of a refund, once: the first one recorded stands."""
    return bool(Refund.objects.filter(pk=refund_id, gateway_reference="").update(
        gateway_reference=reference[:200]))


def lock_with_its_payment(refund_id: int) -> tuple[Invoice | None, Payment | None, Refund]:
    """A refund and what it changes, locked in the order: its invoice (or, for a refund out
    of credit, its customer), its payment, itself."""
    _, invoice, payment, refund = _lock(refund_id, customer_too=False)
    return invoice, payment, refund


def _lock(refund_id: int, *, customer_too: bool,
          ) -> tuple[Customer | None, Invoice | None, Payment | None, Refund]:
    """`customer_too`: a succeeded refund of an invoice that may fail now, whose money may have
    to go into its customer's credit: its customer is locked first (the lock order)."""
    unlocked = (Refund.objects.only("invoice_id", "payment_id", "customer_id", "status")
                .get(pk=refund_id))
    customer, invoice = None, None
    if unlocked.invoice_id is not None:
        if customer_too and unlocked.status == RefundStatus.SUCCEEDED:
            customer = lock_customer(Invoice.objects.values_list("customer_id", flat=True)
                                     .get(pk=unlocked.invoice_id))
        invoice = lock_invoice(unlocked.invoice_id)
    else:
        assert unlocked.customer_id is not None  # a refund out of credit
        customer = lock_customer(unlocked.customer_id)
    payment = lock_payment(unlocked.payment_id) if unlocked.payment_id else None
    return customer, invoice, payment, lock_refund(refund_id)


def apply_gateway_result(*, refund_id: int, state: str, failure_reason: str = "") -> bool:
    """Record what the gateway says of an online refund. Safe to call again and out of order:
    a refund moves pending → succeeded → failed only forwards, and each step happens once.
    Returns whether anything changed."""
    if state == RefundState.PENDING:
        return False
    with money_transaction():
        customer, invoice, payment, refund = _lock(
            refund_id, customer_too=state == RefundState.FAILED)
        now = timezone.now()
        if state == RefundState.SUCCEEDED and refund.status == RefundStatus.PENDING:
            settle(refund, invoice, payment, now)
            return True
        if state == RefundState.FAILED and refund.status in (RefundStatus.PENDING,
                                                             RefundStatus.SUCCEEDED):
            reason = failure_reason or "the gateway refused it"
            if refund.status == RefundStatus.SUCCEEDED and not _fits_back(refund, invoice):
                assert invoice is not None  # (a refund out of credit always fits back)
                if customer is not None:
                    fail_to_credit(refund, invoice, customer, now, reason)
                    return True
                # It succeeded between our look and our lock (we hold no lock on the
                # customer): a person decides, as before there was credit.
                return hold(refund, payment, now, reason)
            fail(refund, invoice, payment, now, reason)
            return True
        return False



def post_settlement(refund: Refund, invoice: Invoice | None, now: dt.datetime, *, memo: str,
                    actor: Membership | None = None) -> None:
    """What was in transit leaves by the refund's tender: its settling entry."""
    refs = {"invoice_id": refund.invoice_id, "payment_id": refund.payment_id, "refund": refund}
    refund.settle_entry = post(
        organization=invoice.organization if invoice else refund.organization,
        center=invoice.center if invoice else refund.center, at=now, kind="refund_settled",
        created_by=actor.user if actor else None, memo=memo,
        lines=[Line("refunds_in_transit", refund.total_minor, refs),
               Line(refund.method, -refund.total_minor, refs)])


def settle(refund: Refund, invoice: Invoice | None, payment: Payment | None,
           now: dt.datetime) -> None:
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


def _fits_back(refund: Refund, invoice: Invoice | None) -> bool:
    """Whether a failing refund's money can go back where it came from. Always, for a package
    refund and for one that decreased the balance owed (its credit comes off as its money goes
    back, so what each line owes is unchanged); for the others, billing says."""
    if refund.package_id or refund.decrease_balance_owed or invoice is None:
        return True  # (a refund out of credit goes back into the credit, which always fits)
    return allocation.fits_back(invoice, refund_id=refund.pk, total_minor=refund.total_minor)


def fail_to_credit(refund: Refund, invoice: Invoice, customer: Customer, now: dt.datetime,
                   reason: str) -> None:
    """The gateway failed a refund after it had succeeded, and the balance that refund re-opened
    has been paid again since: its money cannot go back onto the invoice without paying it
    twice. So it goes into the customer's credit: the refund fails as any (its entries
    reversed), and in the same transaction a refund to credit of the same amount takes its
    place (`replaces`) — taking back from the lines exactly what it took, posting the same
    package legs — so the invoice's and the payment's figures stand, and the credit shows a
    `refund_failed_to_credit` entry. The customer is told."""
    payment = refund.payment
    assert payment is not None and refund.issue_entry is not None
    if refund.settle_entry is not None:
        reverse(refund.settle_entry, at=now, organization=invoice.organization,
                center=invoice.center)
    reverse(refund.issue_entry, at=now, organization=invoice.organization, center=invoice.center)
    back = allocation.put_back(organization_id=refund.organization_id, refund_id=refund.pk,
                               now=now)
    instead = Refund.objects.create(
        organization=invoice.organization, center=invoice.center, invoice=invoice,
        payment=payment, type=RefundType.CREDIT, status=RefundStatus.RECORDED,
        amount_minor=refund.amount_minor, tax_minor=refund.tax_minor, method="credit",
        reason=refund.reason, internal_note=refund.internal_note,
        note=f"In place of refund {refund.pk}, which the gateway failed ({reason})"[:2000],
        created_by=None, created_at=now, replaces=refund,
        issue_entry=open_entry(organization=invoice.organization, center=invoice.center,
                               kind="refund_to_credit", at=now,
                               memo=f"Refund {refund.pk} failed: kept as credit"))
    allocation.take_back(payment=payment, refund_id=instead.pk, shares=back, now=now)
    moved = customer_credit.take_in(
        customer, kind=CreditKind.REFUND_FAILED_TO_CREDIT, amount_minor=refund.total_minor,
        center=invoice.center, at=now, by=None, payment=payment, invoice_id=invoice.pk,
        refund_id=instead.pk, note=f"Refund {refund.pk} to the card failed ({reason})")
    # The same postings as the failed refund's issuing entry, into credit instead of transit.
    lines = []
    for posting in refund.issue_entry.postings.all():
        refs = {"invoice_id": posting.invoice_id, "payment_id": posting.payment_id,
                "package_id": posting.package_id, "refund_id": instead.pk}
        if posting.code == "refunds_in_transit":
            lines += moved.lines(invoice.center, **refs)
        else:
            lines.append(Line(posting.code, posting.amount_minor, refs))
    book(instead, lines)
    allocation.refresh(invoice)
    logger.warning("refund %s failed after it succeeded; its %s went into customer %s's credit "
                   "(refund %s)", refund.pk, refund.total_minor, customer.pk, instead.pk)
    refund.failure_reason = reason[:300]
    _finished(refund, payment, RefundStatus.FAILED, now, event="refund_failed",
              detail=f"Refund {refund.pk} failed after it succeeded ({reason}); the balance it "
              f"re-opened was paid since, so its money is kept as account credit "
              f"(refund {instead.pk})")
    if not charge_disputed(reason):
        receipts.queue(refund, ReceiptKind.FAILURE_NOTICE, now)


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


def fail(refund: Refund, invoice: Invoice | None, payment: Payment | None, now: dt.datetime,
         reason: str) -> None:
    """The refund failed: reverse exactly its entries, put back exactly what it did to the
    lines (and so to the packages on them) or to the customer's credit, tell the customer."""
    organization = invoice.organization if invoice else refund.organization
    center = invoice.center if invoice else refund.center
    if refund.settle_entry is not None:
        reverse(refund.settle_entry, at=now, organization=organization, center=center)
    assert refund.issue_entry is not None
    reverse(refund.issue_entry, at=now, organization=organization, center=center)
    if invoice is None:
        # Credit held at other centers left through their own entries (intercenter): those
        # are reversed too.
        for elsewhere in (JournalEntry.objects.filter(postings__refund=refund,
                                                      kind=refund.issue_entry.kind,
                                                      reversed_by__isnull=True)
                          .exclude(pk=refund.issue_entry.pk).distinct().order_by("pk")):
            reverse(elsewhere, at=now)
        _back_into_credit(refund, now, reason)
    else:
        _back_onto_lines(refund, invoice, now)
    refund.failure_reason = reason[:300]
    disputed = charge_disputed(reason)
    _finished(refund, payment, RefundStatus.FAILED, now, event="refund_failed",
              detail=f"Refund {refund.pk} failed: {reason}" + (
                  "; the charge is disputed, so the cardholder's bank gives the money back: "
                  "no failure notice was sent to the customer" if disputed else ""))
    if not disputed:
        receipts.queue(refund, ReceiptKind.FAILURE_NOTICE, now)


def _back_onto_lines(refund: Refund, invoice: Invoice, now: dt.datetime) -> None:
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


def _back_into_credit(refund: Refund, now: dt.datetime, reason: str) -> None:
    """A refund out of credit that failed: its money goes back into the lots it left (the
    reversed entries put it back on the customer_credit account; this is the sub-ledger's
    side). The customer is locked by `lock_with_its_payment`."""
    assert refund.customer_id is not None
    customer = Customer.objects.get(pk=refund.customer_id)
    customer_credit.put_back(customer, of_entries=customer_credit.entries_of(refund_id=refund.pk),
                             amount_minor=refund.total_minor,
                             kind=CreditKind.REFUND_OUT_FAILED, center=refund.center, at=now,
                             by=None, payment=refund.payment, refund_id=refund.pk,
                             note=f"Refund {refund.pk} failed ({reason}): back in credit")
