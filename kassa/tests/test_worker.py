"""`kassa worker` as an operator runs it: one sweep per interval for the whole database however
many workers run, rounds bounded so sweeps go on under steady load, the task in hand finished
on SIGTERM, and the old records pruned."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from kassa import worker
from kassa.core.models import IdempotentRequest
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.tests.test_refund_receipts_smtp import free_port


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db
def test_two_workers_sweep_once_per_interval(tenant):
    now = timezone.now()
    assert worker.claim_sweep(now) is True
    assert worker.claim_sweep(now + dt.timedelta(seconds=1)) is False  # another worker
    later = now + dt.timedelta(seconds=worker.SWEEP_EVERY_SECONDS + 1)
    assert worker.claim_sweep(later) is True
    assert worker.claim_sweep(later) is False


@pytest.mark.django_db(transaction=True)  # the worker manages its connection as in production
def test_a_round_runs_a_bounded_batch_so_sweeps_go_on_under_load(tenant, monkeypatch):
    monkeypatch.setattr(worker, "BATCH", 3)
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    for _ in range(5):
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "method": "cash", "amount": "1.00", "reason": "x"})
        assert r.status_code == 201
    ready = DBTaskResult.objects.ready()
    assert ready.count() == 5  # a receipt each
    main, mail = worker.lanes()
    assert worker.run_round(main) is False  # receipts are the mail lane's
    assert worker.run_round(mail) is True
    assert ready.count() == 2  # three ran, and the round ended: back to the sweep
    assert worker.run_round(mail) is True
    assert worker.run_round(mail) is False  # nothing was ready


@pytest.mark.django_db
def test_prune_removes_what_is_past_keeping_and_nothing_else(tenant):
    now = timezone.now()
    old, recent = now - dt.timedelta(days=8), now - dt.timedelta(hours=1)
    day_ago = now - dt.timedelta(hours=25)
    for key, at, answered, claimed in (("old", day_ago, True, day_ago),
                                       ("fresh", recent, True, recent),
                                       ("died", day_ago, False, day_ago),
                                       ("taken over", day_ago, False, recent)):
        row = IdempotentRequest.objects.create(organization=tenant.organization, key=key,
                                               fingerprint="f",
                                               status_code=201 if answered else None)
        IdempotentRequest.objects.filter(pk=row.pk).update(created_at=at, claimed_at=claimed)
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    for _ in range(2):
        tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "method": "cash", "amount": "1.00", "reason": "x"})
    finished = list(DBTaskResult.objects.all())
    DBTaskResult.objects.filter(pk=finished[0].pk).update(status="SUCCESSFUL", finished_at=old)
    DBTaskResult.objects.filter(pk=finished[1].pk).update(status="SUCCESSFUL",
                                                          finished_at=recent)
    Session.objects.create(session_key="gone", session_data="", expire_date=recent)
    Session.objects.create(session_key="kept", session_data="",
                           expire_date=now + dt.timedelta(days=1))

    assert worker.prune(now) == {"tasks": 1, "idempotency_keys": 2, "sessions": 1,
                                 "webhook_events": 0}
    assert set(IdempotentRequest.objects.values_list("key", flat=True)) == {"fresh",
                                                                           "taken over"}
    assert list(DBTaskResult.objects.values_list("pk", flat=True)) == [finished[1].pk]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["kept"]


class SlowInbox:
    """A mail server that takes its time to accept each message."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(3)
        self.received += 1
        return "250 OK"


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_task_in_hand_finish_then_the_worker_exits(tenant, tmp_path: Path):
    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        refund = tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "method": "cash", "amount": "1.00", "reason": "x"}).json()
        env = {**os.environ, "DATABASE_URL": database_url(), "KASSA_VAR_DIR": str(tmp_path),
               "EMAIL_URL": f"smtp://127.0.0.1:{port}"}
        process = subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        receipt = Receipt.objects.filter(refund_id=refund["id"])
        deadline = time.monotonic() + 30
        while receipt.get().status != "sending":  # the worker is in the middle of it
            assert time.monotonic() < deadline, "the worker never took the receipt"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert receipt.get().status == "sent" and inbox.received == 1
        assert Refund.objects.get(pk=refund["id"]).status == "recorded"
    finally:
        controller.stop()
