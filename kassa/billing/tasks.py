"""Billing's durable tasks: an online payment's gateway calls, and the sweep that finds the
overdue ones (`kassa.billing.charges` says what each does).

Tasks carry only the payment's id; the payment's row is the outbox (`charge_state`,
`next_attempt_at`). Each task's first step is a conditional claim, so a task the sweep enqueues
twice runs once.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tasks import task

from kassa.billing import charges
from kassa.core.outbox import enqueue, sweep, task_named

GRACE = dt.timedelta(seconds=30)  # what is this overdue was lost, not merely queued
SWEEP_BATCH = 500


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
def give_back_charge(payment_id: int) -> None:
    charges.give_back(payment_id)


@sweep
def sweep_charges(now: dt.datetime | None = None) -> int:
    due = charges.due_calls((now or timezone.now()) - GRACE, SWEEP_BATCH)
    for name, payment_id in due:
        enqueue(name, payment_id)
    return len(due)
