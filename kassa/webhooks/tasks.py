"""The delivery task, on a queue of its own, and the sweep that re-enqueues overdue deliveries.

WEBHOOK_QUEUE is run by `kassa worker` on a thread of its own (kassa/worker.py), so a receiver
that is slow to answer (up to delivery.TIMEOUT_SECONDS a try) delays neither the gateway calls
nor the mail.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone
from django_tasks import task

from kassa.core.outbox import WEBHOOK_QUEUE, sweep, task_named
from kassa.webhooks import delivery
from kassa.webhooks.models import DeliveryStatus, WebhookDelivery

logger = logging.getLogger("kassa.webhooks")

GRACE = dt.timedelta(seconds=30)  # what is this overdue was lost, not merely queued
SWEEP_BATCH = 500


@task_named("webhooks.deliver")
@task(queue_name=WEBHOOK_QUEUE)
def deliver(delivery_id: int) -> None:
    delivery.deliver(delivery_id)


@sweep
def sweep_deliveries(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    # A try whose worker died (killed mid-delivery): due again at once; it was counted. Past
    # the three days it is given up, as a failed try would be.
    expired = WebhookDelivery.objects.filter(
        status=DeliveryStatus.SENDING,
        claimed_at__lt=now - dt.timedelta(seconds=delivery.CLAIM_SECONDS))
    if gave_up := expired.filter(event__created_at__lt=now - delivery.RETRY_FOR).update(
            status=DeliveryStatus.GAVE_UP, next_attempt_at=None,
            last_error="the last try never came back (worker died?), three days after"):
        logger.error("%s webhook deliveries never came back after three days: gave up", gave_up)
    expired.update(status=DeliveryStatus.PENDING, next_attempt_at=now - GRACE,
                   last_error="the try never came back (worker died?)")
    count = 0
    due = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING,
                                         next_attempt_at__lte=now - GRACE)
    for delivery_id in due.order_by("next_attempt_at").values_list("id", flat=True)[
            :SWEEP_BATCH]:
        deliver.enqueue(delivery_id)
        count += 1
    return count
