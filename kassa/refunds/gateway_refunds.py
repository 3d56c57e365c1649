"""Refunds made at the processor (its dashboard, say), booked when the gateway tells of them.

Such a refund is booked as an online refund of its payment with `origin: "gateway"`, no
creator, and *decrease balance owed* (money given back at the processor is not asked for
again), by the same rules under the same locks as a refund made here
(`services._refund_locked_payment`): its amount must fit the payment's refundable, what the
payment paid into packages must be there to give back, no other refund may be pending. One that
does not fit is not booked — nothing is written — and is left for reconciliation, which shows
it as a line the gateway has and Kassa has not (`missing_in_kassa`). A pending one is polled
like any online refund; news of one already booked moves it on through
`lifecycle.apply_gateway_result`, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from django.utils import timezone

from kassa.billing.models import Payment
from kassa.core.errors import DomainError
from kassa.core.locks import lock_invoice, lock_payment, money_transaction
from kassa.gateways.base import RefundState
from kassa.refunds import lifecycle
from kassa.refunds.models import Refund
from kassa.refunds.services import _refund_locked_payment
from kassa.tenancy.models import Membership, Organization

logger = logging.getLogger("kassa.refunds")


@dataclass(frozen=True)
class _AtTheProcessor:
    """Who made it: nobody Kassa knows (its `created_by` is null)."""

    organization: Organization
    user: None = None


def book(*, gateway: str, reference: str, charge_reference: str, amount_minor: int,
         state: str, failure_reason: str = "") -> str:
    """Book (or move on) one refund the gateway made itself; say what was done."""
    known = (Refund.objects.filter(gateway=gateway, gateway_reference=reference)
             .values_list("pk", flat=True).first())
    if known is not None:
        changed = lifecycle.apply_gateway_result(refund_id=known, state=state,
                                                 failure_reason=failure_reason)
        return "applied" if changed else "unchanged"
    payment = (Payment.objects.filter(gateway=gateway, gateway_reference=charge_reference)
               .select_related("organization").first()) if charge_reference else None
    if payment is None or payment.invoice_id is None:
        logger.warning("%s refund %s of charge %r: no payment of ours to book it on", gateway,
                       reference, charge_reference)
        return "unknown charge"
    if state == RefundState.FAILED or amount_minor <= 0:
        return "ignored"  # nothing moved
    actor = cast(Membership, _AtTheProcessor(payment.organization))
    try:
        with money_transaction():
            invoice = lock_invoice(payment.invoice_id)
            locked = lock_payment(payment.pk)
            refund = _refund_locked_payment(
                actor=actor, invoice=invoice, payment=locked, customer=None,
                amount_minor=amount_minor, reason="Refunded at the processor",
                internal_note="", note="", method=locked.method, online=True,
                decrease_balance_owed=True, made_at_gateway=reference)
            if state == RefundState.SUCCEEDED:
                lifecycle.settle(refund, invoice, locked, timezone.now())
    except DomainError as exc:
        logger.warning("%s refund %s of payment %s (%s) not booked: %s", gateway, reference,
                       payment.pk, amount_minor, exc.detail)
        return "not booked"
    logger.info("%s refund %s of payment %s booked as refund %s", gateway, reference,
                payment.pk, refund.pk)
    return "booked"
