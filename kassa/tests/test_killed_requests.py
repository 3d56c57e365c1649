"""API requests whose server is killed with SIGKILL mid-request, and what their retries (same
Idempotency-Key) and the worker make of what they left: money moves once, is booked once.

The server is the product's own `kassa run`, started in a process group of its own so that one
SIGKILL takes it, gunicorn and gunicorn's workers at once. Where the request stops is decided by
the test, not by timing: a second PostgreSQL connection (the *holder*) takes a lock the request
needs, the test polls `pg_stat_activity` until the request's backend waits on it, and kills the
server there. The backend then stays behind, still waiting (PostgreSQL does not notice a client
gone while it waits on a lock): once the holder lets go it finds its client gone and rolls back,
which the test waits for before going on. The database is shared with the subprocesses, hence
`transaction=True`; the row locks make these PostgreSQL-only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from conftest import Api, Tenant, race
from kassa.billing import charges
from kassa.billing import tasks as billing_tasks
from kassa.billing.models import Payment, PaymentAllocation
from kassa.core.models import IdempotentRequest
from kassa.gateways.models import SandboxCharge
from kassa.ledger.models import DAILY_TOTAL_SLOTS, DailyTotal, JournalEntry
from kassa.ledger.verify import verify
from kassa.refunds.models import Refund
from kassa.refunds.tests.test_worker_killed import ROOT, database_url, environment, kassa
from kassa.tests.test_cli_run import free_port, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TAKEOVER = 2  # KASSA_IDEMPOTENCY_TAKEOVER_SECONDS of a server whose retries may take over
NEVER = 3600  # ... of a server whose retries, in this test's time, may not
# How long a request may take to reach the lock it waits on (a loaded CI machine is slow).
# Once it waits, the test sees it within a poll and kills it, well before the server's
# lock_timeout (settings.LOCK_WAIT_SECONDS, 20 s) would end the wait by itself.
BLOCKED_WITHIN = 60.0


# --- the server, and talking to it -----------------------------------------------------------

@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL to the whole group, then wait until nothing of it holds the port (its
        sockets close as its processes exit, gunicorn's workers last)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _listening(self.port):
            assert time.monotonic() < deadline, "the killed server still holds its port"
            time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def serving(tmp_path: Path, *, takeover: int) -> Iterator[Server]:
    """`kassa run --no-demo --no-worker` on the test database; always killed on the way out."""
    port = free_port()
    env = {**environment(tmp_path), "KASSA_IDEMPOTENCY_TAKEOVER_SECONDS": str(takeover)}
    log = tmp_path / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kassa.cli", "run", "--no-demo", "--no-worker",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port, log)
    try:
        try:
            wait_for(f"{server.base}/api/v1/openapi.json", seconds=120)
        except AssertionError:
            raise AssertionError(
                f"the server never answered:\n{log.read_text()[-3000:]}") from None
        yield server
    finally:
        server.kill()


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(server: Server, tenant: Tenant, path: str, body: Any, *, key: str) -> Answer:
    request = urllib.request.Request(
        f"{server.base}/api/v1{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {tenant.token}", "Idempotency-Key": key,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as refused:
        return Answer(refused.code, refused.headers, refused.read())


class InFlight:
    """A request sent from a thread of its own: it hangs until its server is killed."""

    def __init__(self, send: Any) -> None:
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self.thread.start()

    def _run(self, send: Any) -> None:
        try:
            self.outcome = send()
        except BaseException as exc:  # the connection reset by the kill: expected
            self.outcome = exc

    def finished(self) -> bool:
        return not self.thread.is_alive()

    def died(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the request outlived its server"
        assert isinstance(self.outcome, OSError), f"it answered after all: {self.outcome!r}"


# --- locks held by the test, and the backends that wait on them -------------------------------

@contextmanager
def holder() -> Iterator[psycopg.Connection[Any]]:
    """A connection of the test's own to the test database, in a transaction (autocommit off),
    so that what it locks stays locked until the test rolls it back."""
    conn = psycopg.connect(database_url(), autocommit=False)
    try:
        yield conn
    finally:
        conn.close()


def _activity(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def waiting_on(lock_holder: psycopg.Connection[Any], request: InFlight) -> tuple[int, str]:
    """The backend (pid, query) waiting on a lock `lock_holder` holds; polled until there is one."""
    deadline = time.monotonic() + BLOCKED_WITHIN
    while True:
        found = _activity(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND %s = ANY(pg_blocking_pids(pid))",
            lock_holder.info.backend_pid)
        if found:
            assert len(found) == 1, found
            return found[0]
        assert not request.finished(), f"the request never waited: {request.outcome!r}"
        assert time.monotonic() < deadline, "no backend ever waited on the test's lock"
        time.sleep(0.02)


def gone(pid: int) -> None:
    """Wait until the backend has ended (and with it its transaction)."""
    deadline = time.monotonic() + 30
    while _activity("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
        assert time.monotonic() < deadline, f"backend {pid} outlived its client"
        time.sleep(0.02)


def past_the_takeover(key: str) -> IdempotentRequest:
    """The key's claim, unanswered; returns once TAKEOVER seconds have passed since it was
    taken (a wait for time to pass, not for another process)."""
    claim = IdempotentRequest.objects.get(key=key)
    assert claim.status_code is None and claim.claimed_at is not None
    left = (claim.claimed_at + dt.timedelta(seconds=TAKEOVER, milliseconds=200)
            - timezone.now()).total_seconds()
    if left > 0:
        time.sleep(left)
    return claim


# --- 1. a refund ------------------------------------------------------------------------------

REFUND = {"type": "offline", "method": "cash", "amount": "30.00", "reason": "Guest changed plans"}


def test_a_refund_killed_waiting_for_its_lock_leaves_nothing_and_its_retry_makes_it_once(
    tenant: Tenant, tmp_path: Path,
) -> None:
    """A keyed refund's claim shares the refund's transaction: killed, it leaves no claim to
    wait out, and its retry runs at once."""
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    path = f"/payments/{payment['id']}/refunds"

    with holder() as locks:
        locks.execute("SELECT id FROM billing_payment WHERE id = %s FOR UPDATE", [payment["id"]])
        with serving(tmp_path, takeover=NEVER) as server:
            first = InFlight(lambda: post(server, tenant, path, REFUND, key="refund-1"))
            pid, query = waiting_on(locks, first)
            # It waits on the payment's row (the tuple lock a row's first waiter holds), in
            # the statement that locks the invoice and the payment (its FOR UPDATE lies past
            # the first kilobyte of text that pg_stat_activity keeps).
            assert query.startswith("SELECT"), query
            assert _activity("SELECT relation::regclass::text FROM pg_locks WHERE pid = %s "
                             "AND locktype = 'tuple'", pid) == [("billing_payment",)]
            server.kill()
        first.died()
        locks.rollback()
        gone(pid)

    assert not Refund.objects.exists()  # the killed request's transaction rolled back,
    assert not IdempotentRequest.objects.filter(key="refund-1").exists()  # its claim with it

    with serving(tmp_path, takeover=NEVER) as server:
        again = post(server, tenant, path, REFUND, key="refund-1")
        assert again.status == 201, again.body
        assert again.headers.get("Idempotent-Replayed") is None
        replay = post(server, tenant, path, REFUND, key="refund-1")

    [refund] = Refund.objects.filter(payment_id=payment["id"])
    assert again.json()["id"] == str(refund.pk) and refund.request_key == "refund-1"
    assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.body == again.body
    assert Payment.objects.get(pk=payment["id"]).refunded_minor == 3000
    assert verify(tenant.organization) == []


def test_a_refund_killed_after_its_writes_before_its_commit_leaves_nothing(
    tenant: Tenant, tmp_path: Path,
) -> None:
    """The refund has written everything but its day totals, in the last statement after its
    answer is stored, before all of it commits; the test holds the day's row and the server is
    killed there. Nothing of it stays: no refund, no entry, no claim; the retry makes one."""
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    path = f"/payments/{payment['id']}/refunds"
    earlier = tenant.api.post(path, {**REFUND, "amount": "1.00"})  # today's cash-refund row
    assert earlier.status_code == 201, earlier.content
    entries = JournalEntry.objects.count()

    # The day's rows of every slot (whichever the server's connection writes: DailyTotal),
    # zeros where none was written yet, which change no sum.
    kept = DailyTotal.objects.get(kind="refund_recorded", code="cash")
    DailyTotal.objects.bulk_create([
        DailyTotal(organization_id=kept.organization_id, center_id=kept.center_id,
                   business_date=kept.business_date, code="cash", kind="refund_recorded",
                   slot=slot) for slot in range(DAILY_TOTAL_SLOTS) if slot != kept.slot])
    with holder() as day_row:
        held = day_row.execute("SELECT id FROM ledger_dailytotal WHERE kind = "
                               "'refund_recorded' AND code = 'cash' FOR UPDATE").fetchall()
        assert len(held) == DAILY_TOTAL_SLOTS, "the day's rows exist"
        with serving(tmp_path, takeover=NEVER) as server:
            first = InFlight(lambda: post(server, tenant, path, REFUND, key="refund-2"))
            pid, query = waiting_on(day_row, first)
            assert "INSERT INTO ledger_dailytotal" in query, query  # (with the audit's rows)
            server.kill()
        first.died()
        _activity("SELECT pg_terminate_backend(%s)", pid)
        gone(pid)
        day_row.rollback()

    assert Refund.objects.filter(payment_id=payment["id"]).count() == 1  # the earlier one
    assert JournalEntry.objects.count() == entries
    assert not IdempotentRequest.objects.filter(key="refund-2").exists()
    assert verify(tenant.organization) == []

    with serving(tmp_path, takeover=NEVER) as server:
        again = post(server, tenant, path, REFUND, key="refund-2")
        replay = post(server, tenant, path, REFUND, key="refund-2")

    assert again.status == 201, again.body
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 2
    assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.body == again.body
    assert Payment.objects.get(pk=payment["id"]).refunded_minor == 3100
    assert verify(tenant.organization) == []


# --- 2, 3. an online payment killed after its charge, before its booking ------------------------

CARD = {"amount": "100.00", "method": "card", "online": True}


def kill_after_the_charge(tenant: Tenant, tmp_path: Path, invoice_id: str, key: str) -> Payment:
    """POST the card payment; its booking waits on the test's SHARE lock of the allocations
    table (the intent and the sandbox charge never write there); kill the server once the
    charge is made and the booking waits. Returns the intent it left."""
    with holder() as locks:
        locks.execute("LOCK TABLE billing_paymentallocation IN SHARE MODE")
        with serving(tmp_path, takeover=TAKEOVER) as server:
            first = InFlight(lambda: post(server, tenant, f"/invoices/{invoice_id}/payments",
                                          CARD, key=key))
            pid, query = waiting_on(locks, first)
            assert query.startswith('INSERT INTO "billing_paymentallocation"'), query
            assert SandboxCharge.objects.count() == 1  # charged, not yet booked
            server.kill()
        first.died()
        locks.rollback()
        gone(pid)

    intent = Payment.objects.get(invoice_id=invoice_id)
    assert (intent.status, intent.charge_state, intent.request_key) == (
        "processing", "charging", key)
    assert not PaymentAllocation.objects.exists()
    assert not JournalEntry.objects.filter(kind="payment").exists()
    [charge] = SandboxCharge.objects.all()
    assert charge.idempotency_key == charges.payment_key(intent)
    return intent


def booked_once(tenant: Tenant, payment: Payment) -> None:
    """The payment succeeded, its one charge and one set of allocations, the books clean, and
    every kept sandbox charge a succeeded payment and the other way round."""
    payment.refresh_from_db()
    assert (payment.status, payment.charge_state) == ("succeeded", "")
    [charge] = SandboxCharge.objects.all()
    assert not charge.cancelled and payment.gateway_reference == charge.reference
    allocations = PaymentAllocation.objects.filter(payment=payment)
    assert allocations.count() == 1  # the invoice's one line
    assert allocations.aggregate(s=Sum("net_minor") + Sum("tax_minor"))["s"] == 10000
    assert JournalEntry.objects.filter(kind="payment").count() == 1
    assert verify(tenant.organization) == []
    kept = sorted(SandboxCharge.objects.filter(cancelled=False).values_list("reference",
                                                                            flat=True))
    assert kept == sorted(Payment.objects.filter(status="succeeded", online=True)
                          .values_list("gateway_reference", flat=True))


def snapshot() -> dict[str, Any]:
    return {
        "payments": list(Payment.objects.order_by("pk").values()),
        "allocations": list(PaymentAllocation.objects.order_by("pk").values()),
        "charges": list(SandboxCharge.objects.order_by("pk").values()),
        "entries": JournalEntry.objects.count(),
    }


def test_a_payment_killed_after_its_charge_is_booked_once_by_its_retry(
    tenant: Tenant, tmp_path: Path,
) -> None:
    invoice = tenant.invoice()
    intent = kill_after_the_charge(tenant, tmp_path, invoice["id"], "card-1")

    with serving(tmp_path, takeover=TAKEOVER) as server:
        past_the_takeover("card-1")
        again = post(server, tenant, f"/invoices/{invoice['id']}/payments", CARD, key="card-1")
        replay = post(server, tenant, f"/invoices/{invoice['id']}/payments", CARD, key="card-1")

    assert again.status == 201, again.body
    assert again.json()["id"] == str(intent.pk) and again.json()["status"] == "succeeded"
    assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.body == again.body
    assert Payment.objects.count() == 1
    booked_once(tenant, intent)

    before = snapshot()
    kassa("worker", "--once", env=environment(tmp_path))
    assert snapshot() == before  # the worker has nothing left to book


def test_a_payment_killed_after_its_charge_is_booked_once_by_the_worker(
    tenant: Tenant, tmp_path: Path, settings: Any,
) -> None:
    invoice = tenant.invoice()
    intent = kill_after_the_charge(tenant, tmp_path, invoice["id"], "card-2")

    # No retry comes. Time passes beyond its RESOLVE_AFTER and the sweep's grace (what is
    # that overdue was lost, not merely queued): the worker asks the gateway for its key.
    Payment.objects.filter(pk=intent.pk).update(
        next_attempt_at=timezone.now() - billing_tasks.GRACE - dt.timedelta(seconds=1))
    kassa("worker", "--once", env=environment(tmp_path))
    booked_once(tenant, intent)

    # A retry that comes after all answers the payment the worker booked, charging nothing.
    settings.KASSA_IDEMPOTENCY_TAKEOVER_SECONDS = TAKEOVER
    past_the_takeover("card-2")
    late = tenant.api.post(f"/invoices/{invoice['id']}/payments", CARD, key="card-2")
    assert late.status_code == 201, late.content
    assert late.json()["id"] == str(intent.pk) and late.json()["status"] == "succeeded"
    booked_once(tenant, intent)


# --- 4. one request sent ten times at once -------------------------------------------------------

def test_concurrent_retries_of_one_payment_make_one_payment_and_one_charge(
    tenant: Tenant,
) -> None:
    invoice = tenant.invoice()

    def send(i: int) -> tuple[int, bool, bytes]:
        r = Api(tenant.token, Client()).post(f"/invoices/{invoice['id']}/payments", CARD,
                                             key="card-race")
        return r.status_code, r.get("Idempotent-Replayed") == "true", r.content

    answers = race(10, send)
    assert all(isinstance(a, tuple) for a in answers), answers
    assert all(status in (201, 409) for status, _, _ in answers), answers
    refused = {json.loads(body)["code"] for status, _, body in answers if status == 409}
    assert refused <= {"idempotency_conflict"}, answers
    # One of them ran; the others were told to retry, or given its answer.
    assert [replayed for status, replayed, _ in answers if status == 201].count(False) == 1
    [made] = {body for status, _, body in answers if status == 201}

    [payment] = Payment.objects.all()
    assert json.loads(made)["id"] == str(payment.pk)
    booked_once(tenant, payment)
