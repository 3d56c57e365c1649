"""The customer's Credit tab in a browser: take a deposit, see the entries, refund credit with
the card rule beside the field, and refund a payment to account credit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from kassa.billing.models import CreditEntry, Customer
from kassa.ledger.verify import verify
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_credit_tab_takes_a_deposit_and_refunds_it_with_the_card_rule(page, tenant):
    guest = tenant.customer("Dana Guest", "dana@example.com")
    invoice = tenant.invoice({"kind": "service", "description": "Facial",
                              "unit_price": "60.00"}, customer=guest)
    card = tenant.pay(invoice["id"], "60.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{card['id']}/refunds",
                        {"type": "credit", "amount": "60.00", "reason": "Rebooked"})
    assert r.status_code == 201, r.content
    sign_in(page, tenant.admin.user.email)

    page.goto(f"/customers/{guest}/credit/")
    assert page.get_by_test_id("credit-balance").inner_text() == "$60.00"
    form = page.locator("#take-deposit")
    form.get_by_label("Amount").fill("40.00")
    form.get_by_label("Method").select_option("cash")
    form.get_by_label("Note").fill("Next month's visit")
    form.get_by_role("button", name="Take deposit").click()
    page.wait_for_url(re.compile(rf".*/customers/{guest}/credit/$"))
    assert page.get_by_test_id("credit-balance").inner_text() == "$100.00"
    assert "Deposit of $40.00 by cash" in page.content()
    rows = page.locator("table.credit-entries tbody tr")
    assert rows.count() == 2 and "Refund to credit" in rows.nth(0).inner_text()
    screenshot(page, "credit-tab")

    refund = page.locator("#refund-credit")
    refund.get_by_label("Refund amount").fill("100.00")
    refund.get_by_label("Reason for refund").fill("Closing the account")
    refund.get_by_label("Refund to").select_option("cash")
    refund.get_by_role("button", name="Refund credit").click()
    alert = page.locator("#refund-credit [role=alert]")
    alert.wait_for()
    assert "$60.00 of this credit came from card payments" in alert.inner_text()
    screenshot(page, "credit-refund-card-rule")
    assert CreditEntry.objects.count() == 2  # the refusal changed nothing

    refund = page.locator("#refund-credit")
    refund.get_by_label("Refund amount").fill("40.00")
    refund.get_by_label("Reason for refund").fill("Closing the account")
    refund.get_by_label("Refund to").select_option("check")
    refund.get_by_label("Payee").fill("Dana's mother")
    refund.get_by_role("button", name="Refund credit").click()
    page.wait_for_url(re.compile(rf".*/customers/{guest}/credit/$"))
    assert "to Dana's mother recorded" in page.content()
    assert page.get_by_test_id("credit-balance").inner_text() == "$60.00"

    refund = page.locator("#refund-credit")
    refund.get_by_label("Refund amount").fill("60.00")
    refund.get_by_label("Reason for refund").fill("Closing the account")
    refund.get_by_label("Refund to").select_option(f"payment:{card['id']}")
    refund.get_by_role("button", name="Refund credit").click()
    page.wait_for_url(re.compile(rf".*/customers/{guest}/credit/$"))
    assert "issued online" in page.content()
    assert Customer.objects.get(pk=guest).credit_minor == 0
    assert verify(tenant.organization) == []


def test_a_payment_is_refunded_to_account_credit_from_its_refund_form(page, tenant):
    invoice = tenant.invoice({"kind": "service", "description": "Facial",
                              "unit_price": "80.00"})
    cash = tenant.pay(invoice["id"], "80.00", method="cash")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{cash['id']}/refund/offline/")
    page.get_by_label("Refund amount").fill("30.00")
    page.get_by_label("Reason for refund").fill("Keep it for the next visit")
    page.get_by_label("Refund method").select_option("credit")
    page.get_by_role("button", name="Review refund").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        "Record a refund of $30.00 to Ann Guest's account credit")
    page.get_by_role("button", name="Record refund of $30.00").click()
    page.wait_for_url(re.compile(rf".*/payments/{cash['id']}/$"))
    assert "Refund of $30.00 to account credit recorded" in page.content()
    assert Customer.objects.get(pk=invoice["customer"]).credit_minor == 3000
    assert verify(tenant.organization) == []


def test_an_insurance_check_keeps_its_excess_as_credit_which_then_pays_the_next_invoice(
        page, tenant):
    family = tenant.customer("The Alvarez Family", "maria@example.com")
    statement = tenant.invoice({"kind": "service", "description": "Arrangements",
                                "unit_price": "5000.00"}, customer=family)
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/{statement['id']}/pay/")
    page.get_by_label("Amount").fill("7,000.00")
    page.get_by_label("Insurance").check()
    page.get_by_label("Keep the excess as credit").check()
    page.get_by_role("button", name="Review payment").click()
    review = page.get_by_test_id("review")
    assert "$2,000.00 more than is due is kept as their account credit" in review.inner_text()
    screenshot(page, "pay-keep-excess-review")
    assert Customer.objects.get(pk=family).credit_minor == 0  # nothing yet
    page.get_by_role("button", name="Confirm payment of $7,000.00").click()
    page.wait_for_url(re.compile(r".*/payments/\d+/$"))
    assert "$2,000.00 of it is kept as The Alvarez Family's account credit" in page.content()
    assert Customer.objects.get(pk=family).credit_minor == 200000

    burial = tenant.invoice({"kind": "service", "description": "Burial",
                             "unit_price": "1500.00"}, customer=family)
    page.goto(f"/invoices/{burial['id']}/pay/")
    page.get_by_label("Amount").fill("1500.00")
    page.get_by_role("radio", name=re.compile("Pay from credit")).check()
    page.get_by_role("button", name="Review payment").click()
    assert "from The Alvarez Family's account credit ($2,000.00 held)" in (
        page.get_by_test_id("review").inner_text())
    page.get_by_role("button", name="Confirm payment of $1,500.00").click()
    page.wait_for_url(re.compile(r".*/payments/\d+/$"))
    assert "paid from account credit" in page.content()
    assert Customer.objects.get(pk=family).credit_minor == 50000
    assert verify(tenant.organization) == []
