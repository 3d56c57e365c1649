"""`kassa sandbox settle`: settle pending sandbox refunds now, then bring Kassa's refunds up to
date with the gateway at once (as the worker's poll would, later).

A refund whose gateway call the worker has not made yet (just issued, or waiting out a
backoff) has nothing at the gateway to settle: its call is made first, here, so that
`settle --all` right after an online refund settles it, whether a worker runs or not. The call
is the worker's own (claimed by a conditional update, keyed by the refund), so a worker that
takes it at the same moment cannot call twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from kassa.billing.models import Payment
from kassa.core.errors import ValidationFailed
from kassa.core.lookup import parse_id
from kassa.core.money import display, parse_amount
from kassa.gateways import sandbox_disputes
from kassa.gateways.base import RefundState
from kassa.gateways.models import SandboxCharge, SandboxDispute, SandboxRefund
from kassa.gateways.sandbox import SandboxGateway
from kassa.refunds import disputes, gateway_refunds
from kassa.refunds.gateway_calls import call_gateway, sync_by_reference
from kassa.refunds.models import Dispute, DisputeStatus, GatewayState, Refund, RefundStatus

MAX_CALLS = 500  # bounded, like every batch
RESPOND_DAYS = 7  # how long the sandbox's disputes give the merchant to respond


def settle(*, refund_ids: list[str], everything: bool) -> dict[str, Any]:
    ids = [pk for pk in map(parse_id, refund_ids) if pk is not None]
    _make_due_calls(ids, everything=everything)
    gateway = SandboxGateway()
    pending = SandboxRefund.objects.select_related("charge").filter(state=RefundState.PENDING)
    if not everything:
        references = Refund.objects.filter(pk__in=ids).values_list("gateway_reference",
                                                                   flat=True)
        pending = pending.filter(reference__in=list(references))
    settled = []
    for refund in pending:
        refund.settle_after = timezone.now()
        gateway.settle(refund)
        settled.append(refund.reference)
        sync_by_reference(refund.reference)
    return {"settled": settled}


def _make_due_calls(ids: list[int], *, everything: bool) -> None:
    waiting = Refund.objects.filter(gateway="sandbox", status=RefundStatus.PENDING,
                                    gateway_state=GatewayState.TO_CALL)
    if not everything:
        waiting = waiting.filter(pk__in=ids)
    for refund_id in waiting.order_by("pk").values_list("pk", flat=True)[:MAX_CALLS]:
        # Asked for now: a backoff still running is cut short.
        Refund.objects.filter(pk=refund_id, gateway_state=GatewayState.TO_CALL).update(
            next_attempt_at=timezone.now())
        call_gateway(refund_id)


def heal(*, payment_id: str) -> dict[str, Any] | None:
    """`kassa sandbox heal PAYMENT_ID`: the payment's refunds reach the sandbox again."""
    pk = parse_id(payment_id)
    payment = Payment.objects.filter(pk=pk or -1, gateway="sandbox").first()
    if payment is None:
        return None
    healed = SandboxGateway().heal(payment.gateway_reference)
    return {"payment": str(payment.pk), "healed": healed}


def _sandbox_payment(payment_id: str) -> tuple[Payment, SandboxCharge] | None:
    pk = parse_id(payment_id)
    payment = (Payment.objects.select_related("organization")
               .filter(pk=pk or -1, gateway="sandbox").first())
    if payment is None:
        return None
    charge = SandboxCharge.objects.filter(reference=payment.gateway_reference).first()
    return (payment, charge) if charge is not None else None


def dispute(*, payment_id: str, amount: str | None, outcome: str | None) -> dict[str, Any] | None:
    """`kassa sandbox dispute PAYMENT_ID [--amount A] [--outcome won|lost]`: without an outcome
    the cardholder's bank opens a dispute (funds withdrawn, a week to respond); with one it
    decides the payment's open dispute, or opens and decides one at once. Kassa books what the
    sandbox says as it would a processor's events."""
    found = _sandbox_payment(payment_id)
    if found is None:
        return None
    payment, charge = found
    org = payment.organization
    opened = sandbox_disputes.open_dispute_of(charge)
    if opened is None:
        left = charge.amount_minor - sandbox_disputes.refunded_minor(charge)
        amount_minor = parse_amount(amount, org.currency) if amount else left
        if not 0 < amount_minor <= charge.amount_minor:
            raise ValidationFailed("amount", f"must be more than zero and at most the charge, "
                                   f"{display(charge.amount_minor, org.currency, org.locale)}")
        opened = sandbox_disputes.open_dispute(charge, amount_minor=amount_minor)
        disputes.apply_news(_news(opened, charge, DisputeStatus.NEEDS_RESPONSE))
    elif amount:
        raise ValidationFailed("amount", "the payment's dispute is open already: decide it "
                               "with --outcome")
    if outcome:
        sandbox_disputes.decide(opened, outcome)
        disputes.apply_news(_news(opened, charge, outcome))
    kassa = Dispute.objects.get(gateway="sandbox", gateway_reference=opened.reference,
                                organization_id=org.pk)
    return {"dispute": str(kassa.pk), "gateway_id": opened.reference, "status": kassa.status,
            "payment": str(payment.pk)}


def _news(found: SandboxDispute, charge: SandboxCharge, status: str) -> disputes.DisputeNews:
    return disputes.DisputeNews(
        gateway="sandbox", reference=found.reference, charge_reference=charge.reference,
        amount_minor=found.amount_minor, status=status, reason=found.reason,
        respond_by=found.created_at + dt.timedelta(days=RESPOND_DAYS))


def gateway_refund(*, payment_id: str, amount: str) -> dict[str, Any] | None:
    """`kassa sandbox refund PAYMENT_ID AMOUNT`: a refund made in the processor's dashboard,
    which Kassa books as a refund with origin gateway if it fits the payment's refundable."""
    found = _sandbox_payment(payment_id)
    if found is None:
        return None
    payment, charge = found
    org = payment.organization
    amount_minor = parse_amount(amount, org.currency)
    left = charge.amount_minor - sandbox_disputes.refunded_minor(charge)
    if amount_minor > left:
        raise ValidationFailed("amount", f"the sandbox can refund at most "
                               f"{display(left, org.currency, org.locale)} more of this charge")
    made = sandbox_disputes.dashboard_refund(charge, amount_minor=amount_minor)
    outcome = gateway_refunds.book(gateway="sandbox", reference=made.reference,
                                   charge_reference=charge.reference, amount_minor=amount_minor,
                                   state=RefundState.SUCCEEDED)
    booked = Refund.objects.filter(gateway="sandbox", gateway_reference=made.reference).first()
    return {"gateway_id": made.reference, "booked": outcome == "booked",
            "refund": str(booked.pk) if booked else None, "payment": str(payment.pk)}
