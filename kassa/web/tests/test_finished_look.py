"""A finished look (issue 15, items 8 and 9), in Chromium: 403 and 404 pages inside the layout
with a way back, menus that close on Escape and an outside click and move by the keyboard, no
horizontal overflow at 390 px, a favicon, the signed-out message; the API docs make no request
off the server."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import expect

from kassa.tenancy.models import Organization
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_403_and_404_are_styled_pages_with_a_way_back(page, tenant, other_tenant):
    desk, _ = tenant.user("front_desk")
    theirs = other_tenant.invoice()
    sign_in(page, desk.user.email)

    response = page.goto("/settings/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You may not do this")).to_be_visible()
    expect(page.get_by_text("Only an admin may see this page.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # inside the layout
    assert page.locator("link[rel=stylesheet]").count() == 1
    screenshot(page, "error-403")

    response = page.goto(f"/invoices/{theirs['id']}/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(page, "error-404")
    page.get_by_role("link", name="Back to the front desk").click()
    expect(page.get_by_role("heading", name="Front desk")).to_be_visible()


def test_the_500_page_is_inside_the_layout_without_a_request():
    html = render_to_string("500.html")
    assert "Something went wrong on our side" in html and "kassa.css" in html


def test_the_500_page_stands_even_when_the_layout_cannot_be_drawn(monkeypatch, rf):
    from kassa.web.views import errors

    def broken(*args, **kwargs):
        raise ValueError("Missing staticfiles manifest entry for 'web/kassa.css'")

    monkeypatch.setattr(errors, "render_to_string", broken)
    response = errors.server_error(rf.get("/"))
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    monkeypatch.undo()
    assert b"kassa.css" in errors.server_error(rf.get("/")).content  # the layout's, normally


def test_menus_close_on_escape_and_outside_clicks_and_follow_the_arrows(page, tenant):
    customer = tenant.customer()
    case = tenant.api.post("/cases", {"customer": customer, "name": "Elena Morales"}).json()
    inv = tenant.invoice(customer=customer, case=case["id"])
    card = tenant.pay(inv["id"], "50.00", method="card", online=True)
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/payments/{card['id']}/")
    menu = page.locator("details.menu")

    page.get_by_role("button", name="Refund", exact=True).click()
    expect(menu).to_have_attribute("open", "")
    expect(page.get_by_role("link", name="Issue online refund")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("link", name="Record offline refund")).to_be_focused()
    page.keyboard.press("ArrowDown")  # round to the first
    expect(page.get_by_role("link", name="Issue online refund")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(page.get_by_role("button", name="Refund", exact=True)).to_be_focused()

    page.keyboard.press("Enter")  # the keyboard opens it again
    expect(menu).to_have_attribute("open", "")
    page.get_by_role("heading", name="Payment details").click()  # outside
    expect(menu).not_to_have_attribute("open", "")

    page.goto(f"/cases/{case['id']}/payments/")
    kebab = page.locator("details.menu.kebab")
    page.get_by_role("button", name=f"More actions for invoice {inv['number']}").click()
    expect(kebab).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(kebab).not_to_have_attribute("open", "")


def test_no_page_overflows_a_390_px_phone(page, tenant):
    Organization.objects.filter(pk=tenant.organization.pk).update(business_kind="funeral_home")
    customer = tenant.customer("The Alvarez Family", "maria.alvarez.family@example.com")
    case = tenant.api.post("/cases", {"customer": customer,
                                      "name": "Jose Alvarez (1941–2026)"}).json()
    inv = tenant.invoice(customer=customer, case=case["id"])
    card = tenant.pay(inv["id"], "50.00", method="card", online=True)
    sign_in(page, tenant.admin.user.email)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ["/", f"/invoices/{inv['id']}/", f"/payments/{card['id']}/",
                 f"/cases/{case['id']}/payments/", f"/customers/{customer}/",
                 f"/customers/{customer}/packages/", "/cases/", "/customers/new/",
                 f"/invoices/new/?customer={customer}", f"/invoices/{inv['id']}/pay/",
                 "/reports/", "/settings/"]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide"
    screenshot(page, "phone-invoice-pay")


def test_a_favicon_and_the_signed_out_message(page, tenant):
    sign_in(page, tenant.admin.user.email)
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(icon).status == 200
    assert page.request.get("/favicon.ico").status == 200  # redirected to the SVG
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")


def test_the_api_docs_make_no_request_off_the_server(page, live_server):
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto("/api/v1/docs")
    page.get_by_text("/api/v1/centers").first.wait_for()
    off = [url for url in asked
           if not url.startswith((live_server.url, "data:", "blob:"))]
    assert asked and not off, off
    screenshot(page, "api-docs")
