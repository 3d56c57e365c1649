"""The refunds' durable tasks and the sweep that re-enqueues overdue work.

Tasks carry only ids; the rows say what is due. Each task is idempotent (its first step is a
conditional claim), so the sweep may enqueue something that is already queued at no risk.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone
from django_tasks import task

from kassa.core.outbox import MAIL_QUEUE, sweep, task_named
from kassa.refunds import gateway_calls, receipts, request_mail
from kassa.refunds.models import (
    GatewayState,
    Receipt,
    ReceiptStatus,
    Refund,
    RefundStatus,
    RequestMail,
)

logger = logging.getLogger("kassa.refunds")

GRACE = dt.timedelta(seconds=30)  # what is this overdue was lost, not merely queued
SWEEP_BATCH = 500


@task_named("refunds.call_gateway")
@task()
def call_gateway(refund_id: int) -> None:
    gateway_calls.call_gateway(refund_id)


@task_named("refunds.poll_refund")
@task()
def poll_refund(refund_id: int, polls: int = 0) -> None:
    # `polls` is no longer used (the row counts them); kept so queued tasks still run.
    gateway_calls.poll_refund(refund_id)


@task_named("refunds.send_receipt")
@task(queue_name=MAIL_QUEUE)  # apart from the gateway calls: a hung mail server delays only mail
def send_receipt(receipt_id: int, kind: str | None = None) -> None:
    """`kind` given: `receipt_id` is the refund's id (kassa.refunds.receipts.queue)."""
    receipts.send_receipt(receipt_id, kind)


@sweep
def sweep_refunds(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    # A call claimed by a worker that died: its claim expired, so it is due again, at once (no
    # task waits in the queue for it, so the GRACE below does not apply). The gateway call is
    # idempotent by key, so calling again cannot refund twice. Every claim counted as an
    # attempt: a call that never comes back is flagged after the same bound as one that fails.
    expired = Refund.objects.filter(gateway_state=GatewayState.CALLING, next_attempt_at__lt=now)
    if stuck := expired.filter(attempts__gte=gateway_calls.max_call_attempts()).update(
            gateway_state=GatewayState.STUCK, next_attempt_at=None,
            last_error="the gateway call never came back (worker died?) after every attempt"):
        logger.error("%s refund gateway calls never came back after every attempt: flagged "
                     "stuck", stuck)
    expired.update(gateway_state=GatewayState.TO_CALL, next_attempt_at=now - GRACE)
    count = 0
    due_calls = Refund.objects.filter(gateway_state=GatewayState.TO_CALL,
                                      status=RefundStatus.PENDING,
                                      next_attempt_at__lte=now - GRACE)
    for refund_id in due_calls.values_list("id", flat=True)[:SWEEP_BATCH]:
        call_gateway.enqueue(refund_id)
        count += 1
    due_polls = Refund.objects.filter(gateway_state=GatewayState.CALLED,
                                      status=RefundStatus.PENDING,
                                      next_attempt_at__lte=now - GRACE)
    for refund_id in due_polls.values_list("id", flat=True)[:SWEEP_BATCH]:
        poll_refund.enqueue(refund_id)
        count += 1
    return count


@sweep
def sweep_receipts(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    # A receipt claimed by a worker that died: due again at once, within the same bound.
    expired = Receipt.objects.filter(
        status=ReceiptStatus.SENDING,
        claimed_at__lt=now - dt.timedelta(seconds=receipts.CLAIM_SECONDS),
    )
    if gave_up := expired.filter(attempts__gte=receipts.MAX_ATTEMPTS).update(
            status=ReceiptStatus.GAVE_UP,
            last_error="sending never came back (worker died?) after every attempt"):
        logger.error("%s receipts never came back after every attempt: gave up", gave_up)
    expired.update(status=ReceiptStatus.PENDING, next_attempt_at=now - GRACE)
    count = 0
    due = Receipt.objects.filter(status=ReceiptStatus.PENDING, next_attempt_at__lte=now - GRACE)
    for receipt_id in due.values_list("id", flat=True)[:SWEEP_BATCH]:
        send_receipt.enqueue(receipt_id)
        count += 1
    return count


@task_named("refunds.send_request_mail")
@task(queue_name=MAIL_QUEUE)
def send_request_mail(mail_id: int, step: str | None = None) -> None:
    """Tell the requester what became of their refund request (kassa/refunds/request_mail.py).
    `step` was given by the tasks queued before the e-mail had its row: then `mail_id` is the
    request's id, and its row is found by the two."""
    if step is not None:
        found = RequestMail.objects.filter(request_id=mail_id, step=step).first()
        if found is None:
            return  # an old task of a request whose mail had no row: nothing to retry
        mail_id = found.pk
    request_mail.send_request_mail(mail_id)


@sweep
def sweep_request_mails(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    due = request_mail.due(now, GRACE, SWEEP_BATCH)
    for mail_id in due:
        send_request_mail.enqueue(mail_id)
    return len(due)


@sweep
def sweep_refund_requests(now: dt.datetime | None = None) -> int:
    """Open refund requests past `request_expiry_days` expire, releasing their reservation."""
    from kassa.refunds.requests import expire_requests

    return expire_requests(now)
