"""Every event Kassa announces today, where its change is made, with `data.object` as the API
answers for that object at that moment (so the webhook and the API never drift apart)."""

from __future__ import annotations

import pytest

from conftest import run_tasks
from kassa.billing.sandbox import decide
from kassa.refunds.sandbox import settle
from kassa.webhooks.models import EventType
from kassa.webhooks.tests.receiver import add_endpoint, receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_allowed")]

ANNOUNCED_TODAY = ["payment.succeeded", "payment.failed", "refund.created", "refund.succeeded",
                   "refund.failed", "package.refunded"]


def events_of(hook, type_):
    return [e["data"]["object"] for e in hook.events() if e["type"] == type_]


def test_online_payments_and_refunds_announce_each_step(tenant):
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ANNOUNCED_TODAY)
        inv = tenant.invoice()
        card = tenant.pay(inv["id"], "60.00", method="card", online=True)
        declined = tenant.api.post(f"/invoices/{inv['id']}/payments", {
            "amount": "10.00", "method": "card", "online": True, "source": "sandbox_declined"})
        assert declined.status_code == 402
        failing = tenant.pay(inv["id"], "30.00", method="card", online=True,
                             source="sandbox_refund_fails")
        ok = tenant.api.post(f"/payments/{card['id']}/refunds", {
            "type": "online", "amount": "20.00", "reason": "Asked"}).json()
        doomed = tenant.api.post(f"/payments/{failing['id']}/refunds", {
            "type": "online", "amount": "5.00", "reason": "Asked"}).json()
        settle(refund_ids=[ok["id"], doomed["id"]], everything=False)
        run_tasks()

    succeeded = events_of(hook, "payment.succeeded")
    assert [p["id"] for p in succeeded] == [card["id"], failing["id"]]
    assert succeeded[0] == card and succeeded[0]["status"] == "succeeded"
    [failed] = events_of(hook, "payment.failed")
    assert failed["status"] == "declined" and failed["amount"] == "10.00"
    assert [r["id"] for r in events_of(hook, "refund.created")] == [ok["id"], doomed["id"]]
    assert events_of(hook, "refund.created")[0] == ok and ok["status"] == "pending"
    [settled] = events_of(hook, "refund.succeeded")
    assert settled == tenant.api.get(f"/refunds/{ok['id']}").json()
    assert settled["status"] == "succeeded"
    [gone] = events_of(hook, "refund.failed")
    assert gone == tenant.api.get(f"/refunds/{doomed['id']}").json()
    assert gone["status"] == "failed"


def test_a_processing_payment_is_announced_when_it_is_decided(tenant):
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["payment.succeeded", "payment.failed"])
        inv = tenant.invoice()
        later = tenant.pay(inv["id"], "40.00", method="ach", online=True,
                           source="sandbox_processing")
        never = tenant.pay(inv["id"], "10.00", method="ach", online=True,
                           source="sandbox_processing")
        run_tasks()
        assert hook.requests == []  # processing: nothing decided yet
        decide(payment_id=later["id"], outcome="succeeded")
        decide(payment_id=never["id"], outcome="failed")
        run_tasks()
    assert [(e["type"], e["data"]["object"]["id"], e["data"]["object"]["status"])
            for e in hook.events()] == [("payment.succeeded", later["id"], "succeeded"),
                                        ("payment.failed", never["id"], "failed")]


def test_a_package_refund_announces_the_refund_and_the_package(tenant):
    template = tenant.api.post("/package-templates", {
        "name": "Five facials", "price": "500.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 5, "unit_value": "100.00"}]}).json()
    inv = tenant.invoice({"kind": "package", "description": "Five facials",
                          "package_template": template["id"]})
    tenant.pay(inv["id"], "500.00")
    package = inv["packages"][0]
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["refund.created", "package.refunded"])
        made = tenant.api.post(f"/packages/{package['id']}/refunds", {
            "amount": "150.00", "reason": "Moving away", "close_package": False,
            "refund_to": {"method": "cash"}}).json()
        run_tasks()
    assert [e["type"] for e in hook.events()] == ["refund.created", "package.refunded"]
    assert events_of(hook, "refund.created") == [made]
    [pkg] = events_of(hook, "package.refunded")
    assert pkg == tenant.api.get(f"/packages/{package['id']}").json()
    assert (pkg["refunded"], pkg["balance"]) == ("150.00", "350.00")


def test_every_designed_type_can_be_listened_for():
    """The later features (disputes, credit, approvals) emit the rest: the names are there."""
    assert set(EventType.values) == {
        *ANNOUNCED_TODAY, "dispute.created", "dispute.closed", "credit.changed",
        "refund_request.created", "refund_request.decided"}


def test_every_movement_of_a_customers_credit_is_announced(tenant):
    guest = tenant.customer()
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["credit.changed", "payment.succeeded"])
        deposit = tenant.api.post(f"/customers/{guest}/deposits", {
            "center": tenant.center_id, "amount": "50.00", "method": "cash"}).json()
        inv = tenant.invoice(customer=guest)
        tenant.api.post(f"/invoices/{inv['id']}/payments", {"amount": "20.00",
                                                             "method": "credit"})
        run_tasks()
    changes = events_of(hook, "credit.changed")
    entries = tenant.api.get(f"/customers/{guest}/credit").json()["entries"]
    assert [c["entry"] for c in changes] == entries
    assert [c["balance"] for c in changes] == ["50.00", "30.00"]
    assert deposit in events_of(hook, "payment.succeeded")


def test_disputes_are_announced_opened_and_closed(tenant):
    from kassa.refunds import sandbox

    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["dispute.created", "dispute.closed"])
        opened = sandbox.dispute(payment_id=card["id"], amount="40.00", outcome=None)
        sandbox.dispute(payment_id=card["id"], amount=None, outcome="won")
        run_tasks()
    [created] = events_of(hook, "dispute.created")
    [closed] = events_of(hook, "dispute.closed")
    assert (created["id"], created["status"], created["amount"]) == (
        opened["dispute"], "needs_response", "40.00")
    assert closed == tenant.api.get(f"/disputes/{opened['dispute']}").json()
    assert closed["status"] == "won"
