"""The periodic sweep behind the durable tasks.

django-tasks' database backend neither retries a task that raised nor recovers one whose worker
died, so the domain rows are the outbox: each app registers a sweep that finds its overdue work
(a receipt not sent, a gateway call not made, a pending refund not polled) and enqueues it again.
Every task is idempotent, so a sweep that enqueues something already queued costs a no-op.

Tasks are also found by name: a service enqueues `"refunds.call_gateway"` through `enqueue`,
and the app that runs it registers it with `@task_named` when it is ready. So a service never
imports the tasks module that imports it back.

A task that sends e-mail goes on the MAIL_QUEUE, which `kassa worker` runs on a thread of its
own: a mail server that accepts connections and never answers holds up only the mail. Outgoing
webhook deliveries go on the WEBHOOK_QUEUE, on a thread of their own too, for the same reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("kassa.outbox")

MAIL_QUEUE = "mail"
WEBHOOK_QUEUE = "webhooks"

Sweep = Callable[[], int]
SWEEPS: list[Sweep] = []


def sweep(fn: Sweep) -> Sweep:
    SWEEPS.append(fn)
    return fn


def run_sweeps() -> int:
    """Run every registered sweep; return how many tasks they enqueued."""
    total = 0
    for fn in SWEEPS:
        try:
            total += fn()
        except Exception:
            # One broken sweep must not stop the others, nor the worker.
            logger.exception("sweep %s failed", fn.__name__)
    return total


TASKS: dict[str, Any] = {}


def task_named(name: str) -> Callable[[Any], Any]:
    """Register a django-tasks task under `name` (once: a second one is a mistake)."""

    def register(task: Any) -> Any:
        assert name not in TASKS, f"two tasks named {name}"
        TASKS[name] = task
        return task

    return register


def enqueue(name: str, *args: Any, run_after: dt.datetime | None = None) -> None:
    """Enqueue the task registered as `name`; inside a transaction, with it (a plain INSERT)."""
    task = TASKS[name]
    (task.using(run_after=run_after) if run_after is not None else task).enqueue(*args)
