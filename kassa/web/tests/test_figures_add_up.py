"""Figures that add up (issue 15, item 6), in Chromium: the balance due is the headline of an
invoice and of a case, the equation total − credits − paid + refunded = due is written out, a
pending refund is labelled pending inside Refunded, net and tax-included figures are labelled,
and times carry the organization's zone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from kassa.tenancy.models import Organization
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_invoice_and_the_case_lead_with_the_balance_due_and_explain_it(page, tenant):
    Organization.objects.filter(pk=tenant.organization.pk).update(timezone="America/Chicago")
    customer = tenant.customer("The Morales family", "morales@example.com")
    case = tenant.api.post("/cases", {"customer": customer, "name": "Elena Morales"}).json()
    inv = tenant.invoice({"kind": "service", "description": "Service", "unit_price": "200.00",
                          "tax_rate": "10"}, customer=customer, case=case["id"])
    card = tenant.pay(inv["id"], "110.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{card['id']}/refunds", {
        "type": "online", "amount": "20.00", "reason": "Flowers", "decrease_balance_owed": True})
    assert r.status_code == 201, r.content

    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/{inv['id']}/")
    expect(page.get_by_test_id("balance-due")).to_have_text("$110.00")
    expect(page.get_by_test_id("equation")).to_have_text(
        "Total $220.00 − credits $20.00 − paid $110.00 + refunded $20.00 = balance due $110.00")
    expect(page.get_by_test_id("refunded-pending")).to_have_text("$20.00 pending")
    expect(page.locator("dl.totals")).to_contain_text("Subtotal (net of tax)")
    expect(page.locator("dl.totals")).to_contain_text("Total (tax included)")
    expect(page.get_by_text("Credits take money off the sale itself")).to_be_visible()
    expect(page.locator("section.payment-card").first).to_contain_text("CST")
    screenshot(page, "figures-invoice")

    page.goto(f"/cases/{case['id']}/payments/")
    expect(page.get_by_test_id("balance-due")).to_have_text("$110.00")
    expect(page.locator("section.invoice-block")).to_contain_text(
        "Total $220.00 − credits $20.00 − paid $110.00 + refunded $20.00 = balance due $110.00")
    screenshot(page, "figures-case")
