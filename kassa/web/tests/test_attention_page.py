"""`/attention/` in Chromium, as an admin uses it: a stuck refund is listed with its payment and
what went wrong, and resolved as paid by check; the API then says so. Other roles get a 403 and
their posts change nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from kassa.refunds.models import Refund
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.django_db(transaction=True)]


def stuck_refund(tenant):
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "online", "amount": "40.00", "reason": "Family request"})
    assert r.status_code == 201, r.content
    # Every attempt spent (as the worker leaves it when the gateway stays down).
    Refund.objects.filter(pk=r.json()["id"]).update(
        gateway_state="stuck", attempts=8, last_error="the gateway timed out")
    return payment, r.json()


@pytest.mark.browser
def test_admin_resolves_a_stuck_refund_as_paid_by_check(page, tenant):
    payment, refund = stuck_refund(tenant)
    sign_in(page, tenant.admin.user.email)
    page.get_by_role("navigation", name="Main").get_by_role("link",
                                                            name="Needs attention").click()
    page.wait_for_url("**/attention/")
    card = page.get_by_role("region", name=f"Refund #{refund['id']} · $40.00")
    expect(card).to_contain_text("the gateway timed out")
    expect(card).to_contain_text(f"payment #{payment['id']} by card")
    card.get_by_label("I gave the money back another way").check()
    card.get_by_label("Paid by").select_option("check")
    card.get_by_label("Note").fill("Check #1042")
    screenshot(page, "attention")
    card.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("status")).to_contain_text(f"Refund {refund['id']} is Recorded now")
    expect(page.get_by_test_id("nothing")).to_be_visible()
    answer = tenant.api.get(f"/refunds/{refund['id']}").json()
    assert (answer["status"], answer["method"], answer["needs_attention"]) == (
        "recorded", "check", False)


def test_a_refused_resolution_shows_its_message_beside_the_field(tenant):
    _, refund = stuck_refund(tenant)
    client = Client()
    client.force_login(tenant.admin.user)
    r = client.post(f"/attention/refunds/{refund['id']}/resolve", {
        f"r{refund['id']}-action": "paid_another_way", f"r{refund['id']}-method": "other"})
    assert r.status_code == 422
    assert "A note is required when the method is other" in r.content.decode()
    assert Refund.objects.get(pk=refund["id"]).gateway_state == "stuck"


def test_other_roles_get_a_403_and_change_nothing(tenant):
    _, refund = stuck_refund(tenant)
    desk, _ = tenant.user("front_desk")
    client = Client()
    client.force_login(desk.user)
    assert client.get("/attention/").status_code == 403
    assert client.post(f"/attention/refunds/{refund['id']}/retry").status_code == 403
    assert client.post(f"/attention/refunds/{refund['id']}/resolve", {
        f"r{refund['id']}-action": "accept_gateway"}).status_code == 403
    row = Refund.objects.get(pk=refund["id"])
    assert (row.gateway_state, row.status, row.attempts) == ("stuck", "pending", 8)


def test_retry_from_the_page_puts_the_refund_back_in_the_gateways_hands(tenant):
    _, refund = stuck_refund(tenant)
    client = Client()
    client.force_login(tenant.admin.user)
    r = client.post(f"/attention/refunds/{refund['id']}/retry", follow=True)
    assert r.status_code == 200
    assert "the gateway is asked again" in r.content.decode()
    row = Refund.objects.get(pk=refund["id"])
    assert (row.gateway_state, row.attempts) == ("to_call", 0)


def test_a_charge_the_worker_could_not_resolve_is_listed_and_asked_again(
        tenant, settings, monkeypatch):
    """The request died while charging and the gateway cannot be asked about the key, every
    attempt: the payment is listed with what happened; *Ask the gateway again* puts it back in
    the worker's hands, which books it once the gateway answers. Other roles get a 403."""
    from conftest import make_all_tasks_due, run_tasks
    from kassa.billing.models import Payment
    from kassa.gateways.base import GatewayError
    from kassa.gateways.sandbox import SandboxGateway
    from kassa.ledger.verify import verify

    settings.KASSA_GATEWAY_ATTEMPTS = 2
    inv = tenant.invoice()
    real_find = SandboxGateway.find_charge

    def unreachable(self, **kwargs):
        raise GatewayError("the sandbox gateway timed out")

    original_charge = SandboxGateway.charge

    def charge_then_lose_the_answer(self, **kwargs):
        original_charge(self, **kwargs)
        raise GatewayError("read timed out")

    monkeypatch.setattr(SandboxGateway, "charge", charge_then_lose_the_answer)
    r = tenant.api.post(f"/invoices/{inv['id']}/payments",
                        {"amount": "100.00", "method": "card", "online": True})
    assert r.status_code == 503
    monkeypatch.setattr(SandboxGateway, "charge", original_charge)
    monkeypatch.setattr(SandboxGateway, "find_charge", unreachable)
    for _ in range(3):
        make_all_tasks_due()
        run_tasks()
    payment = Payment.objects.get()
    assert (payment.status, payment.charge_state, payment.attempts) == ("processing", "stuck", 2)

    desk, _ = tenant.user("front_desk")
    other = Client()
    other.force_login(desk.user)
    assert other.post(f"/attention/payments/{payment.pk}/retry").status_code == 403
    client = Client()
    client.force_login(tenant.admin.user)
    page = client.get("/attention/").content.decode()
    assert f"Payment #{payment.pk} · $100.00" in page and "the sandbox gateway timed out" in page
    monkeypatch.setattr(SandboxGateway, "find_charge", real_find)
    r = client.post(f"/attention/payments/{payment.pk}/retry", follow=True)
    assert "the gateway is asked again" in r.content.decode()
    run_tasks()
    payment.refresh_from_db()
    assert (payment.status, payment.charge_state, payment.failure_reason) == (
        "succeeded", "", "")
    again = client.post(f"/attention/payments/{payment.pk}/retry", follow=True)
    assert "needs no retry" in again.content.decode()
    assert "Nothing needs a person right now" in client.get("/attention/").content.decode()
    assert verify(tenant.organization) == []
