"""The rest of the front desk's day in Chromium (issue 15, item 1): add a family or guest,
open a case, write an invoice with service, product and package lines, take a payment (offline,
or online through the sandbox gateway) after reviewing it, redeem a benefit; the cases list and
the customer's overview. Every refusal changes nothing."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from conftest import database_state
from kassa.billing.models import Case, Customer, Invoice, Payment
from kassa.tenancy.models import Organization
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def funeral_home(tenant) -> None:
    Organization.objects.filter(pk=tenant.organization.pk).update(business_kind="funeral_home")


def write_line(page, n: int, *, kind: str = "", description: str = "", price: str = "",
               tax: str = "", template: str = "") -> None:
    if template:
        page.get_by_label(f"Package template of line {n}").select_option(label=template)
    if kind:
        page.get_by_label(f"Kind of line {n}").select_option(kind)
    if description:
        page.get_by_label(f"Description of line {n}").fill(description)
    if price:
        page.get_by_label(f"Unit price of line {n}").fill(price)
    if tax:
        page.get_by_label(f"Tax % of line {n}").fill(tax)


def test_a_funeral_director_adds_a_family_opens_a_case_writes_and_takes_a_check(page, tenant):
    funeral_home(tenant)
    sign_in(page, tenant.admin.user.email)
    page.get_by_role("link", name="New family").click()
    expect(page.get_by_role("heading", name="New family")).to_be_visible()
    page.get_by_label("Family name").fill("The Alvarez Family")
    page.get_by_label("Contact name").fill("Maria Alvarez")
    page.get_by_label("E-mail").fill("maria@example.com")
    screenshot(page, "day-new-family")
    page.get_by_role("button", name="Add family").click()
    expect(page.get_by_text("Family The Alvarez Family added.")).to_be_visible()
    expect(page.get_by_text("Contact: Maria Alvarez")).to_be_visible()
    family = Customer.objects.get()
    assert (family.contact_name, family.email) == ("Maria Alvarez", "maria@example.com")

    page.get_by_role("link", name="Open a case").click()
    page.get_by_label("Decedent's name").fill("Jose Alvarez (1941–2026)")
    page.get_by_role("button", name="Open case").click()
    expect(page.get_by_role("heading", name="Case Jose Alvarez (1941–2026)")).to_be_visible()
    case = Case.objects.get()

    page.get_by_role("link", name="New invoice").click()
    expect(page.get_by_label("Case")).to_have_value(str(case.pk))
    write_line(page, 1, description="Traditional service", price="5,000.00")
    write_line(page, 2, kind="product", description="Oak casket", price="2,000.00",
               tax="8.875")
    screenshot(page, "day-new-invoice")
    page.get_by_role("button", name="Write invoice").click()
    invoice = Invoice.objects.get()
    expect(page.get_by_text(f"Invoice {invoice.number} written for The Alvarez Family: "
                            "$7,177.50 due.")).to_be_visible()
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.case_id) == (700000, 17750,
                                                                            case.pk)

    page.get_by_role("link", name="Take payment").click()
    page.get_by_label("Amount").fill("1,000.00")
    page.get_by_label("Check", exact=True).check()
    page.get_by_role("button", name="Review payment").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        f"Take $1,000.00 by check, on invoice {invoice.number} of The Alvarez Family.")
    expect(page.get_by_text("goes from $7,177.50 to $6,177.50")).to_be_visible()
    screenshot(page, "day-review-check-payment")
    assert not Payment.objects.exists()  # the review wrote nothing
    page.get_by_role("button", name="Confirm payment of $1,000.00").click()
    payment = Payment.objects.get()
    expect(page.get_by_text(f"Payment #{payment.pk} of $1,000.00 by check received on invoice "
                            f"{invoice.number}. Balance due now $6,177.50.")).to_be_visible()
    assert (payment.amount_minor, payment.method, payment.online) == (100000, "check", False)

    page.get_by_role("link", name="Cases").first.click()
    expect(page.locator("table.cases")).to_contain_text("Jose Alvarez (1941–2026)")
    expect(page.locator("table.cases")).to_contain_text("$6,177.50")
    screenshot(page, "day-cases-list")
    page.get_by_role("link", name="The Alvarez Family").click()
    expect(page.locator("table.invoices")).to_contain_text(invoice.number)
    expect(page.locator("table.payments")).to_contain_text(f"Payment #{payment.pk}")
    expect(page.get_by_test_id("customer-balance-due")).to_have_text("$6,177.50")
    screenshot(page, "day-family-overview")

    page.get_by_role("link", name="Edit family").click()
    page.get_by_label("Contact name").fill("Luis Alvarez")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Contact: Luis Alvarez")).to_be_visible()


def test_a_spa_sells_a_package_charges_the_card_online_and_redeems(page, tenant):
    r = tenant.api.post("/package-templates", {
        "name": "Glow, 3 facials", "price": "300.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 3, "unit_value": "100.00"}]})
    assert r.status_code == 201, r.content
    sign_in(page, tenant.admin.user.email)
    page.get_by_role("link", name="New guest").click()
    page.get_by_label("Guest name").fill("Mia Rossi")
    page.get_by_label("E-mail").fill("mia@example.com")
    page.get_by_role("button", name="Add guest").click()
    expect(page.get_by_text("Guest Mia Rossi added.")).to_be_visible()
    assert page.get_by_role("link", name="Open a case").count() == 0  # a spa has no cases

    page.get_by_role("link", name="New invoice").click()
    write_line(page, 1, template="Glow, 3 facials")  # the row becomes a package line
    expect(page.get_by_label("Kind of line 1")).to_have_value("package")
    expect(page.get_by_label("Description of line 1")).to_have_value("Glow, 3 facials")
    write_line(page, 2, kind="product", description="Serum", price="40.00", tax="10")
    page.get_by_role("button", name="Write invoice").click()
    invoice = Invoice.objects.get()
    expect(page.get_by_text("$344.00 due.")).to_be_visible()

    page.get_by_role("link", name="Take payment").click()
    expect(page.get_by_label("Amount")).to_have_value("344.00")  # the balance due
    page.get_by_label("Card (online)").check()
    page.get_by_label("Card or account").select_option("sandbox_ok")
    page.get_by_role("button", name="Review payment").click()
    expect(page.get_by_test_id("review")).to_contain_text(
        "Take $344.00 by card, charged online through the payment gateway (Test card that "
        "succeeds)")
    screenshot(page, "day-review-card-payment")
    page.get_by_role("button", name="Confirm payment of $344.00").click()
    expect(page.get_by_role("heading", name="Payment details")).to_be_visible()
    expect(page.get_by_text("Balance due now $0.00.")).to_be_visible()
    payment = Payment.objects.get()
    assert (payment.online, payment.status, payment.source) == (True, "succeeded", "sandbox_ok")
    invoice.refresh_from_db()
    assert invoice.status == "closed"

    page.goto(f"/customers/{invoice.customer_id}/packages/")
    page.get_by_role("button", name="Redeem Facial").click()
    expect(page.get_by_text("Redeemed 1 × Facial from Glow, 3 facials")).to_be_visible()
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_text("balance $200.00")).to_be_visible()
    screenshot(page, "day-guest-overview")


def test_payment_refusals_say_why_beside_the_field_and_change_nothing(page, tenant):
    inv = tenant.invoice()
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/{inv['id']}/pay/")
    before = database_state()

    page.get_by_label("Amount").fill("10.005")
    page.get_by_role("button", name="Review payment").click()
    expect(page.locator(".field", has=page.get_by_label("Amount"))).to_contain_text(
        "Enter at most 2 decimal places for USD.")

    page.get_by_label("Amount").fill("150.00")
    page.get_by_label("Cash", exact=True).check()
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("button", name="Confirm payment of $150.00").click()
    expect(page.locator(".field", has=page.get_by_label("Amount"))).to_contain_text(
        "At most $100.00 can be paid")
    for text in page.locator("[role=alert]").all_inner_texts():  # money as money
        assert not re.search(r"(?<![\d$.,])(10000|15000)(?![\d.,])", text), text
    screenshot(page, "day-payment-over-balance")
    assert database_state() == before

    page.get_by_label("Amount").fill("50.00")
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("link", name="Cancel").click()  # cancelling the review sends nothing
    page.wait_for_url(f"**/invoices/{inv['id']}/")
    assert database_state() == before


def test_a_declined_card_is_told_and_books_nothing(page, tenant):
    inv = tenant.invoice()
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/{inv['id']}/pay/")
    page.get_by_label("Card (online)").check()
    page.get_by_label("Card or account").select_option("sandbox_declined")
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("button", name=re.compile("Confirm payment")).click()
    expect(page.get_by_role("alert")).to_contain_text("declined")
    screenshot(page, "day-card-declined")
    assert Invoice.objects.get(pk=inv["id"]).paid_minor == 0
    assert Payment.objects.get().status == "declined"  # recorded, nothing booked


def test_an_invoice_row_error_is_shown_on_its_row_and_writes_nothing(page, tenant):
    customer = tenant.customer()
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/new/?customer={customer}")
    before = database_state()
    write_line(page, 1, description="Massage")  # no price
    page.get_by_role("button", name="Write invoice").click()
    expect(page.locator(".field", has=page.get_by_label("Unit price of line 1"))).to_contain_text(
        "Unit price is required.")
    page.get_by_role("button", name="Write invoice").click()
    assert database_state() == before


def test_an_accountant_may_not_add_customers_or_take_payments(page, tenant):
    inv = tenant.invoice()
    books, _ = tenant.user("accountant")
    sign_in(page, books.user.email)
    assert page.get_by_role("link", name="New guest").count() == 0
    page.goto(f"/invoices/{inv['id']}/")
    assert page.get_by_role("link", name="Take payment").count() == 0
    before = database_state()
    response = page.goto(f"/invoices/{inv['id']}/pay/")
    assert response.status == 403
    assert database_state() == before


def test_a_taxed_invoice_written_paid_and_refunded_in_the_browser_adds_up_as_the_api(page,
                                                                                  tenant):
    """The same sale, payment and refund once in the browser and once through the API: the
    invoice's figures agree to the cent."""
    figures = ("subtotal", "tax", "total", "credits", "paid", "refunded", "balance_due",
               "status")
    # Through the API.
    by_api = tenant.invoice(
        {"kind": "service", "description": "Massage", "unit_price": "1234.56",
         "tax_rate": "8.875"},
        {"kind": "product", "description": "Oil", "unit_price": "19.99", "quantity": 3,
         "tax_rate": "8.875"}, customer=tenant.customer("Api Guest", "api@example.com"))
    paid = tenant.pay(by_api["id"], "500.00", method="cash")
    r = tenant.api.post(f"/payments/{paid['id']}/refunds", {
        "type": "offline", "amount": "123.45", "method": "cash", "reason": "Goodwill",
        "decrease_balance_owed": True})
    assert r.status_code == 201, r.content
    want = tenant.api.get(f"/invoices/{by_api['id']}").json()

    # In the browser.
    customer = tenant.customer("Web Guest", "web@example.com")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/new/?customer={customer}")
    write_line(page, 1, description="Massage", price="1,234.56", tax="8.875")
    write_line(page, 2, kind="product", description="Oil", price="19.99", tax="8.875")
    page.get_by_label("Qty of line 2").fill("3")
    page.get_by_role("button", name="Write invoice").click()
    page.get_by_role("link", name="Take payment").click()
    page.get_by_label("Amount").fill("500.00")
    page.get_by_label("Cash", exact=True).check()
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("button", name="Confirm payment of $500.00").click()
    page.get_by_role("button", name="Record offline refund").click()
    page.get_by_label("Refund amount").fill("123.45")
    page.get_by_label("Reason for refund").fill("Goodwill")
    page.get_by_label("Refund method").select_option("cash")
    page.get_by_label("Decrease the balance owed").check()
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("button", name="Record refund of $123.45").click()
    expect(page.get_by_text("Offline refund of $123.45 by cash recorded")).to_be_visible()
    by_web = Invoice.objects.exclude(pk=by_api["id"]).get()
    got = tenant.api.get(f"/invoices/{by_web.pk}").json()
    assert {k: got[k] for k in figures} == {k: want[k] for k in figures}
    assert [(line["net"], line["tax"], line["paid"]) for line in got["lines"]] == [
        (line["net"], line["tax"], line["paid"]) for line in want["lines"]]
    page.goto(f"/invoices/{by_web.pk}/")
    expect(page.locator("dl.totals")).to_contain_text(
        "$" + f"{Decimal(want['balance_due']):,.2f}")
    screenshot(page, "day-taxed-invoice-refunded")
