"""A mail server that accepts connections and never answers holds up only the mail.

Receipts run on their own queue and their own thread of `kassa worker`, so a refund's gateway
call goes out while a receipt is stuck waiting for the server's greeting. The proof is by
ordering, not by a stopwatch: the gateway call is done while the receipt's connection is still
open and unanswered. And that wait is bounded: Django's SMTP backend gives up after
EMAIL_TIMEOUT. SIGTERM still lets each lane finish the task in hand before the worker exits 0.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from conftest import run_tasks
from kassa.core.outbox import MAIL_QUEUE
from kassa.gateways.models import SandboxRefund
from kassa.refunds import gateway_calls
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.tests.test_worker_killed import ROOT, environment

# `kassa worker` whose sandbox gateway call, once started, waits for the test's word (a file):
# the test knows the main lane has a task in hand, and for how long.
HELD_WORKER = """
import os, sys, time
from pathlib import Path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kassa.settings")
import django
django.setup()
from kassa.gateways.sandbox import SandboxGateway

real_refund = SandboxGateway.refund
marker = Path(os.environ["KASSA_TEST_MARKER"])

def refund_when_released(self, **kwargs):
    marker.touch()
    deadline = time.monotonic() + 60
    while not marker.with_suffix(".release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return real_refund(self, **kwargs)

SandboxGateway.refund = refund_when_released
from kassa.cli import main
sys.exit(main(["worker"]))
"""


class SilentServer:
    """Accepts TCP connections on loopback and never says a word (no 220 greeting): a wedged
    mail server as a client sees it. Counts the connections it accepted and those the client
    closed; `hang_up` closes every connection, and any new one at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self.closed_by_client = 0
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.hanging_up = False
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self.lock:
                if self.hanging_up:
                    conn.close()
                    continue
                self.accepted += 1
                self.connections.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        # Read (and ignore) until the client gives up and closes its end.
        try:
            while conn.recv(1024):
                pass
        except OSError:
            return  # hung up by us
        with self.lock:
            if not self.hanging_up:
                self.closed_by_client += 1

    def open_connections(self) -> int:
        with self.lock:
            return self.accepted - self.closed_by_client

    def hang_up(self) -> None:
        with self.lock:
            self.hanging_up = True
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def stop(self) -> None:
        self.hang_up()
        self.stopped = True
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def wait_until(condition: Any, what: str, process: subprocess.Popen[str] | None = None,
               seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}: "
                        f"{process.communicate()[1]}")
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def refund(tenant: Any, payment_id: str, **body: Any) -> dict[str, Any]:
    r = tenant.api.post(f"/payments/{payment_id}/refunds", {"reason": "x", **body})
    assert r.status_code == 201, r.content
    return r.json()


@pytest.mark.django_db(transaction=True)  # the worker process must see the committed rows
def test_a_mail_server_that_never_answers_does_not_hold_up_gateway_calls(
        tenant, silent_server, tmp_path: Path):
    cash = tenant.pay(tenant.invoice()["id"], "100.00")
    first = refund(tenant, cash["id"], type="offline", method="cash", amount="5.00")
    stuck_receipt = Receipt.objects.filter(refund_id=first["id"])
    env = {**environment(tmp_path), "EMAIL_URL": f"smtp://127.0.0.1:{silent_server.port}"}
    process = subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The worker is waiting for a greeting that never comes.
        wait_until(lambda: silent_server.accepted == 1, "the worker connected", process)
        assert stuck_receipt.get().status == "sending"

        # A refund made now: its receipt queues behind the stuck one, its gateway call does not.
        card = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
        online = Refund.objects.filter(pk=refund(tenant, card["id"], type="online",
                                                 amount="30.00")["id"])
        wait_until(lambda: online.get().gateway_state not in ("to_call", "calling"),
                   "the gateway call was made and recorded", process)

        # Only now look at the mail: the first receipt's connection is still open and
        # unanswered, so the gateway call went out while the mail was stuck.
        assert silent_server.open_connections() == 1 and silent_server.closed_by_client == 0
        assert stuck_receipt.get().status == "sending"
        called = online.get()
        assert called.gateway_state == "called" and called.gateway_reference.startswith("re_")
        assert SandboxRefund.objects.filter(
            idempotency_key=gateway_calls.idempotency_key(called)).count() == 1
        assert called.receipts.get().status in ("pending", "sending")  # waits its turn

        # SIGTERM: the mail thread's task in hand finishes (the server hangs up, so quickly),
        # the gateway thread is idle, and the worker exits 0.
        process.send_signal(signal.SIGTERM)
        silent_server.hang_up()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    receipt = stuck_receipt.get()
    assert receipt.status == "pending" and receipt.attempts == 1  # recorded, to be retried
    assert "SMTPServerDisconnected" in receipt.last_error


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_each_lane_finish_its_task_in_hand_then_the_worker_exits_0(
        tenant, silent_server, tmp_path: Path):
    cash = tenant.pay(tenant.invoice()["id"], "100.00")
    first = refund(tenant, cash["id"], type="offline", method="cash", amount="5.00")
    card = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    online = refund(tenant, card["id"], type="online", amount="30.00")
    env = {**environment(tmp_path), "EMAIL_URL": f"smtp://127.0.0.1:{silent_server.port}"}
    marker = Path(env["KASSA_TEST_MARKER"])
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", HELD_WORKER], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        # Both lanes have a task in hand: a receipt waits for a greeting, a refund for the
        # gateway's answer.
        wait_until(lambda: silent_server.accepted == 1 and marker.exists(),
                   "both lanes took a task", process)
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: "finishing the tasks in hand" in log.read_text(),
                   "the worker took the signal", process)
        assert process.poll() is None  # it waits for both

        marker.with_suffix(".release").touch()
        silent_server.hang_up()
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    called = Refund.objects.get(pk=online["id"])
    assert called.gateway_state == "called" and called.gateway_reference.startswith("re_")
    stuck = Receipt.objects.get(refund_id=first["id"])
    assert stuck.status == "pending" and stuck.attempts == 1
    assert "SMTPServerDisconnected" in stuck.last_error
    # Neither lane took another task after the signal.
    assert called.receipts.get().attempts == 0


@pytest.mark.django_db
def test_a_receipt_to_a_server_that_never_answers_gives_up_after_email_timeout(
        tenant, silent_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 1
    cash = tenant.pay(tenant.invoice()["id"], "100.00")
    body = refund(tenant, cash["id"], type="offline", method="cash", amount="5.00")

    run_tasks()  # returns: the greeting's read timed out

    assert silent_server.accepted == 1
    wait_until(lambda: silent_server.closed_by_client == 1, "the client hung up", seconds=5)
    receipt = Receipt.objects.get(refund_id=body["id"])
    assert receipt.status == "pending" and receipt.attempts == 1
    assert "timed out" in receipt.last_error
    assert receipt.next_attempt_at > receipt.claimed_at  # retried later, with backoff


@pytest.mark.django_db
def test_receipts_go_on_the_mail_queue_and_gateway_calls_do_not(tenant):
    card = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    refund(tenant, card["id"], type="online", amount="30.00")
    queues = dict(DBTaskResult.objects.values_list("task_path", "queue_name"))
    assert queues == {"kassa.refunds.tasks.send_receipt": MAIL_QUEUE,
                      "kassa.refunds.tasks.call_gateway": "default"}
