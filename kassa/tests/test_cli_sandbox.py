"""The worker and the sandbox's settle command as processes, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from kassa.refunds.models import Receipt, Refund


def kassa(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
               f"{db['NAME']}")
    env = {**os.environ, "DATABASE_URL": url, "KASSA_VAR_DIR": str(tmp_path)}
    env.pop("EMAIL_URL", None)
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=False)


@pytest.mark.django_db(transaction=True)
def test_worker_calls_the_gateway_and_settle_completes_the_refund(tenant, tmp_path):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    refund = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": "25.00", "reason": "Family request"}).json()

    done = kassa("worker", "--once", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    row = Refund.objects.get(pk=refund["id"])
    assert row.status == "pending" and row.gateway_reference.startswith("re_")
    # The receipt went out as an .eml file (no EMAIL_URL): once.
    assert Receipt.objects.get(refund=row).status == "sent"
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1

    settled = kassa("sandbox", "settle", refund["id"], tmp_path=tmp_path)
    assert settled.returncode == 0, settled.stderr
    assert json.loads(settled.stdout) == {"settled": [row.gateway_reference]}
    assert Refund.objects.get(pk=refund["id"]).status == "succeeded"

    again = kassa("sandbox", "settle", "--all", tmp_path=tmp_path)
    assert json.loads(again.stdout) == {"settled": []}
    verified = kassa("verify", tmp_path=tmp_path)
    assert verified.returncode == 0, verified.stdout


@pytest.mark.django_db(transaction=True)
def test_settle_with_ids_that_are_no_ids_settles_nothing(tmp_path):
    done = kassa("sandbox", "settle", "³", "1_0", "99999999999999999999", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"settled": []}


@pytest.mark.django_db(transaction=True)
def test_settle_right_after_an_online_refund_settles_it_without_a_worker(tenant, tmp_path):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    refund = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": "25.00", "reason": "Family request"}).json()
    assert Refund.objects.get(pk=refund["id"]).gateway_reference == ""  # no call made yet

    settled = kassa("sandbox", "settle", "--all", tmp_path=tmp_path)
    assert settled.returncode == 0, settled.stderr
    row = Refund.objects.get(pk=refund["id"])
    assert json.loads(settled.stdout) == {"settled": [row.gateway_reference]}
    assert row.status == "succeeded"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refund_pending"] is False
    # The worker, coming later, finds the call made and calls nothing twice.
    assert kassa("worker", "--once", tmp_path=tmp_path).returncode == 0
    from kassa.gateways.models import SandboxRefund

    assert SandboxRefund.objects.count() == 1
    assert kassa("verify", tmp_path=tmp_path).returncode == 0


@pytest.mark.django_db(transaction=True)
def test_settle_by_id_makes_only_that_refunds_call(tenant, tmp_path):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    other = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    first = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": "25.00", "reason": "Family request"}).json()
    second = tenant.api.post(f"/payments/{other['id']}/refunds", {
        "type": "online", "amount": "5.00", "reason": "Family request"}).json()

    assert kassa("sandbox", "settle", first["id"], tmp_path=tmp_path).returncode == 0
    assert Refund.objects.get(pk=first["id"]).status == "succeeded"
    untouched = Refund.objects.get(pk=second["id"])
    assert (untouched.status, untouched.gateway_reference) == ("pending", "")


@pytest.mark.django_db(transaction=True)
def test_refunds_stuck_lists_what_needs_a_person_and_heal_lets_a_retry_through(tenant,
                                                                              tmp_path):
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True,
                         source="sandbox_refund_unreachable")
    refund = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": "25.00", "reason": "Family request"}).json()
    assert kassa("refunds", "stuck", tmp_path=tmp_path).stdout == '{"refunds": []}\n'
    Refund.objects.filter(pk=refund["id"]).update(attempts=7)  # all but the last attempt spent
    worker = kassa("worker", "--once", tmp_path=tmp_path)  # the last attempt fails: flagged
    assert worker.returncode == 0, worker.stderr

    listed = json.loads(kassa("refunds", "stuck", tmp_path=tmp_path).stdout)["refunds"]
    assert [(r["id"], r["total"], r["status"]) for r in listed] == [
        (refund["id"], "25.00", "pending")]
    assert "timed out" in listed[0]["last_error"]
    assert json.loads(kassa("refunds", "stuck", "--org", str(tenant.organization.pk),
                            tmp_path=tmp_path).stdout)["refunds"] == listed
    assert kassa("refunds", "stuck", "--org", "x", tmp_path=tmp_path).returncode == 2

    healed = kassa("sandbox", "heal", payment["id"], tmp_path=tmp_path)
    assert json.loads(healed.stdout) == {"payment": payment["id"], "healed": True}
    assert kassa("sandbox", "heal", "424242", tmp_path=tmp_path).returncode == 2
    assert tenant.api.post(f"/refunds/{refund['id']}/retry").status_code == 200
    assert kassa("sandbox", "settle", "--all", tmp_path=tmp_path).returncode == 0
    assert Refund.objects.get(pk=refund["id"]).status == "succeeded"
    assert kassa("verify", tmp_path=tmp_path).returncode == 0


@pytest.mark.django_db(transaction=True)
def test_sandbox_dispute_and_dashboard_refund_as_commands(tenant, tmp_path):
    from kassa.ledger.verify import verify
    from kassa.refunds.models import Dispute

    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    made = kassa("sandbox", "refund", payment["id"], "30.00", tmp_path=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["booked"] is True
    too_much = kassa("sandbox", "refund", payment["id"], "80.00", tmp_path=tmp_path)
    assert too_much.returncode == 2 and "at most $70.00" in too_much.stderr
    opened = kassa("sandbox", "dispute", payment["id"], "--amount", "20.00", tmp_path=tmp_path)
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["status"] == "needs_response"
    lost = kassa("sandbox", "dispute", payment["id"], "--outcome", "lost", tmp_path=tmp_path)
    assert json.loads(lost.stdout)["status"] == "lost"
    assert Dispute.objects.get().status == "lost"
    assert kassa("sandbox", "dispute", "999999", tmp_path=tmp_path).returncode == 2
    assert verify(tenant.organization) == []
