"""Billing's durable tasks.

`give_back_charge`: an online charge that could not be recorded (the invoice was paid in the
meantime) must go back to the customer even if the gateway is down at that moment. The task
carries everything it needs (there is no payment row to be the outbox), retries itself with
backoff, and is idempotent through the gateway's key.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone
from django_tasks import task

from kassa.core.outbox import task_named
from kassa.gateways.base import GatewayError
from kassa.gateways.registry import gateway_named

logger = logging.getLogger("kassa.billing")

MAX_ATTEMPTS = 12


@task_named("billing.give_back_charge")
@task()
def give_back_charge(gateway: str, reference: str, amount_minor: int, idempotency_key: str,
                     attempt: int = 1) -> None:
    try:
        gateway_named(gateway).cancel_charge(reference=reference, amount_minor=amount_minor,
                                             idempotency_key=idempotency_key)
    except GatewayError as exc:
        if exc.permanent or attempt >= MAX_ATTEMPTS:
            logger.error("charge %s of %s could not be given back after %s attempts: %s — "
                         "refund it at the gateway by hand", reference, amount_minor, attempt,
                         exc)
            raise
        retry_at = timezone.now() + dt.timedelta(seconds=min(30 * 2 ** attempt, 3600))
        give_back_charge.using(run_after=retry_at).enqueue(
            gateway, reference, amount_minor, idempotency_key, attempt + 1)
