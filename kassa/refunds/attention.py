"""A person's way out for a refund the machinery gave up on.

An online refund is flagged `stuck` (the API's `needs_attention`) when its gateway call failed
`KASSA_GATEWAY_ATTEMPTS` times or its polls ran out while the gateway kept it pending. Its
payment stays blocked (one pending refund at a time) until an admin acts:

- `retry_refund`: the gateway is back — call it again (or, if it has the refund, poll it) with
  the refund's own idempotency key, so that a call that did reach it cannot refund twice.
- `resolve_refund(action="paid_another_way", method=…)`: the front desk gave the money back by
  cash, check or other. The gateway is asked first, by the refund's key, and the resolution is
  refused while the gateway has the refund pending or succeeded (the customer would be paid
  twice). Booked like the settlement it replaces, to that tender; the customer is told.
- `resolve_refund(action="accept_gateway")`: take the gateway's current word — settled, failed,
  still pending (then it is polled again) or unknown to it (the money never left: failed).

Each asks the gateway outside any transaction, then decides under the usual locks, re-checking
that the refund is still stuck. A refund that failed after it had succeeded and was held
because its balance was paid again is not pending: these actions do not apply to it.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone

from kassa.audit.services import record
from kassa.billing.models import PaymentEvent
from kassa.core.errors import (
    GatewayRefundExists,
    GatewayUnavailable,
    NoteRequired,
    RefundNotStuck,
    ValidationFailed,
)
from kassa.core.locks import money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.outbox import enqueue
from kassa.gateways.base import GatewayError, RefundResult, RefundState
from kassa.gateways.registry import gateway_named
from kassa.refunds import lifecycle, receipts, webhook_events
from kassa.refunds.gateway_calls import idempotency_key
from kassa.refunds.models import (
    GatewayState,
    OfflineMethod,
    ReceiptKind,
    Refund,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Membership, Organization
from kassa.tenancy.services import require_admin

RESOLVE_METHODS = (OfflineMethod.CASH, OfflineMethod.CHECK, OfflineMethod.OTHER)
MAX_NOTE = 2000


def stuck_refunds(organization: Organization) -> QuerySet[Refund]:
    return (Refund.objects.filter(organization=organization, gateway_state=GatewayState.STUCK)
            .select_related("organization", "created_by", "payment", "invoice")
            .order_by("created_at", "id"))


def _stuck(actor: Membership, refund_id: object) -> Refund:
    require_admin(actor)
    refund = get_scoped(Refund.objects.filter(organization=actor.organization), refund_id)
    _require_stuck(refund)
    return refund


def _require_stuck(refund: Refund) -> None:
    if refund.gateway_state != GatewayState.STUCK:
        raise RefundNotStuck(f"Refund {refund.pk} is not waiting for a person")
    if refund.status != RefundStatus.PENDING:
        raise RefundNotStuck(
            f"Refund {refund.pk} failed after it had succeeded and its balance was paid since: "
            "give the money back with a new refund")


def retry_refund(*, actor: Membership, refund: object) -> Refund:
    found = _stuck(actor, refund)
    now = timezone.now()
    # The gateway has it (its reference is known): ask how it stands; else call again.
    state = GatewayState.CALLED if found.gateway_reference else GatewayState.TO_CALL
    with money_transaction():
        moved = Refund.objects.filter(
            pk=found.pk, gateway_state=GatewayState.STUCK, status=RefundStatus.PENDING,
        ).update(gateway_state=state, attempts=0, next_attempt_at=now, last_error="")
        if not moved:
            raise RefundNotStuck(f"Refund {found.pk} is not waiting for a person")
        _history(found, actor, now, "refund_retried",
                 f"Refund {found.pk}: the gateway is asked again, by {actor.user.email}")
        enqueue("refunds.poll_refund" if found.gateway_reference else "refunds.call_gateway",
                found.pk)
    found.refresh_from_db()
    return found


def resolve_refund(*, actor: Membership, refund: object, action: str,
                   method: str | None = None, note: str = "") -> Refund:
    found = _stuck(actor, refund)
    note = (note or "").strip()
    if action == "paid_another_way":
        if method not in RESOLVE_METHODS:
            raise ValidationFailed("method", "must be cash, check or other")
        if method == OfflineMethod.OTHER and not note:
            raise NoteRequired("A note is required when the method is other", field="note")
        if len(note) > MAX_NOTE:
            raise ValidationFailed("note", f"at most {MAX_NOTE} characters")
    elif action != "accept_gateway":
        raise ValidationFailed("action", "must be paid_another_way or accept_gateway")
    at_gateway = _ask_gateway(found)  # outside any transaction
    if action == "accept_gateway":
        return _accept(found, actor, at_gateway)
    if at_gateway is not None and at_gateway.state in (RefundState.PENDING,
                                                        RefundState.SUCCEEDED):
        raise GatewayRefundExists(
            f"The gateway has this refund ({at_gateway.state}, {at_gateway.reference}): it "
            "will reach the customer's card; accept the gateway's word instead")
    assert method is not None
    _paid_another_way(found.pk, actor, method, note)
    return Refund.objects.get(pk=found.pk)


def _ask_gateway(refund: Refund) -> RefundResult | None:
    assert refund.payment is not None
    try:
        return gateway_named(refund.gateway).find_refund(
            charge_reference=refund.payment.gateway_reference,
            idempotency_key=idempotency_key(refund))
    except GatewayError as exc:
        raise GatewayUnavailable(
            f"The gateway could not be asked about refund {refund.pk} ({exc}); try again") from exc


def _accept(refund: Refund, actor: Membership, at_gateway: RefundResult | None) -> Refund:
    now = timezone.now()
    if at_gateway is None:
        outcome = RefundResult("", RefundState.FAILED, "the gateway has no such refund")
    else:
        outcome = at_gateway
        lifecycle.record_gateway_reference(refund_id=refund.pk, reference=at_gateway.reference)
    with money_transaction():
        _, _, current = lifecycle.lock_with_its_payment(refund.pk)
        _require_stuck(current)
        _history(current, actor, now, "refund_resolved",
                 f"Refund {current.pk}: {actor.user.email} took the gateway's word "
                 f"({outcome.state})")
        if outcome.state == RefundState.PENDING:
            # Back in its ordinary life: polled until the gateway decides.
            Refund.objects.filter(pk=current.pk).update(
                gateway_state=GatewayState.CALLED, attempts=0, next_attempt_at=now,
                last_error="")
            enqueue("refunds.poll_refund", current.pk)
    if outcome.state != RefundState.PENDING:
        lifecycle.apply_gateway_result(refund_id=refund.pk, state=outcome.state,
                                       failure_reason=outcome.failure_reason)
    return Refund.objects.get(pk=refund.pk)


@money_transaction()
def _paid_another_way(refund_id: int, actor: Membership, method: str, note: str) -> None:
    invoice, payment, refund = lifecycle.lock_with_its_payment(refund_id)
    _require_stuck(refund)
    now = timezone.now()
    # What was in transit to the card left by this tender instead: the settlement, elsewhere.
    refund.method = method
    lifecycle.post_settlement(refund, invoice, now, actor=actor,
                              memo=f"Refund {refund.pk} paid another way ({method})")
    refund.type = RefundType.OFFLINE
    refund.status = RefundStatus.RECORDED
    refund.settled_at = now
    refund.gateway_state = GatewayState.DONE
    refund.last_error = ""
    if note:
        refund.note = (f"{refund.note}\n{note}" if refund.note else note)[:MAX_NOTE]
    refund.save(update_fields=["settle_entry", "type", "method", "status", "settled_at",
                               "gateway_state", "last_error", "note"])
    if payment is not None:
        lifecycle.refresh_payment(payment)
    _history(refund, actor, now, "refund_resolved",
             f"Refund {refund.pk}: the gateway never took it; paid another way by {method} "
             f"(resolved by {actor.user.email})" + (f": {note}" if note else ""))
    receipts.queue(refund, ReceiptKind.PAID_ANOTHER_WAY, now)
    webhook_events.announce("refund.succeeded", refund,  # the money went back, another way
                            actor=actor.user)


def _history(refund: Refund, actor: Membership, now: dt.datetime, kind: str,
             detail: str) -> None:
    """The payment's history and the audit log: a person retried or resolved a stuck refund."""
    record(organization_id=refund.organization_id, actor=actor.user,
           action=kind.replace("_", ".", 1), object=f"refund:{refund.pk}",
           detail={"detail": detail[:500]})
    if refund.payment_id:
        PaymentEvent.objects.create(organization_id=refund.organization_id,
                                    payment_id=refund.payment_id, at=now, kind=kind,
                                    amount_minor=refund.total_minor, status=refund.status,
                                    by=actor.user, detail=detail[:500])
