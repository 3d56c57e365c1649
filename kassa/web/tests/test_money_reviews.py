"""No irreversible money move without a review (issue 15, item 3), in Chromium: a payment
refund, a package refund that closes the package and a redemption beyond what is paid each
state the money and where it goes before *Confirm*, and again in the result; cancelling (or
going back) sends nothing; the refund amount is never pre-filled. The messages of the refusals
are read for bare minor units (item 5)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conftest import database_state
from kassa.packages.models import Package
from kassa.refunds.models import Refund
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Body contouring"


def messages_of(page) -> list[str]:
    """Every message a refusal shows: alerts and error lists."""
    return [t.strip() for t in page.locator("[role=alert], .errorlist").all_inner_texts()
            if t.strip()]


def assert_readable(texts: list[str], *minor_units: int) -> None:
    """No message shows an amount in minor units ("100001") or an internal id."""
    assert texts, "the refusal showed no message"
    for text in texts:
        for minor in minor_units:
            assert not re.search(rf"(?<![\d$.,]){minor}(?![\d.,])", text), text


def sell_package(tenant, *, paid: str) -> tuple[str, dict, dict]:
    r = tenant.api.post("/package-templates", {
        "name": NAME, "price": "1000.00", "tax_rate": "0",
        "benefits": [{"name": "Session", "quantity": 5, "unit_value": "200.00"}]})
    assert r.status_code == 201, r.content
    guest = tenant.customer("Mia Rossi", "mia@example.com")
    inv = tenant.invoice({"kind": "package", "description": NAME,
                          "package_template": r.json()["id"]}, customer=guest)
    tenant.pay(inv["id"], paid, method="cash")
    return guest, inv, inv["packages"][0]


def test_a_card_refund_is_reviewed_cancelling_sends_nothing_and_the_result_says_it(page,
                                                                                   tenant):
    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{card['id']}/")
    page.get_by_role("button", name="Refund", exact=True).click()
    page.get_by_role("link", name="Issue online refund").click()
    expect(page.get_by_label("Refund amount")).to_have_value("")
    before = database_state()

    page.get_by_label("Refund amount").fill("1,000.00")
    page.get_by_label("Reason for refund").fill("Cancelled")
    page.get_by_role("button", name="Review refund").click()
    amount = page.locator(".field", has=page.get_by_label("Refund amount"))
    expect(amount).to_contain_text("At most $100.00 of this payment can be refunded")
    assert_readable(messages_of(page), 100000, 10000)
    assert database_state() == before

    page.get_by_label("Refund amount").fill("40.00")
    page.get_by_role("button", name="Review refund").click()
    review = page.get_by_test_id("review")
    expect(review).to_have_text(re.compile(
        rf"Refund \$40\.00 back to the card of payment #{card['id']} \(\$100\.00 on .*\)\."))
    expect(page.get_by_text("balance due becomes $40.00")).to_be_visible()
    screenshot(page, "review-card-refund")
    assert database_state() == before  # the review wrote nothing

    page.get_by_role("button", name="Back").click()  # back to the form, the values kept
    expect(page.get_by_label("Refund amount")).to_have_value("40.00")
    expect(page.get_by_label("Reason for refund")).to_have_value("Cancelled")
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Payment details")).to_be_visible()
    assert database_state() == before  # cancelled: nothing sent

    page.get_by_role("button", name="Refund", exact=True).click()
    page.get_by_role("link", name="Issue online refund").click()
    page.get_by_label("Refund amount").fill("40.00")
    page.get_by_label("Reason for refund").fill("Cancelled")
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("button", name="Refund $40.00").click()
    expect(page.get_by_text(f"Online refund of $40.00 issued back to the card of payment "
                            f"#{card['id']}")).to_be_visible()
    screenshot(page, "review-card-refund-done")
    assert Refund.objects.get().amount_minor == 4000


def test_closing_a_package_states_the_forfeit_and_the_cancelled_debt_first(page, tenant):
    guest, inv, pkg = sell_package(tenant, paid="500.00")
    r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                        {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
    assert r.status_code == 201, r.content
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/?refund={pkg['id']}#refund")
    page.get_by_label("Refund amount").fill("100.00")
    page.get_by_label("Comments").fill("Moving away")
    page.get_by_label("Mark package 'Closed'").check()
    page.get_by_role("button", name="Proceed to refund").click()
    page.get_by_label("Cash", exact=True).check()
    before = database_state()
    page.get_by_role("button", name="Review refund").click()

    expect(page.get_by_test_id("review")).to_have_text(
        f"Refund $100.00 of {NAME} to Mia Rossi by cash, given outside Kassa.")
    expect(page.get_by_test_id("forfeit")).to_have_text(
        f"$200.00 will be forfeited and the $500.00 still owed on invoice {inv['number']} "
        "cancelled.")
    screenshot(page, "review-package-close")
    assert database_state() == before

    page.get_by_role("button", name="Back").click()  # to Payment methods, the choice kept
    expect(page.get_by_label("Cash", exact=True)).to_be_checked()
    page.get_by_role("link", name="Cancel").click()
    assert database_state() == before

    page.goto(f"/customers/{guest}/packages/?refund={pkg['id']}#refund")
    page.get_by_label("Refund amount").fill("100.00")
    page.get_by_label("Comments").fill("Moving away")
    page.get_by_label("Mark package 'Closed'").check()
    page.get_by_role("button", name="Proceed to refund").click()
    page.get_by_label("Cash", exact=True).check()
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("button", name="Refund $100.00").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"Refunded $100.00 of {NAME} to Mia Rossi by cash, given outside Kassa. $200.00 "
        f"will be forfeited and the $500.00 still owed on invoice {inv['number']} cancelled.")
    assert Package.objects.get(pk=pkg["id"]).status == "closed"


def test_the_wizard_refuses_an_over_balance_amount_on_step_one(page, tenant):
    guest, _, pkg = sell_package(tenant, paid="300.00")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/?refund={pkg['id']}#refund")
    before = database_state()
    page.get_by_label("Refund amount").fill("300.01")
    page.get_by_label("Comments").fill("Too much")
    page.get_by_label("Mark package 'Closed'").check()
    page.get_by_role("button", name="Proceed to refund").click()
    expect(page.locator("#id_amount_error")).to_have_text(
        "The refund amount cannot exceed the package balance that remains, $300.00.")
    assert page.get_by_role("group", name="Refund to").count() == 0  # still on step 1
    expect(page.get_by_label("Mark package 'Closed'")).to_be_checked()  # choices kept
    expect(page.get_by_label("Comments")).to_have_value("Too much")
    assert_readable(messages_of(page), 30001, 30000)
    screenshot(page, "review-wizard-step-one-refusal")
    assert database_state() == before


def test_one_refund_only_is_refused_on_step_one(page, tenant):
    tenant.api.patch("/settings", {"allow_multiple_package_refunds": False})
    guest, _, pkg = sell_package(tenant, paid="1000.00")
    r = tenant.api.post(f"/packages/{pkg['id']}/refunds", {
        "amount": "10.00", "reason": "First", "close_package": False,
        "refund_to": {"method": "cash"}})
    assert r.status_code == 201, r.content
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/?refund={pkg['id']}#refund")
    before = database_state()
    page.get_by_label("Refund amount").fill("10.00")
    page.get_by_label("Comments").fill("Second")
    page.get_by_role("button", name="Proceed to refund").click()
    expect(page.get_by_role("alert").first).to_contain_text(
        "This organization allows one refund per package")
    assert page.get_by_role("group", name="Refund to").count() == 0
    assert_readable(messages_of(page), 1000)
    assert database_state() == before


def test_a_redemption_beyond_what_is_paid_is_stated_before_it_is_made(page, tenant):
    guest, _, pkg = sell_package(tenant, paid="100.00")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    before = database_state()
    page.get_by_role("button", name="Redeem Session").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        f"Redeeming 1 × Session ($200.00) from {NAME} is more than has been paid into it: "
        "the package balance becomes owes $100.00, which Mia Rossi owes.")
    screenshot(page, "review-redeem-beyond-paid")
    assert database_state() == before
    page.locator("#redeem-review").get_by_role("link", name="Cancel").click()
    assert database_state() == before

    page.get_by_role("button", name="Redeem Session").click()
    page.get_by_role("button", name="Redeem and leave owes $100.00").click()
    expect(page.get_by_text(f"Redeemed 1 × Session from {NAME}. Package balance: owes "
                            "$100.00")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("owes $100.00")
    assert Package.objects.get(pk=pkg["id"]).balance_minor == -10000
