"""`/approvals/` in Chromium: the front desk's request waits in the admin's queue and is
approved there (the refund is made); the front desk sees their own requests and cancels one."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from kassa.refunds.models import Refund, RefundRequest
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.django_db(transaction=True)]


def requested(tenant, desk_api, amount="40.00"):
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    r = desk_api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": amount, "reason": "Family request"})
    assert r.status_code == 202, r.content
    return payment, r.json()["request"]


@pytest.mark.browser
def test_admin_approves_a_front_desk_request_in_the_queue(page, tenant):
    _, desk = tenant.user("front_desk")
    payment, request = requested(tenant, desk)
    sign_in(page, tenant.admin.user.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    page.wait_for_url("**/approvals/")
    card = page.get_by_role("region", name=f"Request #{request['id']} · $40.00 · Open")
    expect(card).to_contain_text("Family request")
    screenshot(page, "approvals")
    card.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"Refund request {request['id']}")
    expect(page.get_by_test_id("nothing")).to_be_visible()
    assert RefundRequest.objects.get(pk=request["id"]).status == "approved"
    assert Refund.objects.filter(payment_id=payment["id"], amount_minor=4000).count() == 1


@pytest.mark.browser
def test_front_desk_sees_and_cancels_their_own_request(page, tenant, live_server):
    desk_member, desk = tenant.user("front_desk")
    _, request = requested(tenant, desk)
    sign_in(page, desk_member.user.email)
    page.goto(f"{live_server.url}/approvals/")
    card = page.get_by_role("region", name=f"Request #{request['id']} · $40.00 · Open")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    card.get_by_role("button", name="Cancel request").click()
    expect(page.get_by_role("status")).to_contain_text("cancelled")
    assert RefundRequest.objects.get(pk=request["id"]).status == "cancelled"


def test_the_queue_previews_what_each_approval_would_do_and_changes_nothing(tenant, unchanged):
    _, desk = tenant.user("front_desk")
    payment, request = requested(tenant, desk)
    second = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    assert desk.post(f"/payments/{second['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "10.00", "reason": "Other"}
    ).status_code == 202
    invoice = tenant.api.get(f"/payments/{payment['id']}").json()["invoice"]
    number = tenant.api.get(f"/invoices/{invoice}").json()["number"]
    client = Client()
    client.force_login(tenant.admin.user)
    with unchanged():
        html = client.get("/approvals/").content.decode()
    (first,) = [card for card in html.split("<section ")
                if f'id="request-{request["id"]}"' in card]
    assert "Approving it will" in first
    row = '<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>'
    assert row.format("Accounts receivable", "$40.00", "") in first
    assert row.format("Cash", "", "$40.00") in first
    assert "Tax going back: $0.00." in first
    assert f"Payment #{payment['id']}: $60.00 still refundable" in first
    assert f"Invoice {number}: balance due $40.00" in first
    # A rule that would break now is said before anyone presses Approve.
    codes = [{"code": "dup", "label": "Duplicate charge", "note_required": False}]
    assert tenant.api.patch("/settings", {"reason_codes": codes}).status_code == 200
    with unchanged():
        html = client.get("/approvals/").content.decode()
    assert html.count("Approving it now would be refused: Choose a reason code") == 2
    assert RefundRequest.objects.filter(status="open").count() == 2
    assert not Refund.objects.exists()


def test_a_rejection_without_a_reason_is_refused_and_the_request_stays_open(tenant):
    _, desk = tenant.user("front_desk")
    _, request = requested(tenant, desk)
    client = Client()
    client.force_login(tenant.admin.user)
    r = client.post(f"/approvals/{request['id']}/reject", {"reason": ""}, follow=True)
    assert "reason" in r.content.decode().lower()
    assert RefundRequest.objects.get(pk=request["id"]).status == "open"
    r = client.post(f"/approvals/{request['id']}/reject", {"reason": "Not policy"})
    assert RefundRequest.objects.get(pk=request["id"]).status == "rejected"


@pytest.mark.browser
def test_front_desk_requests_a_refund_from_the_payment_page(page, tenant, live_server):
    desk_member, _ = tenant.user("front_desk")
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    sign_in(page, desk_member.user.email)
    page.goto(f"{live_server.url}/payments/{payment['id']}/")
    page.get_by_label("Amount to refund").fill("25.00")
    page.get_by_label("Give back by").select_option("cash")
    page.get_by_label("Reason").fill("Guest unhappy")
    page.get_by_role("button", name="Request refund").click()
    page.wait_for_url("**/approvals/")
    expect(page.get_by_role("status")).to_contain_text("sent for approval")
    found = RefundRequest.objects.get()
    assert (found.amount_minor, found.status, found.payment_id) == (2500, "open",
                                                                     int(payment["id"]))
    assert not Refund.objects.exists()
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["requested"], shown["refundable"]) == ("25.00", "75.00")
