"""`kassa worker`: run the durable tasks, with the outbox sweep and the pruning between rounds.

A round is: the sweep, when it is due for the whole database (a lease row moved on by a
conditional update, so however many workers run, one sweeps per interval and no two enqueue
the same overdue work); then the pruning, on a lease of its own; then at most BATCH ready
tasks, so that under steady load the worker still comes back to sweep. With nothing ready it
sleeps a moment.

SIGTERM or SIGINT: the task in hand finishes, then the worker exits 0 (a deploy never kills a
receipt or a gateway call half-way; both are idempotent anyway). `--once` sweeps, runs what is
ready until the queue is empty, and exits.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import time
from typing import Any

from django.contrib.sessions.models import Session
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from kassa.core.models import IdempotentRequest, Lease
from kassa.core.outbox import run_sweeps

logger = logging.getLogger("kassa.worker")

SWEEP_EVERY_SECONDS = 15
PRUNE_EVERY_SECONDS = 3600
IDLE_SECONDS = 1.0
BATCH = 50  # tasks per round
PRUNE_BATCH = 1000  # rows deleted per table and pruning
KEEP_TASKS = dt.timedelta(days=7)  # finished task records, for looking into what ran
KEEP_ANSWERS = dt.timedelta(hours=24)  # an Idempotency-Key's answer, then the key is free


def claim(name: str, now: dt.datetime, every: dt.timedelta) -> bool:
    """Whether this process does the periodic work `name` now (and no other does until
    `every` has passed)."""
    if not Lease.objects.filter(name=name).exists():
        try:
            with transaction.atomic():
                Lease.objects.create(name=name, due_at=now)
        except IntegrityError:
            pass  # another worker made it at the same moment
    return bool(Lease.objects.filter(name=name, due_at__lte=now).update(due_at=now + every))


def claim_sweep(now: dt.datetime) -> bool:
    return claim("sweep", now, dt.timedelta(seconds=SWEEP_EVERY_SECONDS))


def prune(now: dt.datetime) -> dict[str, int]:
    """Delete what is past keeping, a bounded batch of each: finished task records, answered
    Idempotency-Keys older than a day (the key may then be used again), expired sessions."""
    tasks = DBTaskResult.objects.filter(status__in=["SUCCESSFUL", "FAILED"],
                                        finished_at__lt=now - KEEP_TASKS)
    keys = IdempotentRequest.objects.filter(status_code__isnull=False,
                                            created_at__lt=now - KEEP_ANSWERS)
    sessions = Session.objects.filter(expire_date__lt=now)
    counts = {}
    for name, found in (("tasks", tasks), ("idempotency_keys", keys), ("sessions", sessions)):
        pks: list[Any] = list(found.order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH])
        counts[name] = found.model.objects.filter(pk__in=pks).delete()[0] if pks else 0
    return counts


def _worker(*, max_tasks: int | None) -> Worker:
    return Worker(queue_names=["*"], interval=0, batch=True, backend_name="default",
                  startup_delay=False, max_tasks=max_tasks,
                  worker_id=f"{socket.gethostname()}-{os.getpid()}"[:64],
                  excluded_queue_names=[])


CURRENT: list[Worker] = []  # the round's worker, for the signal handler to stop


def run_round() -> bool:
    """Run at most BATCH ready tasks; whether any was ready."""
    if not DBTaskResult.objects.ready().exists():
        return False
    round_worker = _worker(max_tasks=BATCH)
    CURRENT[:] = [round_worker]
    try:
        round_worker.run()
    finally:
        CURRENT.clear()
    return True


def run_worker(*, once: bool = False) -> None:
    if once:
        run_sweeps()
        _worker(max_tasks=None).run()
        return
    state = {"running": True}

    def stop(signum: int, frame: Any) -> None:
        logger.info("%s: finishing the task in hand, then stopping", signal.strsignal(signum))
        state["running"] = False
        for round_worker in CURRENT:
            round_worker.running = False  # it returns once its task is done

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while state["running"]:
        close_old_connections()
        ran = False
        try:
            now = timezone.now()
            if claim_sweep(now):
                run_sweeps()
            if claim("prune", now, dt.timedelta(seconds=PRUNE_EVERY_SECONDS)):
                logger.info("pruned %s", prune(now))
            ran = run_round()
        except Exception:
            logger.exception("worker round failed; going on")
        if state["running"] and not ran:
            time.sleep(IDLE_SECONDS)
