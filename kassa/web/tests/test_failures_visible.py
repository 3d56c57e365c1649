"""Failures are visible (issue 15, item 7), in Chromium: a failed refund says why in plain
words on its payment, on its package's card (whose history lists the package's life) and on
the front desk; a page with a pending refund updates itself when it settles."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import run_tasks
from kassa.refunds.models import Refund
from kassa.refunds.sandbox import settle
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLAIN = "The card network did not accept the refund (a sandbox test card whose refunds fail)"


def fail_or_settle(refund_id: str) -> None:
    run_tasks()
    settle(refund_ids=[refund_id], everything=False)
    run_tasks()


def test_a_failed_card_refund_says_why_on_the_payment_and_the_front_desk(page, tenant):
    inv = tenant.invoice(customer=tenant.customer("Ava Chen", "ava@example.com"))
    card = tenant.pay(inv["id"], "100.00", method="card", online=True,
                      source="sandbox_refund_fails")
    r = tenant.api.post(f"/payments/{card['id']}/refunds",
                        {"type": "online", "amount": "30.00", "reason": "Unhappy"})
    assert r.status_code == 201, r.content
    fail_or_settle(r.json()["id"])
    assert Refund.objects.get().status == "failed"

    sign_in(page, tenant.admin.user.email)
    box = page.get_by_role("region", name="Needs attention")
    expect(box).to_contain_text(f"Refund #{r.json()['id']} of $30.00 to Ava Chen failed: "
                                f"{PLAIN}.")
    screenshot(page, "failures-front-desk")
    box.get_by_role("link", name="Refund it another way").click()
    expect(page.get_by_test_id("failure")).to_contain_text(f"Failed: {PLAIN}.")
    screenshot(page, "failures-payment")


def test_a_failed_package_refund_shows_on_its_card_with_the_history(page, tenant):
    r = tenant.api.post("/package-templates", {
        "name": "Glow", "price": "300.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 3, "unit_value": "100.00"}]})
    guest = tenant.customer("Mia Rossi", "mia@example.com")
    inv = tenant.invoice({"kind": "package", "description": "Glow",
                          "package_template": r.json()["id"]}, customer=guest)
    card = tenant.pay(inv["id"], "300.00", method="card", online=True,
                      source="sandbox_refund_fails")
    pkg = inv["packages"][0]
    tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                    {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
    r = tenant.api.post(f"/packages/{pkg['id']}/refunds", {
        "amount": "50.00", "reason": "Moving", "close_package": False,
        "refund_to": {"payment": card["id"]}})
    assert r.status_code == 201, r.content
    fail_or_settle(r.json()["id"])

    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    expect(page.get_by_test_id("package-refund-failed")).to_contain_text(
        f"Refund #{r.json()['id']} of $50.00 failed: {PLAIN}.")
    page.get_by_text("History", exact=True).click()
    history = page.locator(".pkg-history table")
    expect(history).to_contain_text("Sold on invoice")
    expect(history.locator("tr", has_text="Paid in")).to_contain_text(
        f"payment #{card['id']} (Card)")
    expect(history.locator("tr", has_text="Redeemed")).to_contain_text("1 × Facial")
    expect(history.locator("tr", has_text=f"Refund #{r.json()['id']} failed")).to_contain_text(
        "The balance is back.")
    screenshot(page, "failures-package-card")


def test_a_pending_refund_page_updates_itself_when_it_settles(page, tenant, settings):
    settings.KASSA_PENDING_POLL_SECONDS = 1
    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{card['id']}/refunds",
                        {"type": "online", "amount": "10.00", "reason": "Late"})
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{card['id']}/")
    expect(page.locator("#pending-poll")).to_contain_text("updates itself")
    fail_or_settle(r.json()["id"])
    expect(page.locator("table.history")).to_contain_text("Online refund succeeded",
                                                          timeout=10_000)
    assert page.locator("#pending-poll").count() == 0
