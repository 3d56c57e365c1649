"""A real `kassa worker` process killed with SIGKILL in the worst place — after the gateway
refunded, before Kassa recorded it — and a fresh `kassa worker --once` that finishes the work,
once.

The process under test is the product's own CLI; the only thing added is where it stops: a small
wrapper (below) makes the sandbox's refund call, writes a marker file and then sleeps, so the test
knows the gateway has the refund and kills the process there. The test database is shared with
the subprocesses through DATABASE_URL, hence `transaction=True` (the rows must be committed).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from kassa.billing.models import Payment
from kassa.gateways.models import SandboxRefund
from kassa.ledger.verify import verify
from kassa.refunds import gateway_calls
from kassa.refunds.models import Refund
from kassa.refunds.sandbox import settle

ROOT = Path(__file__).resolve().parents[3]

DYING_WORKER = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kassa.settings")
import django
django.setup()
from kassa.gateways.sandbox import SandboxGateway

real_refund = SandboxGateway.refund

def refund_then_hang(self, **kwargs):
    result = real_refund(self, **kwargs)
    open(os.environ["KASSA_TEST_MARKER"], "w").close()
    time.sleep(120)  # SIGKILL arrives here: the gateway has the refund, Kassa does not know
    return result

SandboxGateway.refund = refund_then_hang
from kassa.cli import main
sys.exit(main(["worker"]))
"""


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "PYTEST"))}
    env.update(DATABASE_URL=database_url(), KASSA_VAR_DIR=str(tmp_path / "var"),
               KASSA_GATEWAY="sandbox", KASSA_SANDBOX_SETTLE_SECONDS="3600",
               KASSA_TEST_MARKER=str(tmp_path / "gateway-called"),
               PYTHONPATH=str(ROOT))
    return env


def kassa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "kassa.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.django_db(transaction=True)
def test_worker_killed_after_the_gateway_call_is_finished_once_by_the_next(tenant: Any,
                                                                           tmp_path: Path):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": "35.00", "reason": "Guest changed plans"})
    assert r.status_code == 201, r.content
    refund = Refund.objects.get(pk=r.json()["id"])
    env = environment(tmp_path)
    marker = Path(env["KASSA_TEST_MARKER"])

    worker = subprocess.Popen([sys.executable, "-c", DYING_WORKER], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert worker.poll() is None, worker.communicate()[1]
            assert time.monotonic() < deadline, "the worker never called the gateway"
            time.sleep(0.05)
        # The receipt goes out meanwhile, on the worker's mail thread: the kill is about the
        # gateway call alone.
        receipt = refund.receipts.filter(kind="receipt")
        while receipt.get().status != "sent":
            assert worker.poll() is None, worker.communicate()[1]
            assert time.monotonic() < deadline, "the worker never sent the receipt"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    refund.refresh_from_db()
    assert refund.gateway_state == "calling" and refund.gateway_reference == ""
    assert SandboxRefund.objects.filter(
        idempotency_key=gateway_calls.idempotency_key(refund)).count() == 1

    # A worker started at once leaves the call alone: its claim has not expired.
    kassa("worker", "--once", env=env)
    refund.refresh_from_db()
    assert refund.gateway_state == "calling"

    # Time passes beyond the claim; the next worker takes the call over and makes it again,
    # with the same idempotency key: the gateway answers with the refund it already has.
    Refund.objects.filter(pk=refund.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    kassa("worker", "--once", env=env)

    refund.refresh_from_db()
    assert refund.gateway_state == "called" and refund.gateway_reference.startswith("re_")
    assert SandboxRefund.objects.filter(
        idempotency_key=gateway_calls.idempotency_key(refund)).count() == 1
    assert SandboxRefund.objects.count() == 1

    settle(refund_ids=[str(refund.pk)], everything=False)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    p = Payment.objects.get(pk=payment["id"])
    assert p.refunded_minor == 3500 and not p.refund_pending
    assert refund.receipts.get(kind="receipt").status == "sent"
    assert verify(tenant.organization) == []
