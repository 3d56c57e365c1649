"""`kassa worker`: run the durable tasks, with the outbox sweep and the pruning between rounds.

Three lanes, each a loop of rounds on a thread of its own: the main thread runs every queue but
the mail and the webhooks (gateway calls, polls, ...), a second thread runs the mail queue
alone, so a mail server that accepts connections and never answers holds up only the mail, for
at most EMAIL_TIMEOUT per read, and a third the outgoing webhooks alone, so a receiver slow to
answer holds up only other webhooks, for at most their 10 s a try. Django's connections are per
thread: each lane closes its own.

A round of the main lane is: the sweep, when it is due for the whole database (a lease row
moved on by a conditional update, so however many workers run, one sweeps per interval and no
two enqueue the same overdue work); then the pruning, on a lease of its own; then at most BATCH
ready tasks of its queues, so that under steady load the worker still comes back to sweep. A
round of the mail lane, or of the webhooks lane, is only its BATCH. A lane with nothing ready
sleeps a moment.

SIGTERM or SIGINT: each lane finishes the task in hand, then the worker exits 0 (a deploy never
kills a receipt or a gateway call half-way; both are idempotent anyway). `--once` sweeps, runs
what is ready on every queue, one task after another, until none is left, and exits.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.sessions.models import Session
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from kassa.core.models import KEY_LIFE, IdempotentRequest, Lease
from kassa.core.outbox import MAIL_QUEUE, WEBHOOK_QUEUE, run_sweeps
from kassa.webhooks.models import WebhookEvent

logger = logging.getLogger("kassa.worker")

SWEEP_EVERY_SECONDS = 15
PRUNE_EVERY_SECONDS = 3600
IDLE_SECONDS = 1.0
BATCH = 50  # tasks per round
PRUNE_BATCH = 1000  # rows deleted per table and pruning
KEEP_TASKS = dt.timedelta(days=7)  # finished task records, for looking into what ran
# Outgoing webhook events and their deliveries, for the deliveries list: long after their
# three days of retries are over.
KEEP_WEBHOOK_EVENTS = dt.timedelta(days=30)


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
    """Delete what is past keeping, a bounded batch of each: finished task records,
    Idempotency-Keys older than a day (the key may then be used again), expired sessions,
    outgoing webhook events (with their deliveries) older than a month."""
    tasks = DBTaskResult.objects.filter(status__in=["SUCCESSFUL", "FAILED"],
                                        finished_at__lt=now - KEEP_TASKS)
    # A claim never answered that old died with its request long ago (a retry could have
    # taken it over after a minute): it goes too.
    keys = IdempotentRequest.objects.filter(created_at__lt=now - KEY_LIFE).exclude(
        status_code__isnull=True, claimed_at__gte=now - KEY_LIFE)
    sessions = Session.objects.filter(expire_date__lt=now)
    events = WebhookEvent.objects.filter(created_at__lt=now - KEEP_WEBHOOK_EVENTS)
    counts = {}
    for name, found in (("tasks", tasks), ("idempotency_keys", keys), ("sessions", sessions),
                        ("webhook_events", events)):
        pks: list[Any] = list(found.order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH])
        # The rows of the model itself (a webhook event's deliveries go with it, uncounted).
        counts[name] = (found.model.objects.filter(pk__in=pks).delete()[1]
                        .get(found.model._meta.label, 0) if pks else 0)
    return counts


@dataclass
class Lane:
    """Some queues, run round after round by one thread."""

    name: str
    queue_names: list[str]
    excluded_queue_names: list[str] = field(default_factory=list)
    running: bool = True
    current: Worker | None = None  # the round's worker, for `stop` to end after its task

    def ready(self) -> QuerySet[DBTaskResult]:
        tasks = DBTaskResult.objects.ready()
        if "*" not in self.queue_names:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        return tasks.exclude(queue_name__in=self.excluded_queue_names)

    def stop(self) -> None:
        # Called from the signal handler: plain assignments, no lock (the thread the handler
        # interrupted might hold it).
        self.running = False
        if (round_worker := self.current) is not None:
            round_worker.running = False  # it returns once its task is done


def lanes() -> tuple[Lane, Lane]:
    """The main lane (every queue but the mail and the webhooks) and the mail lane."""
    return Lane("main", ["*"], [MAIL_QUEUE, WEBHOOK_QUEUE]), Lane("mail", [MAIL_QUEUE])


def webhook_lane() -> Lane:
    return Lane("webhooks", [WEBHOOK_QUEUE])


def _worker(lane: Lane, *, max_tasks: int | None) -> Worker:
    suffix = f"-{lane.name}"  # a worker id is unique per thread, and at most 64 characters
    return Worker(queue_names=lane.queue_names, interval=0, batch=True, backend_name="default",
                  startup_delay=False, max_tasks=max_tasks,
                  worker_id=f"{socket.gethostname()}-{os.getpid()}"[:64 - len(suffix)] + suffix,
                  excluded_queue_names=lane.excluded_queue_names)


def run_round(lane: Lane) -> bool:
    """Run at most BATCH of the lane's ready tasks; whether any was ready."""
    if not lane.ready().exists():
        return False
    round_worker = _worker(lane, max_tasks=BATCH)
    lane.current = round_worker
    try:
        if lane.running:  # a stop that came before the line above found no worker to stop
            round_worker.run()
    finally:
        lane.current = None
    return True


def run_lane(lane: Lane, *, periodic: bool = False) -> None:
    """Rounds until the lane is stopped; `periodic`: the sweep and the pruning before each."""
    while lane.running:
        close_old_connections()
        ran = False
        try:
            if periodic:
                now = timezone.now()
                if claim_sweep(now):
                    run_sweeps()
                if claim("prune", now, dt.timedelta(seconds=PRUNE_EVERY_SECONDS)):
                    logger.info("pruned %s", prune(now))
            ran = run_round(lane)
        except Exception:
            logger.exception("worker round failed (%s lane); going on", lane.name)
        if lane.running and not ran:
            time.sleep(IDLE_SECONDS)


def _run_side_lane(lane: Lane) -> None:
    try:
        run_lane(lane)
    finally:
        connections.close_all()  # this thread's own connections


def run_worker(*, once: bool = False) -> None:
    if once:
        run_sweeps()
        _worker(Lane("once", ["*"]), max_tasks=None).run()
        return
    main, mail = lanes()
    side = [mail, webhook_lane()]

    def stop(signum: int, frame: Any) -> None:
        main.stop()
        for lane in side:
            lane.stop()
        logger.info("%s: finishing the tasks in hand, then stopping", signal.strsignal(signum))

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    threads = [threading.Thread(target=_run_side_lane, args=(lane,), name=f"kassa-{lane.name}")
               for lane in side]
    for thread in threads:
        thread.start()
    try:
        run_lane(main, periodic=True)
    finally:
        for lane in side:
            lane.stop()
        for thread in threads:
            # Its task in hand: a receipt (EMAIL_TIMEOUT per read), a webhook (10 s a try).
            thread.join()
