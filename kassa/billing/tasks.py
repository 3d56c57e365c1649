"""Billing's durable tasks: an online payment's gateway calls, and the sweep that finds the
overdue ones (`kassa.billing.charges` says what each does).

Tasks carry only the payment's id; the payment's row is the outbox (`charge_state`,
`next_attempt_at`). Each task's first step is a conditional claim, so a task the sweep enqueues
twice runs once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.utils import timezone
from django_tasks import task

from kassa.billing import charges
from kassa.core.outbox import enqueue, sweep, task_named
from kassa.gateways.base import GatewayError
from kassa.gateways.registry import gateway_named
from kassa.gateways.schedule import backoff

logger = logging.getLogger("kassa.billing")

GRACE = dt.timedelta(seconds=30)  # what is this overdue was lost, not merely queued
SWEEP_BATCH = 500
LEGACY_ATTEMPTS = 12


@task_named("billing.resolve_charge")
@task()
def resolve_charge(payment_id: int) -> None:
    charges.resolve(payment_id)


@task_named("billing.poll_charge")
@task()
def poll_charge(payment_id: int) -> None:
    charges.poll(payment_id)


@task_named("billing.give_back_charge")
@task()
def give_back_charge(payment_id: int | str, *legacy: Any) -> None:
    if legacy:  # queued before payments were rows first: it carries the charge itself
        _give_back_legacy(str(payment_id), *legacy)
        return
    charges.give_back(int(payment_id))


def _give_back_legacy(gateway: str, reference: str, amount_minor: int, idempotency_key: str,
                      attempt: int = 1) -> None:
    """The earlier form of this task (gateway, reference, amount, key, attempt): a charge that
    no payment row stands for. Given back as it was, retried with backoff as it was."""
    try:
        gateway_named(gateway).cancel_charge(reference=reference, amount_minor=amount_minor,
                                             idempotency_key=idempotency_key)
    except GatewayError as exc:
        if exc.permanent or attempt >= LEGACY_ATTEMPTS:
            logger.error("charge %s of %s could not be given back after %s attempts: %s — "
                         "refund it at the gateway by hand", reference, amount_minor, attempt,
                         exc)
            raise
        give_back_charge.using(run_after=timezone.now() + backoff(attempt)).enqueue(
            gateway, reference, amount_minor, idempotency_key, attempt + 1)


@sweep
def sweep_charges(now: dt.datetime | None = None) -> int:
    due = charges.due_calls((now or timezone.now()) - GRACE, SWEEP_BATCH)
    for name, payment_id in due:
        enqueue(name, payment_id)
    return len(due)
