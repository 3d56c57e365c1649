"""package-refunds.txt in the browser: the guest profile's Packages tab, redeeming a benefit,
and the Refund Invoice window in its two steps (Select items, Payment methods), with the
article's worked examples word for word. Packages are sold and paid through the API first, as
the front desk would have done at the till."""

from __future__ import annotations

import re

import pytest

from kassa.ledger.models import JournalEntry
from kassa.ledger.verify import verify
from kassa.packages.models import Package
from kassa.refunds.models import Refund
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Body contouring, 5 sessions"


def sell_package(tenant, *, paid: str, online: bool = False, tax_rate: str = "0"):
    """A $1000 package of five $200 sessions sold to a guest, `paid` paid on its invoice."""
    r = tenant.api.post("/package-templates", {
        "name": NAME, "price": "1000.00", "tax_rate": tax_rate,
        "benefits": [{"name": "Contouring session", "quantity": 5, "unit_value": "200.00"}]})
    assert r.status_code == 201, r.content
    guest = tenant.customer("Maya Lopez", "maya@example.com")
    inv = tenant.invoice({"kind": "package", "description": NAME,
                          "package_template": r.json()["id"]}, customer=guest)
    payment = tenant.pay(inv["id"], paid, method="card" if online else "cash", online=online)
    return guest, inv, inv["packages"][0], payment


def invoice_status(tenant, inv) -> str:
    return tenant.api.get(f"/invoices/{inv['id']}").json()["status"]


def redeem_via_api(tenant, pkg) -> None:
    r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                        {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
    assert r.status_code == 201, r.content


def card(page, pkg):
    return page.locator(f"#package-{pkg['id']}")


def select_items(page, amount: str, comments: str = "Guest moving away", close: bool = False,
                 shot: str | None = None, refused: bool = False) -> None:
    """Open the Refund Invoice window from the package's refund icon and fill Select items."""
    page.get_by_role("link", name=f"Refund package {NAME}").click()
    page.wait_for_url(re.compile(r".*\?refund=\d+#refund$"))
    assert page.get_by_label("Package", exact=True).input_value()  # preselected
    page.get_by_label("Refund amount").fill(amount)
    page.get_by_label("Comments").fill(comments)
    if close:
        page.get_by_label("Mark package 'Closed'").check()
    if shot:
        screenshot(page, f"{shot}-select-items")
    page.get_by_role("button", name="Proceed to refund").click()
    if not refused:
        page.get_by_role("group", name="Refund to").wait_for()


def pay_out(page, method: str | re.Pattern[str], note: str = "", shot: str | None = None,
            confirm: bool = True) -> None:
    page.get_by_label(method, exact=isinstance(method, str)).check()
    if note:
        page.get_by_label("Note").fill(note)
    if shot:
        screenshot(page, f"{shot}-payment-methods")
    page.get_by_role("button", name="Review refund").click()
    if confirm:
        confirm_refund(page, shot=shot)


def confirm_refund(page, shot: str | None = None) -> None:
    """Step 3: the review states the money and where it goes; *Refund $…* makes the refund."""
    page.get_by_test_id("review").wait_for()
    if shot:
        screenshot(page, f"{shot}-review")
    page.get_by_role("button", name=re.compile(r"^Refund \$")).click()


def revised_balance(page) -> str:
    return page.get_by_test_id("revised-balance").inner_text()


def test_worked_example_closed_invoice_redeem_200_refund_150_then_from_650(page, tenant):
    guest, inv, pkg, _ = sell_package(tenant, paid="1000.00")
    assert invoice_status(tenant, inv) == "closed"
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    assert page.get_by_role("heading", name="Maya Lopez").is_visible()
    assert page.get_by_text("maya@example.com").is_visible()
    assert card(page, pkg).get_by_role("link", name=inv["number"]).get_attribute(
        "href") == f"/invoices/{inv['id']}/"
    assert card(page, pkg).get_by_test_id("balance").inner_text() == "$1,000.00"
    screenshot(page, "packages-guest-profile")

    # Guest redeemed one benefit worth $200: package balance $800.
    card(page, pkg).get_by_role("button", name="Redeem Contouring session").click()
    page.get_by_role("status").get_by_text(
        f"Redeemed 1 × Contouring session from {NAME}. Package balance: $800.00").wait_for()
    assert card(page, pkg).get_by_test_id("redeemed").inner_text() == "$200.00"
    assert card(page, pkg).get_by_test_id("balance").inner_text() == "$800.00"
    assert card(page, pkg).get_by_test_id("used").inner_text() == "1 / 5"
    screenshot(page, "packages-redeemed")

    # Amount refunded $150: revised package balance $650.
    select_items(page, "150.00", shot="packages-closed-invoice")
    assert page.get_by_test_id("refund-amount").inner_text() == "$150.00"
    assert page.get_by_test_id("refund-tax").inner_text() == "$0.00"
    assert page.get_by_test_id("refund-total").inner_text() == "$150.00"
    pay_out(page, "Cash", shot="packages-closed-invoice")
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert revised_balance(page) == "Package balance: $650.00"
    assert page.get_by_test_id("refund-status").inner_text() == "Recorded"
    assert card(page, pkg).get_by_test_id("status").inner_text() == "Active"
    assert card(page, pkg).get_by_test_id("refunded").inner_text() == "$150.00"
    screenshot(page, "packages-closed-invoice-refund-done")

    # The second refund is taken from the revised balance, $650.
    page.get_by_role("link", name=f"Refund package {NAME}").click()
    assert "balance $650.00" in page.get_by_label("Package", exact=True).locator(
        "option:checked").inner_text()
    select_items(page, "100.00")
    pay_out(page, "Check")
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert revised_balance(page) == "Package balance: $550.00"
    got = Package.objects.get(pk=pkg["id"])
    assert (got.paid_minor, got.redeemed_minor, got.refunded_minor) == (100000, 20000, 25000)
    assert list(Refund.objects.order_by("id").values_list("method", "status")) == [
        ("cash", "recorded"), ("check", "recorded")]
    assert verify(tenant.organization) == []

    # On a tablet the tab, its figures and the refund icon are all still there.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.goto(f"/customers/{guest}/packages/")
    assert page.get_by_role("link", name=f"Refund package {NAME}").is_visible()
    screenshot(page, "packages-guest-profile-tablet")


def test_worked_example_open_invoice_500_paid_200_redeemed_refund_150(page, tenant):
    guest, inv, pkg, _ = sell_package(tenant, paid="500.00")
    redeem_via_api(tenant, pkg)
    assert invoice_status(tenant, inv) == "open"
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    assert card(page, pkg).get_by_test_id("paid").inner_text() == "$500.00"
    assert card(page, pkg).get_by_test_id("balance").inner_text() == "$300.00"
    select_items(page, "150.00", shot="packages-open-invoice")
    pay_out(page, "Check", shot="packages-open-invoice")
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert revised_balance(page) == "Package balance: $150.00"
    assert Refund.objects.count() == 1
    screenshot(page, "packages-open-invoice-refund-done")
    assert Package.objects.get(pk=pkg["id"]).balance_minor == 15000
    assert invoice_status(tenant, inv) == "open"  # its unpaid $500 is still due


def test_closing_the_package_on_refund_forfeits_its_balance(page, tenant):
    guest, _, pkg, _ = sell_package(tenant, paid="1000.00")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    select_items(page, "100.00", close=True, shot="packages-close")
    assert page.get_by_text("The package will be marked Closed").is_visible()
    pay_out(page, "Cash")
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert revised_balance(page) == "Package balance: $0.00"
    assert page.get_by_text("Package status: Closed").is_visible()
    assert card(page, pkg).get_by_test_id("status").inner_text() == "Closed"
    assert card(page, pkg).get_by_test_id("forfeited").inner_text() == "$900.00"
    assert card(page, pkg).get_by_role("button", name=re.compile("Redeem")).count() == 0
    assert page.get_by_role("link", name=f"Refund package {NAME}").count() == 0
    screenshot(page, "packages-closed")
    assert Package.objects.get(pk=pkg["id"]).status == "closed"


def test_refusals_show_their_message_beside_the_field_and_change_nothing(page, tenant):
    guest, _, pkg, _ = sell_package(tenant, paid="1000.00")
    before = (Refund.objects.count(), JournalEntry.objects.count())
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")

    # Over the balance: refused on Select items itself, the message beside Refund amount.
    select_items(page, "1000.01", comments="Too much", refused=True)
    error = page.locator("#id_amount_error")
    assert error.inner_text() == ("The refund amount cannot exceed the package balance that "
                                  "remains, $1,000.00.")
    assert page.get_by_label("Refund amount").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Refund amount").input_value() == "1000.01"  # values kept
    assert page.get_by_label("Comments").input_value() == "Too much"
    screenshot(page, "packages-refund-over-balance")
    assert (Refund.objects.count(), JournalEntry.objects.count()) == before
    assert Package.objects.get(pk=pkg["id"]).refunded_minor == 0

    # Other without a note: the message beside Note, on Payment methods.
    page.get_by_label("Refund amount").fill("100.00")
    page.get_by_role("button", name="Proceed to refund").click()
    pay_out(page, "Other", confirm=False)
    assert "note is required" in page.locator("#id_note_error").inner_text()
    assert page.get_by_label("Other", exact=True).is_checked()
    screenshot(page, "packages-refund-note-required")
    assert (Refund.objects.count(), JournalEntry.objects.count()) == before

    # With the note it goes through, from the same step.
    page.get_by_label("Note").fill("Gift card 4411")
    page.get_by_role("button", name="Review refund").click()
    confirm_refund(page)
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert revised_balance(page) == "Package balance: $900.00"
    assert Refund.objects.get().note == "Gift card 4411"


def test_refund_online_to_the_invoices_card_payment_is_pending_with_its_tax(page, tenant):
    guest, _, _, payment = sell_package(tenant, paid="1088.75", online=True, tax_rate="8.875")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    select_items(page, "150.00")
    # The tax received on the amount goes back with it: 150 × 8.875 % = 13.3125 → $13.31.
    assert page.get_by_test_id("refund-tax").inner_text() == "$13.31"
    assert page.get_by_test_id("refund-total").inner_text() == "$163.31"
    pay_out(page, re.compile(rf"Online to Card payment #{payment['id']}"),
            shot="packages-online")
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    assert page.get_by_test_id("refund-status").inner_text() == "Pending"
    assert page.get_by_text("24–48 hours").is_visible()
    assert revised_balance(page) == "Package balance: $850.00"
    screenshot(page, "packages-online-refund-pending")
    refund = Refund.objects.get()
    assert (refund.type, refund.status, refund.payment_id) == ("online", "pending",
                                                               int(payment["id"]))
    assert (refund.amount_minor, refund.tax_minor) == (15000, 1331)


def test_front_desk_without_permission_sees_no_refund_and_posting_is_refused(page, tenant,
                                                                            other_tenant):
    guest, _, pkg, _ = sell_package(tenant, paid="1000.00")
    stranger = other_tenant.customer("Sam Other", "sam@example.com")
    # v1's rule exactly: the front desk may not even ask (by default it asks: see
    # test_governed_refund_forms.py).
    assert tenant.api.patch("/settings", {"request_roles": []}).status_code == 200
    front_desk, _ = tenant.user("front_desk")
    sign_in(page, front_desk.user.email)
    page.goto(f"/customers/{guest}/packages/")
    assert card(page, pkg).get_by_test_id("balance").inner_text() == "$1,000.00"
    assert page.get_by_role("link", name=re.compile("Refund package")).count() == 0
    # The front desk redeems; more sessions than are left is refused beside the quantity.
    card(page, pkg).get_by_label("Quantity of Contouring session").fill("6")
    card(page, pkg).get_by_role("button", name="Redeem Contouring session").click()
    assert card(page, pkg).get_by_text("Only 5 of Contouring session left").is_visible()
    assert Package.objects.get(pk=pkg["id"]).redeemed_minor == 0
    screenshot(page, "packages-front-desk")
    assert page.goto(f"/customers/{guest}/packages/?refund={pkg['id']}").status == 403

    before = (Refund.objects.count(), JournalEntry.objects.count())
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    form = {"package": pkg["id"], "amount": "150.00", "reason": "Trying anyway",
            "refund_to": "cash"}
    for step in ("select", "pay"):
        r = page.request.post(f"/customers/{guest}/packages/refund/{step}/", form=form,
                              headers={"X-CSRFToken": token})
        assert r.status == 403, step
    assert (Refund.objects.count(), JournalEntry.objects.count()) == before
    assert Package.objects.get(pk=pkg["id"]).balance_minor == 100000
    # Another organization's guest is not found at all.
    assert page.goto(f"/customers/{stranger}/packages/").status == 404


def test_the_wizard_refunds_a_package_to_account_credit(page, tenant):
    guest, _inv, _pkg, _ = sell_package(tenant, paid="1000.00")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/customers/{guest}/packages/")
    select_items(page, "150.00")
    page.get_by_role("radio", name=re.compile("Account credit")).check()
    screenshot(page, "packages-refund-to-credit")
    page.get_by_role("button", name="Review refund").click()
    confirm_refund(page)
    page.wait_for_url(re.compile(r".*\?refunded=\d+#refund$"))
    refund = Refund.objects.get()
    assert (refund.type, refund.method, refund.status) == ("credit", "credit", "recorded")
    page.goto(f"/customers/{guest}/credit/")
    assert page.get_by_test_id("credit-balance").inner_text() == "$150.00"
    assert verify(tenant.organization) == []
