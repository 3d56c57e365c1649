"""The refunds' durable tasks and the sweep that re-enqueues overdue work.

Tasks carry only ids; the rows say what is due. Each task is idempotent (its first step is a
conditional claim), so the sweep may enqueue something that is already queued at no risk.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tasks import task

from kassa.core.outbox import sweep
from kassa.refunds import gateway_calls, receipts
from kassa.refunds.models import GatewayState, Receipt, ReceiptStatus, Refund, RefundStatus

GRACE = dt.timedelta(seconds=30)  # what is this overdue was lost, not merely queued
SWEEP_BATCH = 500


@task()
def call_gateway(refund_id: int) -> None:
    gateway_calls.call_gateway(refund_id)


@task()
def poll_refund(refund_id: int, polls: int = 0) -> None:
    gateway_calls.poll_refund(refund_id, polls)


@task()
def send_receipt(receipt_id: int) -> None:
    receipts.send_receipt(receipt_id)


@sweep
def sweep_refunds(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    # A call claimed by a worker that died: its claim expired, so it is due again. The gateway
    # call is idempotent by key, so calling again cannot refund twice.
    Refund.objects.filter(gateway_state=GatewayState.CALLING, next_attempt_at__lt=now).update(
        gateway_state=GatewayState.TO_CALL, next_attempt_at=now)
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
    Receipt.objects.filter(
        status=ReceiptStatus.SENDING,
        claimed_at__lt=now - dt.timedelta(seconds=receipts.CLAIM_SECONDS),
    ).update(status=ReceiptStatus.PENDING, next_attempt_at=now)
    count = 0
    due = Receipt.objects.filter(status=ReceiptStatus.PENDING, next_attempt_at__lte=now - GRACE)
    for receipt_id in due.values_list("id", flat=True)[:SWEEP_BATCH]:
        send_receipt.enqueue(receipt_id)
        count += 1
    return count
