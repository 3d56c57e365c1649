"""The periodic sweep behind the durable tasks.

django-tasks' database backend neither retries a task that raised nor recovers one whose worker
died, so the domain rows are the outbox: each app registers a sweep that finds its overdue work
(a receipt not sent, a gateway call not made, a pending refund not polled) and enqueues it again.
Every task is idempotent, so a sweep that enqueues something already queued costs a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger("kassa.outbox")

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
