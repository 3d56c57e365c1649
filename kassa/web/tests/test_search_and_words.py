"""The front desk's search and the words of the trade (issue 15, item 2), in Chromium: a
funeral home finds a case by the decedent's name, a payment and a refund by their numbers, a
family by its contact or e-mail, and is told what was searched when nothing matched; a spa's
pages speak of guests."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from kassa.tenancy.models import Organization
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def search(page, label: str, text: str) -> None:
    page.goto("/")
    page.get_by_label(label).fill(text)
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()


def test_a_funeral_home_finds_cases_receipts_and_families(page, tenant):
    Organization.objects.filter(pk=tenant.organization.pk).update(business_kind="funeral_home")
    r = tenant.api.post("/customers", {"name": "The Alvarez Family", "email": "maria@example.com",
                                       "contact_name": "Maria Alvarez"})
    family = r.json()["id"]
    case = tenant.api.post("/cases", {"customer": family,
                                      "name": "Jose Alvarez (1941–2026)"}).json()["id"]
    inv = tenant.invoice(customer=family, case=case)
    payment = tenant.pay(inv["id"], "100.00", method="check")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "25.00", "method": "check", "reason": "Flowers returned"})
    refund = r.json()["id"]
    label = "Find invoice or receipt, a family or a case"
    sign_in(page, tenant.admin.user.email)
    expect(page.get_by_role("link", name="New family")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Cases")).to_be_visible()

    search(page, label, "jose")
    expect(page.locator(".search-cases")).to_contain_text("Jose Alvarez (1941–2026)")
    screenshot(page, "search-case-by-decedent")
    page.get_by_role("link", name="Jose Alvarez (1941–2026)").click()
    expect(page.get_by_role("heading", name="Case Jose Alvarez (1941–2026)")).to_be_visible()

    search(page, label, f"refund {refund}")
    expect(page.locator(".search-refunds")).to_contain_text(f"Refund #{refund} · $25.00")
    assert page.locator(".search-payments").count() == 0  # "refund" names the kind
    screenshot(page, "search-refund-by-number")
    search(page, label, f"#{payment['id']}")
    expect(page.locator(".search-payments")).to_contain_text(
        f"Payment #{payment['id']} · $100.00 by check")
    search(page, label, inv["number"])
    expect(page.get_by_role("link", name=inv["number"]).first).to_be_visible()
    search(page, label, "maria@")
    expect(page.locator(".search-customers")).to_contain_text("The Alvarez Family")
    expect(page.get_by_role("heading", name="Families")).to_be_visible()

    search(page, label, "Nobody Here")
    expect(page.get_by_test_id("no-match")).to_have_text(
        "Nothing matched “Nobody Here”. Searched invoice numbers, payment and refund numbers, "
        "family names and e-mails and decedents' names of cases.")
    screenshot(page, "search-nothing-matched")


def test_a_spa_searches_guests_and_says_so(page, tenant):
    tenant.customer("Ava Chen", "ava@example.com")
    sign_in(page, tenant.admin.user.email)
    assert page.get_by_role("link", name="Cases").count() == 0
    search(page, "Find invoice or receipt, or a guest", "ava@example")
    expect(page.get_by_role("heading", name="Guests")).to_be_visible()
    expect(page.locator(".search-customers")).to_contain_text("Ava Chen")
    search(page, "Find invoice or receipt, or a guest", "99999")
    expect(page.get_by_test_id("no-match")).to_have_text(
        "Nothing matched “99999”. Searched invoice numbers, payment and refund numbers and "
        "guest names and e-mails.")
