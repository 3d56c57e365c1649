"""An online payment's conversation with the gateway: recorded first, charged outside every
lock, booked after.

`take_payment` records the payment as an intent (`processing`, its charge `charging`) and
commits; `charge` then asks the gateway with the payment's own key,
`kassa-<installation>-payment-<id>`, and `settle_charge` books the answer in a money
transaction of its own:
- succeeded → booked (allocated to the lines, posted) — or, should the invoice no longer owe
  it, the payment fails and its charge is given back;
- processing → it waits for the processor (a webhook, `kassa sandbox decide`, or the worker's
  poll), still reserving its amount on the invoice;
- failed → nothing booked; declined → nothing booked, 402 to the caller.

A process that dies between the charge and its booking, or a gateway that did not answer,
leaves the payment `charging`: after `RESOLVE_AFTER` the worker asks the gateway for that key
(`resolve`) and books what it finds, or fails the payment when the gateway has no such charge.
A charge that turns up for a payment already failed goes back (`give_back`, an outbox row like
any other): money is never kept without a booked payment, nor booked twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import OperationalError
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from kassa.billing import allocation, webhook_events
from kassa.billing import credit as customer_credit
from kassa.billing.line_kinds import handler_for
from kassa.billing.models import (
    ChargeState,
    CreditKind,
    Customer,
    Invoice,
    InvoiceLine,
    Method,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from kassa.core.errors import (
    Busy,
    ChargeNotStuck,
    GatewayUnavailable,
    IdempotencyConflict,
    PaymentDeclined,
    ValidationFailed,
)
from kassa.core.installation import installation_key
from kassa.core.locks import lock_customer, lock_invoice, lock_payment, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.models import KEY_LIFE
from kassa.core.outbox import enqueue
from kassa.gateways.base import ChargeResult, GatewayError
from kassa.gateways.base import ChargeState as GatewayCharge
from kassa.gateways.registry import gateway_named
from kassa.gateways.schedule import backoff, max_call_attempts
from kassa.ledger.models import JournalEntry, Posting
from kassa.ledger.services import Line, credit, debit, post, reverse
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_admin

logger = logging.getLogger("kassa.billing")

# Longer than a gateway call may take (Stripe's 30 s timeout) and than Stripe's search needs to
# see a new PaymentIntent (about a minute): before that, the request may still be charging.
RESOLVE_AFTER = dt.timedelta(seconds=90)
CLAIM = dt.timedelta(seconds=300)  # a claimed call older than this was lost with its worker


def payment_key(payment: Payment) -> str:
    """The charge's key at the gateway: a retry, a takeover or the worker asks for the same
    charge, and no other database sharing the processor account ever sends it."""
    return f"kassa-{installation_key()}-payment-{payment.pk}"


def reserved_minor(invoice_id: int, *, excluding: int | None = None) -> int:
    """What payments still processing hold of the invoice's balance: no other payment may take
    it while the gateway decides (read under the invoice's lock)."""
    found = Payment.objects.filter(invoice_id=invoice_id, status=PaymentStatus.PROCESSING)
    if excluding is not None:
        found = found.exclude(pk=excluding)
    # What an overpayment will put into credit is not the invoice's.
    return int(found.aggregate(total=Sum(F("amount_minor") - F("to_credit_minor")))["total"]
               or 0)


def resumable(organization: Any, request_key: str, *, invoice_id: int | None,
              customer_id: int, amount_minor: int, method: str, online: bool,
              source: str) -> Payment | None:
    """The payment a request with this Idempotency-Key made, if it made one within the key's
    life: a retry of a request that died goes on with it. The same key for another payment
    is a conflict, not that payment's answer."""
    since = timezone.now() - KEY_LIFE
    found = (Payment.objects.filter(organization_id=organization.pk,
                                    request_key=request_key, created_at__gte=since)
             .order_by("-pk").first())
    if found is not None and (found.invoice_id, found.customer_id, found.amount_minor,
                              found.method, found.online, found.source) != (
            invoice_id, customer_id, amount_minor, method, online, source):
        raise IdempotencyConflict("This Idempotency-Key was used for another payment")
    return found


def resume(payment: Payment) -> Payment:
    """Go on with a payment its first request left: charge again with the same key if its
    answer was lost, or answer what it came to."""
    if payment.status == PaymentStatus.PROCESSING and payment.charge_state == ChargeState.CHARGING:
        # Moving the due time on tells a worker that asked the gateway meanwhile and found
        # nothing that its "nothing" is stale: this request is charging now.
        Payment.objects.filter(pk=payment.pk, charge_state=ChargeState.CHARGING).update(
            next_attempt_at=timezone.now() + RESOLVE_AFTER)
        return charge(Payment.objects.select_related("invoice", "organization", "customer",
                                                     "created_by").get(pk=payment.pk))
    if payment.status == PaymentStatus.DECLINED:
        raise PaymentDeclined(payment.failure_reason or PaymentDeclined.title, field="source")
    return payment


# --- the request's charge --------------------------------------------------------------------

def charge(payment: Payment) -> Payment:
    """Charge a recorded payment (with its invoice, organization and creator at hand) and book
    the answer; outside every transaction."""
    gateway = gateway_named(payment.gateway)
    try:
        result = gateway.charge(
            amount_minor=payment.amount_minor, currency=payment.organization.currency,
            source=payment.source, idempotency_key=payment_key(payment),
            organization_id=payment.organization_id,
            description=(f"Invoice {payment.invoice.number}" if payment.invoice is not None
                         else f"Deposit for {payment.customer.name}"),
        )
    except (PaymentDeclined, ValidationFailed) as exc:  # the customer's card, or its source
        decline(payment.pk, exc.detail)
        raise
    except GatewayError as exc:
        if exc.permanent:  # the gateway refused the request itself: no money moved
            return settle_charge(payment.pk, ChargeResult("", GatewayCharge.FAILED,
                                                          str(exc)[:300]),
                                 known=payment)
        # Not knowing is not "failed": the charge may have been made. The worker asks the
        # gateway later; a retry of this request (same Idempotency-Key) charges again with the
        # same key, which the gateway answers with the same charge.
        Payment.objects.filter(pk=payment.pk, charge_state=ChargeState.CHARGING).update(
            next_attempt_at=timezone.now() + RESOLVE_AFTER)
        logger.warning("payment %s: the gateway did not answer (%s); the worker will ask it",
                       payment.pk, exc)
        raise GatewayUnavailable(
            f"The payment gateway did not answer. Payment {payment.pk} is recorded as "
            "processing: retry with the same Idempotency-Key, or Kassa asks the gateway in a "
            "few minutes and books the payment or marks it failed.") from exc
    try:
        return settle_charge(payment.pk, result, known=payment, by=payment.created_by)
    except OperationalError as exc:  # a lock waited out: the charge stands, unbooked
        logger.warning("payment %s: charged, but its booking waited too long (%s); the "
                       "worker will book it", payment.pk, exc)
        raise Busy(f"The card was charged, but the booking had to wait too long. Payment "
                   f"{payment.pk} is recorded as processing and will be booked: retry with the "
                   "same Idempotency-Key, or look at the payment in a few minutes; do not take "
                   "the payment again.") from exc


@money_transaction()
def decline(payment_id: int, reason: str) -> None:
    payment = lock_payment(payment_id)
    if payment.status != PaymentStatus.PROCESSING:
        return
    payment.status, payment.charge_state = PaymentStatus.DECLINED, ChargeState.NONE
    payment.failure_reason = reason[:300]
    payment.next_attempt_at = None
    payment.save(update_fields=["status", "charge_state", "failure_reason", "next_attempt_at"])
    _event(payment, "payment_declined", PaymentStatus.DECLINED, reason)
    webhook_events.announce("payment.failed", payment)


@money_transaction()
def settle_charge(payment_id: int, result: ChargeResult, *, known: Payment | None = None,
                  by: Any = None, still_due: dt.datetime | None = None) -> Payment:
    """Book what the gateway says of a payment's charge, once, whoever brings the news (the
    request, the worker, a webhook, `kassa sandbox decide`). `known`: the payment as the caller
    has it (its invoice, customer and credit part never change), saving their read. `by`: the
    payment's creator when the caller has it at hand (else it is read), who the booking is
    written by. `still_due`: apply the news only if the payment's due time is still the one the
    caller claimed (the worker's "no such charge" is stale once a retry of the request is
    charging again)."""
    if known is not None:
        invoice_id, customer_id, to_credit = (known.invoice_id, known.customer_id,
                                              known.to_credit_minor)
    else:
        invoice_id, customer_id, to_credit = Payment.objects.values_list(
            "invoice_id", "customer_id", "to_credit_minor").get(pk=payment_id)
    # Money into the customer's credit (a deposit, an overpayment's excess) moves their credit.
    customer = lock_customer(customer_id) if to_credit else None
    invoice = lock_invoice(invoice_id) if invoice_id is not None else None
    payment = lock_payment(payment_id)
    now = timezone.now()
    if still_due is not None and payment.next_attempt_at != still_due:
        return payment
    if payment.status == PaymentStatus.PROCESSING:
        if result.state == GatewayCharge.SUCCEEDED:
            _book_charge(payment, invoice, customer, result.reference, now,
                         by=by if by is not None else payment.created_by)
        elif result.state == GatewayCharge.PROCESSING:
            first = payment.charge_state != ChargeState.AWAITING
            payment.charge_state, payment.gateway_reference = ChargeState.AWAITING, result.reference
            payment.next_attempt_at = now + backoff(payment.attempts + 1)
            payment.save(update_fields=["charge_state", "gateway_reference", "next_attempt_at"])
            if first:
                _event(payment, "payment_processing", PaymentStatus.PROCESSING,
                       "The processor is still deciding; booked once it succeeds")
        else:
            _fail(payment, result.failure_reason or "The charge failed", result.reference)
    elif (result.state == GatewayCharge.SUCCEEDED and result.reference
          and payment.status in (PaymentStatus.FAILED, PaymentStatus.DECLINED)
          and payment.charge_state == ChargeState.NONE and not payment.gateway_reference):
        # The gateway took the money after we had given up on it (we never knew of a charge:
        # a charge we knew of and then failed — a reversal — is not this): it goes back.
        _to_give_back(payment, result.reference, now,
                      "The gateway charged a payment already failed; the charge is given back")
    elif (result.state == GatewayCharge.FAILED and payment.status == PaymentStatus.SUCCEEDED
          and result.reference and result.reference == payment.gateway_reference):
        # Only the charge's own failure undoes it: "no such charge" from a stale look is not.
        _reverse_booking(payment, invoice, customer,
                         result.failure_reason or "The charge failed", now)
    return payment


def _reverse_booking(payment: Payment, invoice: Invoice | None, customer: Customer | None,
                     reason: str, now: dt.datetime) -> None:
    """A charge booked as succeeded that the processor fails after all (a bank debit's late
    failure): its booking is undone — the entry reversed, its allocations taken back, the
    balance owed again. Once refunds have moved its money, or its credit was used, undoing it
    is a person's work."""
    if (payment.refunded_minor or payment.refund_pending or payment.refunded_online_minor
            or (customer is not None and customer_credit.available_minor(
                customer, customer_credit.own(payment.pk)) < payment.to_credit_minor)):
        logger.error("payment %s failed at the gateway after it was refunded: its books are "
                     "left for a person (%s)", payment.pk, reason)
        _event(payment, "payment_failed", PaymentStatus.SUCCEEDED,
               f"The gateway failed the charge after it was refunded ({reason}): the books "
               "are unchanged; settle it by hand")
        return
    entry_id = (Posting.objects.filter(payment=payment, entry__kind__in=("payment", "deposit"))
                .values_list("entry_id", flat=True).first())
    if entry_id is not None:
        reverse(JournalEntry.objects.get(pk=entry_id), at=now, created_by=None)
    if customer is not None and payment.to_credit_minor:
        # Its credit leg is undone by the reversed entry: this is the sub-ledger's side of it.
        customer_credit.take_out(customer, kind=CreditKind.PAYMENT_FAILED,
                        amount_minor=payment.to_credit_minor, center=payment.center, at=now,
                        by=None, source=customer_credit.own(payment.pk),
                        organization=customer.organization, payment=payment,
                        note=f"The card payment failed after all ({reason})"[:500])
    if invoice is not None:
        held = allocation.held_by(payment)
        allocation.allocate(payment=payment, shares={
            line_id: (-net, -tax) for line_id, (net, tax) in held.shares.items()}, now=now)
        allocation.refresh(invoice)
    payment.status, payment.failure_reason = PaymentStatus.FAILED, reason[:300]
    payment.save(update_fields=["status", "failure_reason"])
    _event(payment, "payment_failed", PaymentStatus.FAILED,
           f"The gateway failed the charge after all ({reason}): its booking is reversed")
    webhook_events.announce("payment.failed", payment)


def _book_charge(payment: Payment, invoice: Invoice | None, customer: Customer | None,
                 reference: str, now: dt.datetime, *, by: Any) -> None:
    payment.gateway_reference = reference
    detail = f"{payment.method} payment via {payment.gateway} ({reference})"
    if invoice is None:
        assert customer is not None
        book_deposit(payment, customer, now=now, by=by, detail=detail)
    else:
        lines = list(invoice.lines.all())
        weights = allocation.owed_by_bucket(invoice, lines)
        payable = (allocation.payable_minor(weights)
                   - reserved_minor(invoice.pk, excluding=payment.pk))
        if payment.amount_minor - payment.to_credit_minor > payable:
            # The invoice stopped owing it while the gateway charged (a package closed, a
            # credit).
            payment.status, payment.failure_reason = PaymentStatus.FAILED, (
                "The invoice no longer owed this payment when the charge succeeded")
            payment.save(update_fields=["status", "failure_reason"])
            _to_give_back(payment, reference, now, payment.failure_reason)
            webhook_events.announce("payment.failed", payment)
            return
        book(payment, invoice, lines, weights, now=now, by=by, detail=detail,
             customer=customer)
    payment.status, payment.charge_state = PaymentStatus.SUCCEEDED, ChargeState.NONE
    payment.next_attempt_at, payment.failure_reason = None, ""  # a past call's error is moot
    payment.save(update_fields=["status", "charge_state", "gateway_reference",
                                "next_attempt_at", "failure_reason"])
    webhook_events.announce("payment.succeeded", payment, actor=by)


def book(payment: Payment, invoice: Invoice, lines: list[InvoiceLine],
         weights: allocation.Weights, *, now: dt.datetime, detail: str, by: Any,
         customer: Customer | None = None) -> None:
    """Book money received: allocated to the lines (and into packages), posted, in the
    payment's history. Under the invoice's lock, the amount already checked payable.

    A payment from credit (`method` credit) takes the money out of the customer's credit,
    oldest first, instead of a tender: no money moves, so it is no collection (its entry's
    kind is `credit_applied`). An overpayment's excess (`to_credit_minor`) goes into credit.
    Both with the customer locked (`customer`)."""
    on_invoice = payment.amount_minor - payment.to_credit_minor
    shares = allocation.plan_payment(on_invoice, weights)
    refs: dict[str, object] = {"invoice": invoice, "payment": payment}
    from_credit = payment.method == Method.CREDIT
    kind = "credit_applied" if from_credit else "payment"
    moved: list[customer_credit.Moved] = []
    if from_credit:
        assert customer is not None and not payment.to_credit_minor
        moved.append(customer_credit.take_out(
            customer, kind=CreditKind.APPLIED, amount_minor=payment.amount_minor,
            center=invoice.center, at=now, by=by, source=customer_credit.ANY,
            organization=invoice.organization, payment=payment, invoice_id=invoice.pk,
            note=f"Paid invoice {invoice.number}"))
        entry_lines = moved[0].lines(invoice.center, **refs)
    else:
        entry_lines = [debit(payment.method, payment.amount_minor, **refs)]
    if on_invoice:
        entry_lines.append(credit("receivable", on_invoice, **refs))
    if payment.to_credit_minor:
        assert customer is not None
        moved.append(customer_credit.take_in(
            customer, kind=CreditKind.OVERPAYMENT, amount_minor=payment.to_credit_minor,
            center=invoice.center, at=now, by=by, payment=payment, invoice_id=invoice.pk,
            note=f"Paid more than invoice {invoice.number} owed"))
        entry_lines += moved[-1].lines(invoice.center, **refs)
    entry_lines += _paid_into_kinds(lines, shares, refs)
    allocation.allocate(payment=payment, shares=shares, now=now)
    allocation.refresh(invoice)
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=now, kind="payment_taken",
                                amount_minor=payment.amount_minor,
                                status=PaymentStatus.SUCCEEDED, by=by, detail=detail)
    post(organization=invoice.organization, center=invoice.center, kind=kind, at=now,
         created_by=by, memo=f"Payment on invoice {invoice.number}",
         lines=entry_lines)
    for movement in moved:
        movement.post_elsewhere(organization=invoice.organization, here=invoice.center,
                                kind=kind, at=now, by=by,
                                memo=f"Payment on invoice {invoice.number}",
                                invoice_id=invoice.pk, payment_id=payment.pk)
    logger.info("payment %s: %s by %s on invoice %s", payment.pk, payment.amount_minor,
                payment.method, invoice.pk)


def book_deposit(payment: Payment, customer: Customer, *, now: dt.datetime, detail: str,
                 by: Any) -> None:
    """Book a deposit: money received into the customer's credit, on no invoice (a collection
    on its day, kind `deposit`). The customer locked."""
    organization = customer.organization
    refs: dict[str, object] = {"payment": payment}
    moved = customer_credit.take_in(customer, kind=CreditKind.DEPOSIT,
                                    amount_minor=payment.amount_minor, center=payment.center,
                                    at=now, by=by, payment=payment, note=detail)
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=now, kind="deposit_taken", amount_minor=payment.amount_minor,
                                status=PaymentStatus.SUCCEEDED, by=by, detail=detail)
    post(organization=organization, center=payment.center, kind="deposit", at=now,
         created_by=by, memo=f"Deposit for {customer.name}",
         lines=[debit(payment.method, payment.amount_minor, **refs),
                *moved.lines(payment.center, **refs)])
    logger.info("payment %s: deposit of %s by %s for customer %s", payment.pk,
                payment.amount_minor, payment.method, customer.pk)


def _paid_into_kinds(lines: list[InvoiceLine], shares: allocation.Shares,
                     refs: dict[str, object]) -> list[Line]:
    """What of a payment reaches lines of a kind of their own goes where their handler says."""
    entry_lines: list[Line] = []
    for kind in sorted({line.kind for line in lines}):
        handler = handler_for(kind)
        reached = {line.pk: shares[line.pk] for line in lines
                   if line.kind == kind and any(shares[line.pk])}
        if handler is not None and reached:
            entry_lines += handler.paid_in(shares=reached, refs=refs)
    return entry_lines


def _fail(payment: Payment, reason: str, reference: str) -> None:
    payment.status, payment.charge_state = PaymentStatus.FAILED, ChargeState.NONE
    payment.failure_reason, payment.next_attempt_at = reason[:300], None
    payment.gateway_reference = reference or payment.gateway_reference
    payment.save(update_fields=["status", "charge_state", "failure_reason", "next_attempt_at",
                                "gateway_reference"])
    _event(payment, "payment_failed", PaymentStatus.FAILED, reason)
    webhook_events.announce("payment.failed", payment)


def _to_give_back(payment: Payment, reference: str, now: dt.datetime, why: str) -> None:
    payment.charge_state, payment.gateway_reference = ChargeState.GIVE_BACK, reference
    payment.attempts, payment.next_attempt_at = 0, now
    payment.save(update_fields=["charge_state", "gateway_reference", "attempts",
                                "next_attempt_at"])
    _event(payment, "payment_failed", PaymentStatus.FAILED, why)
    enqueue("billing.give_back_charge", payment.pk)


def _event(payment: Payment, kind: str, status: str, detail: str) -> None:
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=timezone.now(), kind=kind,
                                amount_minor=payment.amount_minor, status=status,
                                detail=detail[:500])


# --- the worker's side -----------------------------------------------------------------------

def _claim(payment_id: int, state: ChargeState) -> Payment | None:
    """Take a due call (a conditional update: two workers never both make it)."""
    now = timezone.now()
    claimed = Payment.objects.filter(pk=payment_id, charge_state=state,
                                     next_attempt_at__lte=now).update(
        attempts=F("attempts") + 1, next_attempt_at=now + CLAIM)
    if not claimed:
        return None
    return Payment.objects.select_related("organization").get(pk=payment_id)


def _retry_later(payment: Payment, state: ChargeState, exc: Exception) -> None:
    """Back off; once the attempts are spent, a person decides (the /attention/ page)."""
    spent = payment.attempts >= max_call_attempts() or getattr(exc, "permanent", False)
    Payment.objects.filter(pk=payment.pk, charge_state=state).update(
        charge_state=ChargeState.STUCK if spent else state,
        next_attempt_at=None if spent else timezone.now() + backoff(payment.attempts),
        failure_reason=str(exc)[:300] if spent else payment.failure_reason)
    log = logger.error if spent else logger.warning
    log("payment %s: gateway call %s failed (attempt %s): %s", payment.pk, state,
        payment.attempts, exc)


def resolve(payment_id: int) -> None:
    """A payment still `charging` after RESOLVE_AFTER: ask the gateway for its key."""
    payment = _claim(payment_id, ChargeState.CHARGING)
    if payment is None:
        return
    try:
        found = gateway_named(payment.gateway).find_charge(idempotency_key=payment_key(payment))
    except GatewayError as exc:
        _retry_later(payment, ChargeState.CHARGING, exc)
        return
    if found is not None:
        settle_charge(payment.pk, found)
        return
    settle_charge(payment.pk, ChargeResult(
        "", GatewayCharge.FAILED, "The gateway has no charge for this payment: nothing was taken"),
        still_due=payment.next_attempt_at)


def poll(payment_id: int) -> None:
    """A payment the processor is still deciding: ask how it stands."""
    payment = _claim(payment_id, ChargeState.AWAITING)
    if payment is None:
        return
    try:
        result = gateway_named(payment.gateway).charge_status(
            reference=payment.gateway_reference)
    except GatewayError as exc:
        # Polling is never given up: the processor will decide; until then it only waits.
        Payment.objects.filter(pk=payment.pk, charge_state=ChargeState.AWAITING).update(
            next_attempt_at=timezone.now() + backoff(payment.attempts))
        logger.warning("payment %s: polling the gateway failed: %s", payment.pk, exc)
        return
    settle_charge(payment.pk, result)


def give_back(payment_id: int) -> None:
    """Give back a charge no booked payment stands for."""
    payment = _claim(payment_id, ChargeState.GIVE_BACK)
    if payment is None:
        return
    try:
        gateway_named(payment.gateway).cancel_charge(
            reference=payment.gateway_reference, amount_minor=payment.amount_minor,
            idempotency_key=f"{payment_key(payment)}-give-back")
    except GatewayError as exc:
        _retry_later(payment, ChargeState.GIVE_BACK, exc)
        return
    _given_back(payment.pk)


@money_transaction()
def _given_back(payment_id: int) -> None:
    payment = lock_payment(payment_id)
    if payment.charge_state != ChargeState.GIVE_BACK:
        return
    payment.charge_state, payment.next_attempt_at = ChargeState.NONE, None
    payment.save(update_fields=["charge_state", "next_attempt_at"])
    _event(payment, "charge_given_back", PaymentStatus.FAILED,
           f"The charge {payment.gateway_reference} was given back at the gateway")
    logger.info("payment %s: charge %s given back", payment.pk, payment.gateway_reference)


# --- a person's way out ------------------------------------------------------------------

def unresolved(organization_id: int) -> QuerySet[Payment]:
    """Payments whose charge the worker gave up on (the gateway could not be asked, or would
    not take a give-back): the /attention/ page lists them."""
    return (Payment.objects.filter(organization_id=organization_id,
                                   charge_state=ChargeState.STUCK)
            .select_related("invoice").order_by("created_at", "id"))


@money_transaction()
def retry_charge(*, actor: Membership, payment: object) -> Payment:
    """Start the worker's calls about a stuck charge again, its attempts from zero: asking
    the gateway for a processing payment's key, or giving back a failed one's charge."""
    require_admin(actor)
    found = get_scoped(Payment.objects.filter(organization=actor.organization), payment)
    locked = lock_payment(found.pk)
    if locked.charge_state != ChargeState.STUCK:
        raise ChargeNotStuck(f"Payment {locked.pk} is {locked.status}; its charge needs no "
                             "retry")
    state = (ChargeState.CHARGING if locked.status == PaymentStatus.PROCESSING
             else ChargeState.GIVE_BACK)
    locked.charge_state, locked.attempts = state, 0
    locked.next_attempt_at = timezone.now()
    locked.save(update_fields=["charge_state", "attempts", "next_attempt_at"])
    PaymentEvent.objects.create(organization_id=locked.organization_id, payment=locked,
                                at=locked.next_attempt_at, kind="charge_retried",
                                amount_minor=locked.amount_minor, status=locked.status,
                                by=actor.user, detail="The gateway is asked again")
    enqueue(DUE_TASKS[state], locked.pk)
    return locked


DUE_TASKS = {
    ChargeState.CHARGING: "billing.resolve_charge",
    ChargeState.AWAITING: "billing.poll_charge",
    ChargeState.GIVE_BACK: "billing.give_back_charge",
}


def due_calls(now: dt.datetime, limit: int) -> list[tuple[str, int]]:
    """The gateway calls about payments that are due: (task name, payment id)."""
    found = (Payment.objects.filter(charge_state__in=list(DUE_TASKS), next_attempt_at__lte=now)
             .order_by("next_attempt_at").values_list("charge_state", "pk")[:limit])
    return [(DUE_TASKS[ChargeState(state)], pk) for state, pk in found]
