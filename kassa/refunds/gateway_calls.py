"""The online refund's conversation with the gateway, run from tasks, outside every lock.

1. `call_gateway`: claim the due call with a conditional update (so two workers never both
   call), ask the gateway to refund with the refund's own key (so a repeated call — after
   a timeout, a 5xx, or a worker killed between the call and the write — refunds once), and
   record the gateway's reference. A retryable error backs off and tries again, at most
   `KASSA_GATEWAY_ATTEMPTS` times (`max_call_attempts`); then the refund is flagged `stuck`
   for a person (`kassa.refunds.attention`: retry or resolve), never forgotten.
   A permanent error fails the refund (its money goes back to refundable).
2. `poll_refund`: ask the gateway how a pending refund stands until it is final; bounded too.
   Webhooks (Stripe) bring the same news sooner, through the same `apply_gateway_result`.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from kassa.core.installation import installation_key
from kassa.core.outbox import enqueue
from kassa.gateways.base import GatewayError, RefundResult, RefundState
from kassa.gateways.registry import gateway_named
from kassa.gateways.schedule import backoff, max_call_attempts
from kassa.refunds.lifecycle import apply_gateway_result, record_gateway_reference
from kassa.refunds.models import GatewayState, Refund, RefundStatus

logger = logging.getLogger("kassa.refunds")

MAX_POLLS = 40  # with the backoff below: about two weeks of polling
CLAIM_SECONDS = 300  # a call claimed longer ago than this was lost with its worker


def idempotency_key(refund: Refund) -> str:
    """`kassa-<installation>-refund-<id>`: a retry asks for the same refund, and no other
    database sharing the processor account can ever send it (`kassa-refund-<id>` for the
    refunds made before, which must keep the key they were called with)."""
    if not refund.keyed_by_installation:
        return f"kassa-refund-{refund.pk}"
    return f"kassa-{installation_key()}-refund-{refund.pk}"


def poll_delay(gateway_name: str, polls: int) -> dt.timedelta:
    if gateway_name == "sandbox":
        return dt.timedelta(seconds=max(1, settings.KASSA_SANDBOX_SETTLE_SECONDS))
    return dt.timedelta(seconds=min(60 * 2 ** polls, 6 * 3600))


def call_gateway(refund_id: int) -> None:
    now = timezone.now()
    # Only when due: a copy of this task that the sweep queued beside a delayed retry must not
    # run the retry early and wear down its backoff.
    claimed = Refund.objects.filter(
        pk=refund_id, gateway_state=GatewayState.TO_CALL, status=RefundStatus.PENDING,
        next_attempt_at__lte=now,
    ).update(gateway_state=GatewayState.CALLING, attempts=F("attempts") + 1,
             next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS))
    if not claimed:
        return  # done already, or another worker has it
    refund = Refund.objects.select_related("payment", "organization").get(pk=refund_id)
    assert refund.payment is not None
    gateway = gateway_named(refund.gateway)
    try:
        result = gateway.refund(
            charge_reference=refund.payment.gateway_reference, amount_minor=refund.total_minor,
            currency=refund.organization.currency, idempotency_key=idempotency_key(refund),
        )
    except GatewayError as exc:
        _call_failed(refund, exc, now)
        return
    # The gateway's id is kept whatever happened meanwhile (a webhook may have finished the
    # refund during the call): it is how a person finds the refund at the gateway.
    record_gateway_reference(refund_id=refund_id, reference=result.reference)
    moved_on = Refund.objects.filter(pk=refund_id, gateway_state=GatewayState.CALLING).update(
        gateway_state=GatewayState.CALLED, attempts=0, last_error="",
        next_attempt_at=now + poll_delay(gateway.name, 0),
    )
    if moved_on:
        _record(refund_id, result, gateway_name=gateway.name)


def _call_failed(refund: Refund, exc: GatewayError, now: dt.datetime) -> None:
    message = str(exc)[:500]
    if exc.permanent:
        logger.warning("refund %s: the gateway refused it: %s", refund.pk, message)
        apply_gateway_result(refund_id=refund.pk, state=RefundState.FAILED,
                             failure_reason=message)
        return
    if refund.attempts >= max_call_attempts():
        logger.error("refund %s: gateway call failed %s times, flagged stuck: %s",
                     refund.pk, refund.attempts, message)
        Refund.objects.filter(pk=refund.pk, gateway_state=GatewayState.CALLING).update(
            gateway_state=GatewayState.STUCK, last_error=message, next_attempt_at=None)
        return
    retry_at = now + backoff(refund.attempts)
    Refund.objects.filter(pk=refund.pk, gateway_state=GatewayState.CALLING).update(
        gateway_state=GatewayState.TO_CALL, last_error=message, next_attempt_at=retry_at)
    enqueue("refunds.call_gateway", refund.pk, run_after=retry_at)


def poll_refund(refund_id: int, *, force: bool = False) -> None:
    """Ask the gateway how a pending refund stands, when its poll is due (or now, forced).

    The number of polls is counted on the row (`attempts`), so a poll the sweep queued again
    does not start the count over. An error while asking says nothing of whether the money
    moved: it never fails the refund, it only waits for the next poll, bounded like the rest.
    """
    now = timezone.now()
    due = Refund.objects.filter(pk=refund_id, status=RefundStatus.PENDING,
                                gateway_state=GatewayState.CALLED)
    if not force:
        due = due.filter(next_attempt_at__lte=now)
    # Claim this poll: push the due time out so a concurrent copy of the task skips it.
    if not due.update(attempts=F("attempts") + 1,
                      next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS)):
        return
    refund = Refund.objects.get(pk=refund_id)
    try:
        result = gateway_named(refund.gateway).refund_status(reference=refund.gateway_reference)
    except GatewayError as exc:
        logger.warning("refund %s: could not ask the gateway: %s", refund_id, exc)
        Refund.objects.filter(pk=refund_id).update(last_error=str(exc)[:500])
        result = RefundResult(refund.gateway_reference, RefundState.PENDING)
    _record(refund_id, result, gateway_name=refund.gateway)


def _record(refund_id: int, result: RefundResult, *, gateway_name: str) -> None:
    if result.state != RefundState.PENDING:
        apply_gateway_result(refund_id=refund_id, state=result.state,
                             failure_reason=result.failure_reason)
        return
    polls = Refund.objects.values_list("attempts", flat=True).get(pk=refund_id)
    if polls >= MAX_POLLS:
        logger.error("refund %s: still pending after %s polls, flagged stuck", refund_id, polls)
        Refund.objects.filter(pk=refund_id, gateway_state=GatewayState.CALLED).update(
            gateway_state=GatewayState.STUCK, next_attempt_at=None,
            last_error="still pending at the gateway after every poll")
        return
    poll_at = timezone.now() + poll_delay(gateway_name, polls)
    Refund.objects.filter(pk=refund_id, gateway_state=GatewayState.CALLED).update(
        next_attempt_at=poll_at)
    enqueue("refunds.poll_refund", refund_id, run_after=poll_at)


def sync_by_reference(reference: str) -> None:
    """Bring the refund with this gateway reference up to date now (after a sandbox settle)."""
    refund = Refund.objects.filter(gateway_reference=reference).first()
    if refund is not None:
        poll_refund(refund.pk, force=True)
