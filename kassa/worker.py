"""`kassa worker`: run the durable tasks, with the outbox sweep between batches.

Each round runs every registered sweep (which re-enqueues overdue work) and then django-tasks'
own database worker in batch mode over what is ready. `--once` does one round: what is queued
and ready now, then exit.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.core.management import call_command
from django.db import close_old_connections

from kassa.core.outbox import run_sweeps

logger = logging.getLogger("kassa.worker")

SWEEP_EVERY_SECONDS = 15.0
IDLE_SECONDS = 1.0


def run_batch() -> None:
    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0,
                 interval=0.0)


def run_worker(*, once: bool = False) -> None:
    if once:
        run_sweeps()
        run_batch()
        return
    running = True

    def stop(signum: int, frame: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    last_sweep = 0.0
    while running:
        close_old_connections()
        if time.monotonic() - last_sweep >= SWEEP_EVERY_SECONDS:
            run_sweeps()
            last_sweep = time.monotonic()
        try:
            run_batch()
        except Exception:
            logger.exception("worker round failed; going on")
        time.sleep(IDLE_SECONDS)
