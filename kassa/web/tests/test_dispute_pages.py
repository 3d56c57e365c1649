"""What the processor and the bank decide, in a browser: a dispute on the payment and invoice
pages with its respond-by date and the refund actions disabled with the reason, the Disputes
list where an admin settles a lost one, and Record returned check on a check payment."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from kassa.ledger.verify import verify
from kassa.refunds import sandbox
from kassa.refunds.models import Dispute, PaymentReturn
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_dispute_shows_where_the_front_desk_looks_and_is_settled_on_the_list(page, tenant):
    invoice = tenant.invoice()
    card = tenant.pay(invoice["id"], "100.00", method="card", online=True)
    sandbox.dispute(payment_id=card["id"], amount="60.00", outcome=None)
    sign_in(page, tenant.admin.user.email)

    page.goto(f"/payments/{card['id']}/")
    notice = page.get_by_test_id("payment-dispute")
    expect(notice).to_contain_text("$60.00")
    expect(notice).to_contain_text("needs a response")
    expect(notice).to_contain_text("respond by")
    expect(page.locator("#refund-blocked")).to_contain_text("disputes this payment")
    expect(page.get_by_role("button", name="Refund")).to_be_disabled()
    screenshot(page, "payment-disputed")

    page.goto(f"/invoices/{invoice['id']}/")
    expect(page.get_by_test_id("invoice-dispute")).to_contain_text("respond by")

    sandbox.dispute(payment_id=card["id"], amount=None, outcome="lost")
    page.goto("/disputes/")
    card_section = page.get_by_test_id("dispute")
    expect(card_section).to_contain_text("Lost")
    card_section.get_by_role("button", name="Settle the dispute").click()
    expect(page.get_by_role("alert").first).to_be_visible()  # no action chosen, no reason
    assert not Dispute.objects.get().settlement
    page.get_by_role("radio", name=re.compile("Re-bill the customer")).check()
    page.get_by_label("Why").fill("The family confirmed the charge")
    page.get_by_role("button", name="Settle the dispute").click()
    page.wait_for_url(re.compile(r".*/disputes/$"))
    expect(page.locator(".messages")).to_contain_text("$60.00 re-billed")
    screenshot(page, "disputes-settled")
    assert Dispute.objects.get().settlement == "rebill"
    page.goto(f"/invoices/{invoice['id']}/")
    expect(page.get_by_test_id("equation")).to_contain_text("balance due $60.00")
    assert verify(tenant.organization) == []


def test_record_returned_check_with_a_fee(page, tenant):
    invoice = tenant.invoice()
    check = tenant.pay(invoice["id"], "100.00", method="check")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{check['id']}/")
    page.get_by_role("link", name="Record returned check").click()
    page.get_by_label("Amount returned").fill("100.01")
    page.get_by_label("Why the bank returned it").fill("Insufficient funds")
    page.get_by_role("button", name="Record the return").click()
    expect(page.get_by_role("alert").first).to_contain_text("$100.00")
    assert not PaymentReturn.objects.exists()
    page.get_by_label("Amount returned").fill("")
    page.get_by_label("Returned payment fee").fill("25.00")
    page.get_by_role("button", name="Record the return").click()
    page.wait_for_url(re.compile(rf".*/payments/{check['id']}/$"))
    expect(page.locator(".messages")).to_contain_text("$100.00 is owed again")
    expect(page.locator(".messages")).to_contain_text("$25.00 fee")
    expect(page.get_by_role("link", name="Record returned check")).to_have_count(0)
    page.goto(f"/invoices/{invoice['id']}/")
    expect(page.get_by_test_id("equation")).to_contain_text("balance due $125.00")
    screenshot(page, "invoice-after-returned-check")
    assert verify(tenant.organization) == []


def test_the_reconciliation_report_and_its_exceptions_on_the_attention_page(page, tenant):
    invoice = tenant.invoice()
    card = tenant.pay(invoice["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{card['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "90.00", "reason": "Family request"})
    assert r.status_code == 201
    made = sandbox.gateway_refund(payment_id=card["id"], amount="40.00")  # does not fit
    assert made["booked"] is False
    sign_in(page, tenant.admin.user.email)

    page.goto("/reports/")
    page.get_by_role("link", name="Reconciliation").click()
    lines = page.get_by_test_id("reconciliation-lines")
    expect(page.get_by_role("heading", name="1 line not matched")).to_be_visible()
    expect(lines.locator("tr[data-status=matched]")).to_contain_text("$100.00")
    expect(lines.locator("tr[data-status=matched]")).to_contain_text(f"Payment #{card['id']}")
    expect(lines.locator("tr[data-status=missing_in_kassa]")).to_contain_text("-$40.00")
    expect(lines.locator("tr[data-status=missing_in_kassa]")).to_contain_text("Not in Kassa")
    screenshot(page, "reconciliation-report")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = open(download.value.path()).read()
    assert "missing_in_kassa" in text and "-40.00" in text

    page.goto("/attention/")
    exceptions = page.get_by_test_id("reconciliation-exceptions")
    expect(exceptions).to_contain_text("-$40.00")
    expect(exceptions).to_contain_text("Not in Kassa")
    expect(page.get_by_test_id("nothing")).to_have_count(0)

    page.goto("/reports/reconciliation/?date=2020-01-01")
    expect(page.get_by_test_id("nothing")).to_contain_text("lists nothing")
    page.goto("/reports/reconciliation/?date=not-a-day")
    expect(page.get_by_text("Enter a valid date")).to_be_visible()
