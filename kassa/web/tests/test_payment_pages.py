"""The payment refund flows of payment-refunds.txt, in Chromium, as the front desk does them:
payment details with its *Refund* dropdown or single *Record offline refund* button, the
invoice's payments section, a case's payments tab with its three-dot menu; refused forms say why
beside the field and change nothing; a role that may not refund sees no refund action."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conftest import run_tasks
from kassa.billing.models import Invoice, Payment, PaymentEvent
from kassa.ledger.models import JournalEntry
from kassa.refunds.models import Refund
from kassa.refunds.sandbox import settle
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Sign-in is not under test here: a cheap hasher keeps the file inside its time budget."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def counts() -> tuple[int, int, int]:
    """What a refund writes: the refund, the payment's history, the journal."""
    return Refund.objects.count(), PaymentEvent.objects.count(), JournalEntry.objects.count()


def field(page, label: str):
    """The form row of the input labelled `label`: where its error message must be."""
    return page.locator(".field", has=page.get_by_label(label, exact=True))


def test_online_refund_from_search_to_pending_to_succeeded(page, tenant):
    customer = tenant.customer("Ava Chen", "ava@example.com")
    inv = tenant.invoice(customer=customer)
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)

    sign_in(page, tenant.admin.user.email)
    page.get_by_label("Find invoice or receipt, or a guest").fill("Ava")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=inv["number"]).first.click()
    page.wait_for_url(f"**/invoices/{inv['id']}/")
    page.get_by_role("link", name=f"Payment #{card['id']}", exact=True).click()
    page.wait_for_url(f"**/payments/{card['id']}/")
    expect(page.get_by_role("heading", name="Payment details")).to_be_visible()
    screenshot(page, "payment-online")

    page.get_by_role("button", name="Refund", exact=True).click()
    page.get_by_role("link", name="Issue online refund").click()
    expect(page.get_by_role("heading", name="Issue online refund")).to_be_visible()
    expect(page.get_by_label("Refund amount")).to_have_value("")  # typed, never pre-filled
    assert page.get_by_label("Refund method").count() == 0  # back by the card, no method
    page.get_by_label("Refund amount").fill("40.00")
    page.get_by_label("Reason for refund").fill("Treatment cut short")
    page.get_by_label("Internal notes").fill("Approved by the manager")
    screenshot(page, "payment-issue-online-refund-form")
    page.get_by_role("button", name="Review refund").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        f"Refund $40.00 back to the card of payment #{card['id']}")
    assert not Refund.objects.exists()  # the review wrote nothing
    page.get_by_role("button", name="Refund $40.00").click()

    expect(page.get_by_text("Online refund of $40.00 issued")).to_be_visible()
    expect(page.locator(".notice-pending")).to_contain_text("can take 24–48 hours")
    expect(page.get_by_role("button", name="Refund", exact=True)).to_be_disabled()
    history = page.locator("table.history")
    expect(history).to_contain_text("Online refund issued")
    expect(history).to_contain_text("Pending")
    screenshot(page, "payment-refund-pending")
    refund = Refund.objects.get()
    assert (refund.type, refund.status, refund.amount_minor) == ("online", "pending", 4000)
    assert refund.internal_note == "Approved by the manager"
    assert Payment.objects.get(pk=card["id"]).refund_pending

    run_tasks()  # the gateway call
    settle(refund_ids=[str(refund.pk)], everything=False)
    page.reload()
    expect(history).to_contain_text("Online refund succeeded")
    expect(page.locator("table.refunds")).to_contain_text("Succeeded")
    expect(page.get_by_role("button", name="Refund", exact=True)).to_be_enabled()
    screenshot(page, "payment-refund-succeeded")

    page.get_by_role("link", name=f"Invoice {inv['number']}").first.click()
    payments = page.locator("section.payment-card")
    expect(payments).to_contain_text("Treatment cut short")
    expect(payments).to_contain_text("Succeeded")
    expect(page.locator("dl.totals")).to_contain_text("$40.00")  # refunded, and due again
    screenshot(page, "invoice-with-refund")


def test_offline_payment_records_offline_refunds_and_refused_forms_change_nothing(page, tenant):
    inv = tenant.invoice()
    cash = tenant.pay(inv["id"], "100.00", method="cash")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{cash['id']}/")

    assert page.get_by_role("button", name="Refund", exact=True).count() == 0  # no dropdown
    page.get_by_role("button", name="Record offline refund").click()
    expect(page.get_by_role("heading", name="Record offline refund")).to_be_visible()
    before = counts()

    page.get_by_label("Refund amount").fill("150.00")
    page.get_by_label("Reason for refund").fill("Overcharged")
    page.get_by_label("Refund method").select_option("cash")
    page.get_by_role("button", name="Review refund").click()
    expect(field(page, "Refund amount")).to_contain_text(
        "At most $100.00 of this payment can be refunded")
    screenshot(page, "payment-refund-over-refundable")
    assert counts() == before

    page.get_by_label("Refund amount").fill("30.00")
    page.get_by_label("Refund method").select_option("other")
    page.get_by_role("button", name="Review refund").click()
    expect(field(page, "Notes")).to_contain_text(
        "A note is required when the refund method is other")
    expect(field(page, "Refund amount")).not_to_contain_text("At most")
    screenshot(page, "payment-refund-note-required")
    assert counts() == before
    assert Payment.objects.get(pk=cash["id"]).refunded_minor == 0

    page.get_by_label("Notes", exact=True).fill("Store gift card")
    page.get_by_label("Decrease the balance owed").check()
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
    screenshot(page, "payment-record-offline-refund-tablet")
    page.get_by_role("button", name="Review refund").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        "Record a refund of $30.00 to Ann Guest, given back by other outside Kassa")
    page.get_by_role("button", name="Record refund of $30.00").click()
    expect(page.get_by_text("Offline refund of $30.00 by other recorded")).to_be_visible()
    expect(page.locator("table.history")).to_contain_text("Offline refund recorded")
    expect(page.locator("table.refunds")).to_contain_text("Store gift card")
    refund = Refund.objects.get()
    assert (refund.type, refund.status, refund.method, refund.note) == (
        "offline", "recorded", "other", "Store gift card")
    invoice = Invoice.objects.get(pk=inv["id"])
    assert invoice.credits_minor == 3000 and invoice.balance_due_minor == 0
    screenshot(page, "payment-offline-refund-recorded")


def test_case_payments_tab_three_dot_menu_records_a_refund(page, tenant):
    customer = tenant.customer("The Morales family", "morales@example.com")
    r = tenant.api.post("/cases", {"customer": customer, "name": "Elena Morales"})
    assert r.status_code == 201, r.content
    case = r.json()["id"]
    one = tenant.invoice(customer=customer, case=case)
    check = tenant.pay(one["id"], "100.00", method="check")
    r = tenant.api.post("/package-templates", {
        "name": "Memorial flowers, 4 deliveries", "price": "400.00", "tax_rate": "0",
        "benefits": [{"name": "Delivery", "quantity": 4, "unit_value": "100.00"}]})
    assert r.status_code == 201, r.content
    two = tenant.invoice({"kind": "package", "description": "Memorial flowers",
                          "package_template": r.json()["id"]}, customer=customer, case=case)
    tenant.pay(two["id"], "150.00", method="cash")
    tenant.pay(two["id"], "50.00", method="card", online=True)

    sign_in(page, tenant.admin.user.email)
    page.goto(f"/cases/{case}/payments/")
    expect(page.get_by_role("heading", name="Case Elena Morales")).to_be_visible()
    page.get_by_role("button", name=f"More actions for invoice {one['number']}").click()
    screenshot(page, "case-payments-menu")
    page.get_by_role("link", name="Record refund").first.click()
    page.wait_for_url(f"**/invoices/{one['id']}/record-refund/")  # the chooser of payments
    page.get_by_role("link", name=f"Record offline refund of payment #{check['id']}").click()
    page.wait_for_url(f"**/payments/{check['id']}/refund/offline/")
    page.get_by_label("Refund amount").fill("25.00")
    page.get_by_label("Reason for refund").fill("Duplicate charge")
    page.get_by_label("Refund method").select_option("check")
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("button", name="Record refund of $25.00").click()
    expect(page.get_by_text("Offline refund of $25.00 by check recorded")).to_be_visible()

    page.goto(f"/cases/{case}/payments/")
    block = page.locator("section.invoice-block", has_text=f"Invoice {one['number']}")
    expect(block.locator("table.refunds")).to_contain_text("Duplicate charge")
    expect(block.locator("table.refunds")).to_contain_text("Recorded")
    screenshot(page, "case-payments")

    # Several payments: the chooser lists each with the refunds it allows.
    page.get_by_role("button", name=f"More actions for invoice {two['number']}").click()
    page.locator("section.invoice-block", has_text=f"Invoice {two['number']}").get_by_role(
        "link", name="Record refund").click()
    page.wait_for_url(f"**/invoices/{two['id']}/record-refund/")
    expect(page.get_by_role("link", name=re.compile("Record offline refund"))).to_have_count(2)
    expect(page.get_by_role("link", name=re.compile("Issue online refund"))).to_have_count(1)
    screenshot(page, "case-refund-chooser")
    page.get_by_role("link", name=f"Invoice {two['number']}").click()
    expect(page.get_by_role("link", name="Record offline refund")).to_have_count(2)
    expect(page.get_by_role("link", name="Issue online refund")).to_have_count(1)
    page.get_by_role("button", name="I want to").click()
    # (The menu's package wizard, not the overview's split refund of the same name.)
    wizard = page.locator("details.menu").get_by_role("link", name="Refund invoice")
    expect(wizard).to_have_attribute(
        "href", f"/customers/{customer}/packages/?refund={two['packages'][0]['id']}")
    screenshot(page, "invoice-with-package")


def test_front_desk_sees_no_refund_action_and_posting_anyway_is_refused(page, tenant):
    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)
    # v1's rule exactly: the front desk may not even ask (by default it asks: see
    # test_approvals_page.py).
    assert tenant.api.patch("/settings", {"request_roles": []}).status_code == 200
    desk, _ = tenant.user("front_desk")
    sign_in(page, desk.user.email)

    page.goto(f"/payments/{card['id']}/")
    expect(page.get_by_role("heading", name="Payment details")).to_be_visible()
    # The action is there, disabled, with who refunds instead.
    expect(page.get_by_role("button", name="Refund", exact=True)).to_be_disabled()
    expect(page.locator("#refund-blocked")).to_have_text(
        "Refunds are made by administrators in this organization.")
    assert page.get_by_text("Record offline refund").count() == 0
    screenshot(page, "payment-front-desk")
    page.goto(f"/invoices/{inv['id']}/")
    assert page.get_by_text("Issue online refund").count() == 0
    assert page.get_by_text("Record offline refund").count() == 0

    before = counts()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(f"/payments/{card['id']}/refund/offline/", form={
        "amount": "10.00", "reason": "Trying anyway", "method": "cash"},
        headers={"X-CSRFToken": token})
    assert answer.status == 403
    assert "may not refund" in answer.text()
    assert page.request.get(f"/payments/{card['id']}/refund/online/").status == 403
    assert counts() == before
    assert Payment.objects.get(pk=card["id"]).refunded_minor == 0
