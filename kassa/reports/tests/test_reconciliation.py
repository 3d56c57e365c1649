"""Reconciliation through the sandbox: the processor's balance lines of a day matched to
Kassa's payments, refunds and disputes, over the API (JSON and CSV) and `kassa verify
--gateway` as a process."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import run_tasks
from kassa.gateways.models import SandboxBalanceTransaction, SandboxRefund
from kassa.gateways.sandbox_balance import payout
from kassa.ledger.verify import verify
from kassa.refunds import sandbox
from kassa.refunds.models import Dispute, Refund
from kassa.refunds.sandbox import settle
from kassa.reports import reconciliation
from kassa.tests.test_cli_sandbox import kassa


def card_payment(tenant, amount="100.00", source="sandbox_ok"):
    inv = tenant.invoice({"kind": "service", "description": "Service", "unit_price": amount})
    return tenant.pay(inv["id"], amount, method="card", online=True, source=source)


def online_refund(tenant, payment, amount):
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": amount, "reason": "Family request"})
    assert r.status_code == 201, r.json()
    return r.json()


def report(tenant, **query):
    r = tenant.api.get("/reports/reconciliation", **query)
    assert r.status_code == 200, r.json()
    return r.json()


def a_busy_day(tenant):
    """Charges, a refund that succeeds, one that fails, a dispute (with its fee) that is won,
    a refund made at the processor and booked, and a payout."""
    first = card_payment(tenant, "100.00")
    second = card_payment(tenant, "250.00", source="sandbox_refund_fails")
    third = card_payment(tenant, "80.00")
    ok = online_refund(tenant, first, "30.00")
    failing = online_refund(tenant, second, "50.00")
    run_tasks()
    settle(refund_ids=[], everything=True)
    assert Refund.objects.get(pk=ok["id"]).status == "succeeded"
    assert Refund.objects.get(pk=failing["id"]).status == "failed"
    sandbox.dispute(payment_id=third["id"], amount=None, outcome=None)
    sandbox.dispute(payment_id=third["id"], amount=None, outcome="won")
    made = sandbox.gateway_refund(payment_id=first["id"], amount="20.00")
    assert made["booked"] is True
    paid = payout(tenant.organization.pk)
    assert paid is not None
    return first, second, third, ok, failing, made, paid


def test_a_day_of_charges_refunds_a_failed_refund_a_dispute_and_a_payout_all_matches(tenant):
    first, second, third, ok, failing, made, paid = a_busy_day(tenant)

    day = report(tenant)
    dispute = str(Dispute.objects.get(payment_id=third["id"]).pk)
    by = [(line["type"], line["amount"], line["kassa"] and (line["kassa"]["object"],
                                                             line["kassa"]["id"]),
           line["status"]) for line in day["lines"]]
    assert by == [
        ("charge", "100.00", ("payment", first["id"]), "matched"),
        ("charge", "250.00", ("payment", second["id"]), "matched"),
        ("charge", "80.00", ("payment", third["id"]), "matched"),
        ("refund", "-30.00", ("refund", ok["id"]), "matched"),
        ("refund", "-50.00", ("refund", failing["id"]), "matched"),
        ("refund_failure", "50.00", ("refund", failing["id"]), "matched"),
        ("dispute", "-80.00", ("dispute", dispute), "matched"),
        ("fee", "-15.00", ("dispute", dispute), "matched"),
        ("dispute_reversal", "80.00", ("dispute", dispute), "matched"),
        ("refund", "-20.00", ("refund", made["refund"]), "matched"),
        ("payout", "-365.00", None, "matched"),
    ]
    assert day["date"] and day["gateway"] == "sandbox"
    assert day["totals"] == {
        "by_type": {"charge": "430.00", "refund": "-100.00", "refund_failure": "50.00",
                    "dispute": "-80.00", "dispute_reversal": "80.00", "fee": "-15.00",
                    "payout": "-365.00"},
        "net": "0.00",
        "count": {"matched": 11, "missing_in_kassa": 0, "missing_at_gateway": 0,
                  "amount_mismatch": 0},
    }
    assert day["lines"][-1]["gateway_id"].startswith("txn_")
    assert day["lines"][-1]["source"] == paid.source
    assert verify(tenant.organization) == []
    assert reconciliation.exceptions(
        reconciliation.reconcile(tenant.organization, reconciliation.today_of(
            tenant.organization))) == []


def test_a_refund_made_at_the_processor_larger_than_refundable_is_reported(tenant, unchanged):
    payment = card_payment(tenant, "100.00")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "80.00", "reason": "Family request"})
    assert r.status_code == 201
    made = sandbox.gateway_refund(payment_id=payment["id"], amount="50.00")
    assert made["booked"] is False

    lines = report(tenant)["lines"]
    assert [(line["type"], line["amount"], line["status"]) for line in lines] == [
        ("charge", "100.00", "matched"),
        ("refund", "-50.00", "missing_in_kassa"),
    ]
    assert lines[1]["gateway_id"].startswith("txn_") and lines[1]["source"] == made["gateway_id"]
    assert lines[1]["kassa"] is None
    assert verify(tenant.organization) == []  # the books are right; the processor disagrees


def test_what_kassa_has_and_the_gateway_lost_and_amounts_that_differ_are_named(tenant):
    payment = card_payment(tenant, "100.00")
    refund = online_refund(tenant, payment, "10.00")
    run_tasks()
    row = Refund.objects.get(pk=refund["id"])
    # The processor's side, as a processor whose records disagree with ours would have them.
    SandboxBalanceTransaction.objects.filter(source=row.gateway_reference).delete()
    SandboxBalanceTransaction.objects.filter(type="charge").update(amount_minor=9000)

    lines = report(tenant)["lines"]
    assert [(line["type"], line["amount"], line["status"], line["kassa"]) for line in lines] == [
        ("charge", "90.00", "amount_mismatch",
         {"object": "payment", "id": payment["id"], "amount": "100.00"}),
        ("refund", "-10.00", "missing_at_gateway",
         {"object": "refund", "id": refund["id"], "amount": "-10.00"}),
    ]
    assert lines[1]["gateway_id"] is None and lines[1]["source"] == row.gateway_reference


def test_a_refund_kassa_holds_as_made_that_failed_at_the_processor_is_named(tenant):
    payment = card_payment(tenant, "100.00")
    refund = online_refund(tenant, payment, "10.00")
    run_tasks()
    row = Refund.objects.get(pk=refund["id"])
    # The processor failed it, and Kassa has not heard yet.
    failed = SandboxRefund.objects.get(reference=row.gateway_reference)
    SandboxRefund.objects.filter(pk=failed.pk).update(state="failed")
    SandboxBalanceTransaction.objects.create(
        organization=tenant.organization, reference="txn_failed_elsewhere",
        type="refund_failure", amount_minor=1000, currency="USD", source=failed.reference,
        charge_reference=failed.charge.reference)
    lines = report(tenant)["lines"]
    assert lines[-1] == {"gateway_id": "txn_failed_elsewhere", "type": "refund_failure",
                         "amount": "10.00", "kassa": None, "status": "missing_in_kassa",
                         "source": failed.reference}


def test_the_report_as_csv_and_who_may_read_it(tenant, other_tenant):
    card_payment(tenant, "100.00")
    r = tenant.api.get("/reports/reconciliation", format="csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == reconciliation_columns()
    assert rows[1][1:5] == ["charge", "100.00", "matched", "payment"]
    assert ["total", "net", "100.00", "", "", "", "", ""] in rows

    _, desk = tenant.user("front_desk")
    denied = desk.get("/reports/reconciliation")
    assert denied.status_code == 403
    _, accountant = tenant.user("accountant")
    assert accountant.get("/reports/reconciliation").status_code == 200
    # Another organization's processor lines are its own.
    assert report(other_tenant)["lines"] == []
    bad = tenant.api.get("/reports/reconciliation", date="2026-13-01")
    assert bad.status_code == 422 and "date" in json.dumps(bad.json())
    ancient = tenant.api.get("/reports/reconciliation", date="0001-01-01")
    assert ancient.status_code == 422
    assert [e["field"] for e in ancient.json()["errors"]] == ["date"]
    assert "1970-01-02" in ancient.json()["errors"][0]["message"]


def reconciliation_columns():
    from kassa.reports.presenters import RECONCILIATION_COLUMNS

    return RECONCILIATION_COLUMNS


@pytest.mark.django_db(transaction=True)
def test_verify_gateway_as_a_process_names_every_line_not_matched(tenant, tmp_path):
    payment = card_payment(tenant, "100.00")
    done = kassa("verify", "--gateway", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every gateway line matched (1 lines)" in done.stdout

    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "90.00", "reason": "Family request"})
    assert r.status_code == 201
    made = sandbox.gateway_refund(payment_id=payment["id"], amount="40.00")
    assert made["booked"] is False
    day = reconciliation.today_of(tenant.organization).isoformat()
    found = kassa("verify", "--gateway", "--date", day, "--org", str(tenant.organization.pk),
                  tmp_path=tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    assert (f"refund {found.stdout.split('refund ')[1].split()[0]} -40.00: missing_in_kassa"
            in found.stdout)
    assert "1 gateway lines not matched" in found.stdout
    other_day = kassa("verify", "--gateway", "--date", "2020-01-01", tmp_path=tmp_path)
    assert other_day.returncode == 0 and "(0 lines)" in other_day.stdout
    misuse = kassa("verify", "--date", day, tmp_path=tmp_path)
    assert misuse.returncode == 2 and "--gateway" in misuse.stderr

    paid = kassa("sandbox", "payout", tmp_path=tmp_path)
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["payouts"][0]["amount"] == "60.00"
    assert json.loads(kassa("sandbox", "payout", tmp_path=tmp_path).stdout) == {"payouts": []}


def test_a_taxed_package_refund_to_the_card_matches_with_its_tax(tenant):
    from kassa.packages.tests.test_package_refunds_api import refund, sell, template

    inv, pkg = sell(tenant, template(tenant, price="100.00", tax_rate="8.875"))
    payment = tenant.pay(inv["id"], inv["total"], method="card", online=True)
    r = refund(tenant, pkg, "50.00", payment=payment["id"])
    assert r.status_code == 201, r.content
    run_tasks()
    row = Refund.objects.get(pk=r.json()["id"])
    assert row.tax_minor > 0
    lines = reconciliation.reconcile(tenant.organization,
                                     reconciliation.today_of(tenant.organization))
    assert [(line.type, line.amount_minor, line.status) for line in lines] == [
        ("charge", 10888, "matched"), ("refund", -row.total_minor, "matched")]


def test_a_charge_the_bank_decides_days_later_is_found_on_its_own_day(tenant):
    import datetime as dt

    from kassa.billing.models import Payment
    from kassa.billing.sandbox import decide

    payment = card_payment(tenant, "100.00", source="sandbox_processing")
    # Recorded three days ago; the bank decides today (the processor's line is today's).
    Payment.objects.filter(pk=payment["id"]).update(
        created_at=Payment.objects.get(pk=payment["id"]).created_at - dt.timedelta(days=3))
    decide(payment_id=payment["id"], outcome="succeeded")
    today = reconciliation.today_of(tenant.organization)
    then = reconciliation.reconcile(tenant.organization, today - dt.timedelta(days=3))
    assert then == []  # Kassa's payment of that day is at the processor, on another day
    now = reconciliation.reconcile(tenant.organization, today)
    assert [(line.type, line.status) for line in now] == [("charge", "matched")]


def test_two_organizations_each_see_their_own_processor_account(tenant, other_tenant):
    mine = card_payment(tenant, "100.00")
    theirs = card_payment(other_tenant, "70.00")
    online_refund(other_tenant, theirs, "20.00")
    run_tasks()
    assert [(line["type"], line["amount"], line["status"]) for line in report(tenant)["lines"]
            ] == [("charge", "100.00", "matched")]
    assert [(line["type"], line["amount"], line["status"])
            for line in report(other_tenant)["lines"]] == [
        ("charge", "70.00", "matched"), ("refund", "-20.00", "matched")]
    assert report(tenant)["lines"][0]["kassa"]["id"] == mine["id"]


def test_a_line_just_past_midnight_belongs_to_the_next_business_day(tenant):
    import datetime as dt

    payment = card_payment(tenant, "100.00")
    today = reconciliation.today_of(tenant.organization)
    _, midnight = reconciliation.day_bounds(tenant.organization, today)
    # The processor wrote its line a minute into tomorrow.
    SandboxBalanceTransaction.objects.update(created_at=midnight + dt.timedelta(minutes=1))
    assert reconciliation.reconcile(tenant.organization, today) == []
    tomorrow = reconciliation.reconcile(tenant.organization, today + dt.timedelta(days=1))
    assert [(line.type, line.kassa and line.kassa.id, line.status) for line in tomorrow] == [
        ("charge", int(payment["id"]), "matched")]
