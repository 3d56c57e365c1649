"""Governed refunds (DESIGN.md, "Governed refunds"): the policy, refund requests, their
reservation, approval (re-checked, never by the requester), rejection, cancelling, expiry."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import time_machine
from django.core import mail

from conftest import outcome, race, run_tasks
from kassa.billing.models import Customer, Payment, PaymentEvent
from kassa.ledger.verify import verify
from kassa.packages.models import Package
from kassa.refunds import requests
from kassa.refunds.models import Refund, RefundRequest


@pytest.fixture
def paid(tenant):
    inv = tenant.invoice({"kind": "service", "description": "Service", "unit_price": "100.00",
                          "tax_rate": "0"})
    return inv, tenant.pay(inv["id"], "100.00", method="cash")


def ask(api, payment_id, amount="40.00", **body):
    body = {"type": "offline", "method": "cash", "reason": "Guest changed plans",
            "amount": amount, **body}
    return api.post(f"/payments/{payment_id}/refunds", body)


def test_front_desk_asks_and_the_amount_is_reserved_until_approved(tenant, paid):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    r = ask(desk, payment["id"])
    assert r.status_code == 202, r.content
    assert r.json()["status"] == "requested"
    request = r.json()["request"]
    assert request["kind"] == "payment" and request["target"] == payment["id"]
    assert request["amount"] == "40.00" and request["status"] == "open"
    assert not Refund.objects.exists()
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert shown["requested"] == "40.00" and shown["refundable"] == "60.00"
    # Reserved: the admin can refund only what the request leaves.
    r = ask(tenant.api, payment["id"], amount="60.01")
    assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_refundable"
    assert "60.00" in r.json()["detail"]
    # One open request per payment.
    r = ask(desk, payment["id"], amount="1.00")
    assert r.status_code == 409 and r.json()["code"] == "refund_request_open"
    # The requester sees their own; the admin the queue.
    assert [x["id"] for x in desk.get("/refund-requests?status=open").json()] == [request["id"]]
    r = tenant.api.post(f"/refund-requests/{request['id']}/approve", {})
    assert r.status_code == 200, r.content
    approved = r.json()
    assert approved["status"] == "approved" and len(approved["refunds"]) == 1
    refund = Refund.objects.get(pk=approved["refunds"][0])
    assert refund.amount_minor == 4000 and refund.created_by_id == tenant.admin.user_id
    assert Payment.objects.get(pk=payment["id"]).refundable_minor == 6000
    kinds = list(PaymentEvent.objects.filter(payment_id=payment["id"])
                 .values_list("kind", flat=True))
    assert "refund_requested" in kinds and "refund_request_approved" in kinds
    r = tenant.api.post(f"/refund-requests/{request['id']}/approve", {})
    assert r.status_code == 409 and r.json()["code"] == "request_not_open"
    run_tasks()
    assert any("Refund request" in m.subject for m in mail.outbox)
    assert verify() == []


def test_the_reserved_sum_follows_every_step_of_a_request_and_verify_holds_it(tenant, paid):
    """`requested` is the payment's stored figure: set when a request opens, released when it
    is approved, rejected, cancelled or expires; `kassa verify` agrees at every step."""
    _inv, payment = paid
    _, desk = tenant.user("front_desk")

    def requested():
        shown = tenant.api.get(f"/payments/{payment['id']}").json()
        assert Payment.objects.get(pk=payment["id"]).requested_minor == int(
            shown["requested"].replace(".", ""))
        assert verify() == []
        return shown["requested"], shown["refundable"]

    steps = [  # (decide, refundable after it)
        (lambda rid: tenant.api.post(f"/refund-requests/{rid}/reject", {"reason": "No"}),
         "100.00"),
        (lambda rid: desk.post(f"/refund-requests/{rid}/cancel", {}), "100.00"),
        (lambda rid: tenant.api.post(f"/refund-requests/{rid}/approve", {}), "90.00"),
    ]
    for decide, left in steps:
        rid = ask(desk, payment["id"], amount="10.00").json()["request"]["id"]
        assert requested() == ("10.00", "90.00")
        assert decide(rid).status_code == 200
        assert requested() == ("0.00", left)
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=8)):
        rid = ask(desk, payment["id"], amount="10.00").json()["request"]["id"]
        assert requested() == ("10.00", "80.00")
        with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=8)):
            assert requests.expire_requests() == 1
            assert requested() == ("0.00", "90.00")


def test_a_split_request_reserves_each_parts_payment(tenant, unchanged):
    inv = tenant.invoice()
    first = tenant.pay(inv["id"], "60.00")
    second = tenant.pay(inv["id"], "40.00")
    _, desk = tenant.user("front_desk")
    r = desk.post(f"/invoices/{inv['id']}/refunds", {"reason": "Service cut short", "parts": [
        {"payment": first["id"], "type": "offline", "method": "cash", "amount": "30.00"},
        {"payment": second["id"], "type": "offline", "method": "cash", "amount": "20.00"}]})
    assert r.status_code == 202, r.content
    rid = r.json()["request"]["id"]

    def shown(payment):
        got = tenant.api.get(f"/payments/{payment['id']}").json()
        return got["requested"], got["refundable"]

    assert (shown(first), shown(second)) == (("30.00", "30.00"), ("20.00", "20.00"))
    with unchanged():
        r = ask(desk, first["id"], amount="1.00")  # one open request per payment
        assert r.status_code == 409 and r.json()["code"] == "refund_request_open"
        r = ask(tenant.api, second["id"], amount="20.01")  # the reservation holds
        assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_refundable"
    assert verify() == []
    r = tenant.api.post(f"/refund-requests/{rid}/approve", {})
    assert r.status_code == 200 and len(r.json()["refunds"]) == 2
    assert (shown(first), shown(second)) == (("0.00", "30.00"), ("0.00", "20.00"))
    assert verify() == []


def test_a_package_request_reserves_the_package_balance(tenant, unchanged):
    tpl = tenant.api.post("/package-templates", {
        "name": "Five facials", "price": "500.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 5, "unit_value": "100.00"}]}).json()
    inv = tenant.invoice({"kind": "package", "description": "Five facials",
                          "package_template": tpl["id"]})
    tenant.pay(inv["id"], "500.00")
    pkg = inv["packages"][0]
    _, desk = tenant.user("front_desk")

    def refund(api, amount):
        return api.post(f"/packages/{pkg['id']}/refunds", {
            "amount": amount, "reason": "Moving away", "refund_to": {"method": "cash"}})

    r = refund(desk, "300.00")
    assert r.status_code == 202, r.content
    rid = r.json()["request"]["id"]
    assert Package.objects.get(pk=pkg["id"]).requested_minor == 30000
    assert tenant.api.get(f"/packages/{pkg['id']}").json()["requested"] == "300.00"
    with unchanged():
        r = refund(tenant.api, "250.00")  # 200.00 is left beside the 300.00 reserved
        assert r.status_code == 422 and r.json()["code"] == "package_refund_exceeds_balance"
        assert "$200.00" in r.json()["detail"]
        r = refund(desk, "10.00")
        assert r.status_code == 409 and r.json()["code"] == "refund_request_open"
    assert verify() == []
    assert tenant.api.post(f"/refund-requests/{rid}/reject",
                           {"reason": "Not our policy"}).status_code == 200
    assert Package.objects.get(pk=pkg["id"]).requested_minor == 0
    assert refund(tenant.api, "250.00").status_code == 201
    assert verify() == []


def test_a_credit_request_reserves_the_customers_credit(tenant, unchanged):
    guest = tenant.customer()
    assert tenant.api.post(f"/customers/{guest}/deposits", {
        "center": str(tenant.center_id), "amount": "80.00", "method": "cash"}
    ).status_code == 201
    _, desk = tenant.user("front_desk")

    def refund(api, amount):
        return api.post(f"/customers/{guest}/credit/refunds", {
            "amount": amount, "reason": "Deposit back", "refund_to": {"method": "cash"}})

    r = refund(desk, "50.00")
    assert r.status_code == 202, r.content
    rid = r.json()["request"]["id"]
    assert Customer.objects.get(pk=guest).requested_minor == 5000
    with unchanged():
        r = refund(tenant.api, "40.00")  # 30.00 is free beside the 50.00 reserved
        assert r.status_code == 422 and r.json()["code"] == "credit_insufficient"
        assert "$30.00" in r.json()["detail"]
        r = refund(desk, "40.00")
        assert r.status_code == 422 and r.json()["code"] == "credit_insufficient"
    assert verify() == []
    r = tenant.api.post(f"/refund-requests/{rid}/approve", {})
    assert r.status_code == 200, r.content
    customer = Customer.objects.get(pk=guest)
    assert (customer.requested_minor, customer.credit_minor) == (0, 3000)
    assert refund(tenant.api, "30.00").status_code == 201
    assert verify() == []


def test_self_approval_is_refused_first_and_a_non_approver_may_not(tenant, paid, unchanged):
    _inv, payment = paid
    admin_api = tenant.api
    assert admin_api.patch("/settings", {"approval_threshold": "10.00"}).status_code == 200
    r = ask(admin_api, payment["id"], amount="20.00")
    assert r.status_code == 202
    rid = r.json()["request"]["id"]
    _, desk = tenant.user("front_desk")
    with unchanged():
        r = admin_api.post(f"/refund-requests/{rid}/approve", {})
        assert r.status_code == 403 and r.json()["code"] == "self_approval_not_allowed"
        r = desk.post(f"/refund-requests/{rid}/approve", {})
        assert r.status_code in (403, 404)


def test_reject_needs_a_reason_and_releases_the_reservation(tenant, paid, unchanged):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    rid = ask(desk, payment["id"]).json()["request"]["id"]
    with unchanged():
        r = tenant.api.post(f"/refund-requests/{rid}/reject", {"reason": "  "})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = tenant.api.post(f"/refund-requests/{rid}/reject", {"reason": "Not our policy"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert r.json()["note"] == "Not our policy"
    assert ask(tenant.api, payment["id"], amount="100.00").status_code == 201


def test_only_the_requester_cancels(tenant, paid):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    _, other = tenant.user("front_desk")
    rid = ask(desk, payment["id"]).json()["request"]["id"]
    assert other.post(f"/refund-requests/{rid}/cancel", {}).status_code in (403, 404)
    r = desk.post(f"/refund-requests/{rid}/cancel", {})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


def test_approval_rechecks_the_rules_and_leaves_the_request_open(tenant, paid):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    rid = ask(desk, payment["id"], amount="40.00").json()["request"]["id"]
    # Codes configured after the request: the approval now breaks the rule.
    codes = [{"code": "dup", "label": "Duplicate charge", "note_required": False}]
    assert tenant.api.patch("/settings", {"reason_codes": codes}).status_code == 200
    r = tenant.api.post(f"/refund-requests/{rid}/approve", {})
    assert r.status_code == 422 and r.json()["code"] == "reason_code_required"
    assert RefundRequest.objects.get(pk=rid).status == "open"
    assert not Refund.objects.exists()


def test_approval_rechecks_the_approvers_own_daily_limit(tenant, paid, unchanged):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    assert tenant.api.patch("/settings", {"daily_refund_limit": {"admin": "50.00"}}
                            ).status_code == 200
    assert ask(tenant.api, payment["id"], amount="20.00").status_code == 201  # 20 of 50 today
    rid = ask(desk, payment["id"], amount="40.00").json()["request"]["id"]
    with unchanged():
        r = tenant.api.post(f"/refund-requests/{rid}/approve", {})
        assert r.status_code == 422 and r.json()["code"] == "refund_limit_exceeded"
        assert "past your daily refund limit of $50.00" in r.json()["detail"]
    assert tenant.api.get(f"/refund-requests/{rid}").json()["status"] == "open"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["requested"] == "40.00"
    # Another admin, with today's limit untouched, approves it.
    _, other = tenant.user("admin")
    r = other.post(f"/refund-requests/{rid}/approve", {})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 2


def test_expiry_releases_the_reservation(tenant, paid):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    assert tenant.api.patch("/settings", {"request_expiry_days": 2}).status_code == 200
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC), tick=False):
        rid = ask(desk, payment["id"]).json()["request"]["id"]
    with time_machine.travel(dt.datetime(2026, 3, 4, 11, tzinfo=dt.UTC), tick=False):
        assert requests.expire_requests() == 0
    with time_machine.travel(dt.datetime(2026, 3, 4, 12, tzinfo=dt.UTC), tick=False):
        assert requests.expire_requests() == 1
    assert RefundRequest.objects.get(pk=rid).status == "expired"
    assert ask(tenant.api, payment["id"], amount="100.00").status_code == 201


def test_policy_rules_on_the_direct_path(tenant, paid, unchanged):
    _inv, payment = paid
    codes = [{"code": "dup", "label": "Duplicate charge", "note_required": False},
             {"code": "other", "label": "Other", "note_required": True}]
    assert tenant.api.patch("/settings", {"reason_codes": codes}).status_code == 200
    with unchanged():
        r = ask(tenant.api, payment["id"])
        assert r.status_code == 422 and r.json()["code"] == "reason_code_required"
        r = ask(tenant.api, payment["id"], reason_code="nope")
        assert r.status_code == 422 and r.json()["code"] == "unknown_reason_code"
        r = ask(tenant.api, payment["id"], reason_code="other")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "internal_note"
    assert ask(tenant.api, payment["id"], reason_code="dup").status_code == 201


def test_online_refund_window(tenant, unchanged):
    inv = tenant.invoice()
    with time_machine.travel(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC), tick=False):
        payment = tenant.pay(inv["id"], "50.00", method="card", online=True)
    assert tenant.api.patch("/settings", {"online_refund_window_days": 30}).status_code == 200
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), tick=False):
        with unchanged():
            r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                                {"type": "online", "amount": "5.00", "reason": "Late"})
            assert r.status_code == 422 and r.json()["code"] == "refund_window_closed"
        r = ask(tenant.api, payment["id"], amount="5.00", method="check")
        assert r.status_code == 201, r.content


def test_daily_limit_requests_when_someone_can_approve_else_refuses(tenant, paid, unchanged):
    _inv, payment = paid
    assert tenant.api.patch("/settings", {"daily_refund_limit": {"admin": "50.00"}}
                            ).status_code == 200
    assert ask(tenant.api, payment["id"], amount="30.00").status_code == 201
    with unchanged():
        r = ask(tenant.api, payment["id"], amount="30.00")
        assert r.status_code == 422 and r.json()["code"] == "refund_limit_exceeded"
    tenant.user("admin")
    assert ask(tenant.api, payment["id"], amount="30.00").status_code == 202


@pytest.mark.parametrize("patch,field", [
    ({"approval_threshold": "-1"}, "approval_threshold"),
    ({"approval_threshold": "1.234"}, "approval_threshold"),
    ({"request_roles": ["boss"]}, "request_roles"),
    ({"approver_roles": []}, "approver_roles"),
    ({"approver_roles": ["accountant"]}, "approver_roles"),
    ({"daily_refund_limit": {"boss": "1.00"}}, "daily_refund_limit"),
    ({"daily_refund_limit": {"admin": "abc"}}, "daily_refund_limit.admin"),
    ({"online_refund_window_days": 0}, "online_refund_window_days"),
    ({"request_expiry_days": 0}, "request_expiry_days"),
    ({"reason_codes": [{"code": "", "label": "x"}]}, "reason_codes[0].code"),
    ({"reason_codes": [{"code": "a", "label": ""}]}, "reason_codes[0].label"),
    ({"reason_codes": [{"code": "a", "label": "A"}, {"code": "a", "label": "B"}]},
     "reason_codes[1].code"),
])
def test_bad_policy_is_refused_naming_the_field(tenant, unchanged, patch, field):
    with unchanged():
        r = tenant.api.patch("/settings", {"currency": "EUR", **patch})
        assert r.status_code == 422, r.content
        assert field in str(r.json()), r.json()


def test_policy_round_trips(tenant):
    r = tenant.api.patch("/settings", {"approval_threshold": "250.00",
                                        "daily_refund_limit": {"front_desk": "100"},
                                        "online_refund_window_days": 90})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["approval_threshold"] == "250.00"
    assert body["daily_refund_limit"] == {"front_desk": "100.00"}
    assert body["request_roles"] == ["front_desk"] and body["approver_roles"] == ["admin"]
    assert body["request_expiry_days"] == 7
    r = tenant.api.patch("/settings", {"approval_threshold": None})
    assert r.json()["approval_threshold"] is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_make_exactly_one_refund(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    _, desk = tenant.user("front_desk")
    rid = ask(desk, payment["id"]).json()["request"]["id"]
    second, _ = tenant.user("admin")
    approvers = [tenant.admin, second]
    results = race(2, lambda i: requests.approve(actor=approvers[i], request=rid))
    assert Counter(outcome(r) for r in results) == {"ok": 1, "request_not_open": 1}
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 1
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_approval_racing_a_direct_refund_never_exceeds_the_refundable(tenant):
    from kassa.refunds.services import refund_payment

    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    _, desk = tenant.user("front_desk")
    rid = ask(desk, payment["id"], amount="70.00").json()["request"]["id"]

    def work(i):
        if i == 0:
            return requests.approve(actor=tenant.admin, request=rid)
        return refund_payment(actor=tenant.admin, payment=payment["id"], type="offline",
                              amount="70.00", reason="direct", method="cash")

    for _ in range(3):
        results = race(2, work)
        counts = Counter(outcome(r) for r in results)
        # The reservation holds: the direct refund of 70 never fits beside the 70 reserved.
        assert outcome(results[1]) == "refund_exceeds_refundable", counts
        break
    p = Payment.objects.get(pk=payment["id"])
    assert p.refunded_minor <= p.amount_minor
    assert p.refunded_minor == 7000
    assert verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_split_approval_racing_a_direct_refund_of_its_part_never_takes_the_reserve(tenant):
    from kassa.refunds.services import refund_payment

    inv = tenant.invoice()
    first = tenant.pay(inv["id"], "60.00")
    second = tenant.pay(inv["id"], "40.00")
    _, desk = tenant.user("front_desk")
    rid = desk.post(f"/invoices/{inv['id']}/refunds", {"reason": "Cut short", "parts": [
        {"payment": first["id"], "type": "offline", "method": "cash", "amount": "50.00"},
        {"payment": second["id"], "type": "offline", "method": "cash", "amount": "30.00"}]}
    ).json()["request"]["id"]

    def work(i):
        if i == 0:
            return requests.approve(actor=tenant.admin, request=rid)
        return refund_payment(actor=tenant.admin, payment=second["id"], type="offline",
                              amount="30.00", reason="direct", method="cash")

    results = race(2, work)
    # Reserved while the request was open, refunded once it was approved: the direct refund
    # of 30 never fits.
    assert outcome(results[0]) == "ok"
    assert outcome(results[1]) == "refund_exceeds_refundable"
    p = Payment.objects.get(pk=second["id"])
    assert (p.refunded_minor, p.requested_minor) == (3000, 0)
    assert verify() == []


def test_every_step_of_a_request_is_in_the_audit_log(tenant, paid):
    _inv, payment = paid
    desk_member, desk = tenant.user("front_desk")
    first = ask(desk, payment["id"]).json()["request"]
    assert tenant.api.post(f"/refund-requests/{first['id']}/approve", {}).status_code == 200
    second = ask(desk, payment["id"], amount="10.00").json()["request"]
    assert tenant.api.post(f"/refund-requests/{second['id']}/reject",
                           {"reason": "Not our policy"}).status_code == 200

    def trail(request_id):
        rows = tenant.api.get("/audit", object=f"refund_request:{request_id}").json()
        return sorted((row["action"], row["actor"]) for row in rows)

    admin = str(tenant.admin.user_id)
    desk_id = str(desk_member.user_id)
    assert trail(first["id"]) == sorted([("refund_request.created", desk_id),
                                         ("refund_request.approved", admin)])
    assert trail(second["id"]) == sorted([("refund_request.created", desk_id),
                                          ("refund_request.rejected", admin)])
    assert verify() == []
