"""A real `kassa worker` process killed with SIGKILL in the middle of a delivery — the
receiver has the request, Kassa never heard its answer — and a later `kassa worker --once`
that delivers it again, with the same event id, once the claim of the dead one has expired.

The receiver holds the first request open until the test has killed the worker. And SIGTERM,
unlike SIGKILL, lets the worker finish the try in hand on its webhooks lane before it exits.
The test database is shared with the subprocesses through DATABASE_URL, hence
`transaction=True`.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.utils import timezone

from kassa.refunds.tests.test_worker_killed import ROOT, environment, kassa
from kassa.webhooks import delivery as delivering
from kassa.webhooks.models import WebhookDelivery
from kassa.webhooks.tests.receiver import add_endpoint, receiver, verify


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_delivers_after_a_restart(tenant, tmp_path: Path,
                                                               private_allowed):
    env = {**environment(tmp_path), "KASSA_WEBHOOKS_ALLOW_PRIVATE": "1"}
    answer = threading.Event()  # unset: the receiver keeps the first request waiting
    with receiver(hold=answer) as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "method": "cash", "amount": "35.00", "reason": "Moved"})
        assert r.status_code == 201, r.content

        worker = subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker"], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            deadline = time.monotonic() + 60
            while not hook.arrived.is_set():
                assert worker.poll() is None, worker.communicate()[1]
                assert time.monotonic() < deadline, "the worker never delivered"
                time.sleep(0.05)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(timeout=30) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        answer.set()  # from now on the receiver answers at once

        [delivery] = WebhookDelivery.objects.filter(endpoint_id=endpoint["id"])
        assert (delivery.status, delivery.attempts) == ("sending", 1)

        # A worker started at once leaves it alone: the dead one's claim has not expired.
        kassa("worker", "--once", env=env)
        delivery.refresh_from_db()
        assert delivery.status == "sending" and len(hook.requests) == 1

        # Time passes beyond the claim: the sweep finds it due again, and it goes.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            claimed_at=timezone.now() - dt.timedelta(seconds=delivering.CLAIM_SECONDS + 1))
        kassa("worker", "--once", env=env)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "delivered", 2, 200)

        kassa("worker", "--once", env=env)  # and nothing more
    assert len(hook.requests) == 2
    first, second = hook.requests
    assert first.body == second.body and first.event["id"] == second.event["id"]
    assert first.event["data"]["object"]["id"] == r.json()["id"]
    assert all(verify(endpoint["secret"], request.headers["Kassa-Signature"], request.body)
               for request in hook.requests)


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_delivery_in_hand_finish(tenant, tmp_path: Path, private_allowed):
    env = {**environment(tmp_path), "KASSA_WEBHOOKS_ALLOW_PRIVATE": "1"}
    answer = threading.Event()
    with receiver(hold=answer) as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        assert tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "method": "cash", "amount": "5.00", "reason": "x"}
        ).status_code == 201
        worker = subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker"], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            assert hook.arrived.wait(60), "the worker never delivered"
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert worker.poll() is None  # still finishing the try in hand
            answer.set()
            _, err = worker.communicate(timeout=30)
            assert worker.returncode == 0, err
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    [delivery] = WebhookDelivery.objects.filter(endpoint_id=endpoint["id"])
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert len(hook.requests) == 1
