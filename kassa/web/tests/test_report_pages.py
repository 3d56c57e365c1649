"""The reports pages in Chromium: the Impacts of package-refunds.txt as the front desk reads
them — the day's sales and collections going down by the refund, the liability report's
*Refunds* column and closing balance, revenue untouched — each with its chart and the API's own
CSV; bad parameters beside their fields; every role may read the reports
(test_settings_pages.py: only an admin the settings)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import time_machine
from playwright.sync_api import expect

from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def at(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def package_sold_redeemed_and_refunded(tenant: Any) -> dict[str, Any]:
    """The article's example: a $1,000 package paid in full on 2 March, one $200 benefit
    redeemed; on 3 March $150 refunded in cash, the package kept active."""
    with time_machine.travel(at("2026-03-02", 10), tick=False):
        template = tenant.api.post("/package-templates", {
            "name": "Body contouring", "price": "1000.00", "tax_rate": "0",
            "benefits": [{"name": "Session", "quantity": 5, "unit_value": "200.00"}]}).json()
        invoice = tenant.invoice({"kind": "package", "description": "Body contouring",
                                  "package_template": template["id"]},
                                 customer=tenant.customer("Ava Chen", "ava@example.com"))
        package = invoice["packages"][0]
        tenant.pay(invoice["id"], "1000.00", method="card", online=True)
        r = tenant.api.post(f"/packages/{package['id']}/redemptions",
                            {"benefit": package["benefits"][0]["id"], "quantity": 1})
        assert r.status_code in (200, 201), r.content
    with time_machine.travel(at("2026-03-03", 15), tick=False):
        r = tenant.api.post(f"/packages/{package['id']}/refunds", {
            "amount": "150.00", "reason": "moving away", "close_package": False,
            "refund_to": {"method": "cash"}})
        assert r.status_code == 201, r.content
    return package


def figure(page: Any, section: str, row: str) -> str:
    return page.get_by_role("region", name=section).get_by_role("row", name=row).locator(
        "td").inner_text()


def assert_chart_drawn(page: Any) -> None:
    assert page.locator("canvas").count() > 0
    assert page.evaluate("typeof Chart") == "function"
    assert page.evaluate("Chart.getChart(document.getElementById('report-chart')) !== undefined")


def download_csv(page: Any) -> str:
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    return Path(download.value.path()).read_bytes().decode()


def test_the_daily_report_shows_a_package_refund_with_its_chart_and_csv(page, tenant):
    package_sold_redeemed_and_refunded(tenant)
    sign_in(page, tenant.admin.user.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    page.wait_for_url("**/reports/")
    expect(page.get_by_role("heading", name="Daily report")).to_be_visible()

    page.get_by_label("Date").fill("2026-03-02")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*date=2026-03-02.*"))
    assert figure(page, "Sales", "Gross") == "$1,000.00"
    assert figure(page, "Collections", "Received") == "$1,000.00"
    assert figure(page, "Collections", "Card") == "$1,000.00"

    # The refund's day: sales and collections go down by the refunded amount.
    page.get_by_label("Date").fill("2026-03-03")
    page.get_by_label("Center").select_option(label="Main")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*date=2026-03-03.*"))
    assert figure(page, "Sales", "Credits") == "$150.00"
    assert figure(page, "Sales", "Net sales") == "-$150.00"
    assert figure(page, "Collections", "Refunded") == "$150.00"
    assert figure(page, "Collections", "Net collections") == "-$150.00"
    assert figure(page, "Collections", "Cash") == "-$150.00"
    assert figure(page, "Refunds", "Count") == "1"
    assert figure(page, "Refunds", "Total refunded") == "$150.00"
    assert_chart_drawn(page)
    screenshot(page, "report-daily")

    content = download_csv(page)
    api = tenant.api.get("/reports/daily", date="2026-03-03", center=tenant.center_id,
                         format="csv")
    assert content == api.content.decode()
    assert "sales,credits,150.00" in content and "refunds,count,1" in content


def test_liability_shows_the_refunds_column_and_closing_balance_and_revenue_by_kind(
        page, tenant):
    package = package_sold_redeemed_and_refunded(tenant)
    sign_in(page, tenant.admin.user.email)
    page.goto("/reports/")
    page.get_by_role("navigation", name="Reports").get_by_role(
        "link", name="Package liability").click()
    page.wait_for_url("**/reports/package-liability/")
    page.get_by_label("Start").fill("2026-03-01")
    page.get_by_label("End").fill("2026-03-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*start=2026-03-01.*"))

    headers = page.locator("table.liability thead th").all_inner_texts()
    assert headers == ["Package", "Guest", "Opening", "Paid", "Redeemed", "Refunds",
                       "Forfeited", "Closing"]
    row = page.locator("table.liability tbody tr", has_text=package["name"])
    assert row.locator("td").all_inner_texts() == [
        "Ava Chen", "$0.00", "$1,000.00", "$200.00", "$150.00", "$0.00", "$650.00"]
    totals = page.locator("table.liability tfoot td").all_inner_texts()
    assert totals[-1] == "$650.00" and totals[3] == "$150.00"
    assert_chart_drawn(page)
    screenshot(page, "report-package-liability")
    content = download_csv(page)
    api = tenant.api.get("/reports/package-liability", start="2026-03-01", end="2026-03-31",
                         format="csv")
    assert content == api.content.decode()
    assert content.splitlines()[-1] == "total,,,0.00,1000.00,200.00,150.00,0.00,650.00"

    # The refund's day alone: opening 800, closing 650.
    page.goto("/reports/package-liability/?start=2026-03-03&end=2026-03-03")
    assert row.locator("td").all_inner_texts()[1::5] == ["$800.00", "$650.00"]

    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Revenue").click()
    page.get_by_label("Start").fill("2026-03-01")
    page.get_by_label("End").fill("2026-03-31")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*/reports/revenue/\?start=2026-03-01.*"))
    # Revenue: the redemption only; the refund moved the package's balance, not revenue.
    assert figure(page, "Revenue by kind", "Package redemptions") == "$200.00"
    assert figure(page, "Revenue by kind", "Services") == "$0.00"
    assert figure(page, "Revenue by kind", "Total revenue") == "$200.00"
    assert_chart_drawn(page)
    screenshot(page, "report-revenue")
    content = download_csv(page)
    assert content == tenant.api.get("/reports/revenue", start="2026-03-01", end="2026-03-31",
                                     format="csv").content.decode()
    assert "redemption,200.00" in content


def test_bad_parameters_show_their_message_beside_the_field(page, tenant):
    sign_in(page, tenant.admin.user.email)
    page.goto("/reports/revenue/")
    page.get_by_label("Start").fill("2026-03-31")
    page.get_by_label("End").fill("2026-03-01")
    page.get_by_role("button", name="Show").click()
    start = page.locator(".field", has=page.get_by_label("Start"))
    expect(start.locator(".errorlist")).to_have_text("must not be after end")
    assert page.get_by_label("Start").get_attribute("aria-invalid") == "true"
    assert page.get_by_role("link", name="Download CSV").count() == 0
    screenshot(page, "report-bad-period")

    page.goto("/reports/?date=2026-03-03&center=999999")
    center = page.locator(".field", has=page.get_by_label("Center"))
    expect(center.locator(".errorlist")).to_have_text("no center 999999")
    assert page.locator("canvas").count() == 0

    # A CSV with bad parameters is the page with the message, not a file.
    response = page.goto("/reports/package-liability/?start=2026-03-31&end=2026-03-01"
                         "&format=csv")
    assert response.headers["content-type"].startswith("text/html")
    expect(page.locator(".field", has=page.get_by_label("Start"))).to_contain_text(
        "must not be after end")


def test_an_accountant_reads_the_reports_and_sees_no_settings_link(page, tenant):
    accountant, _ = tenant.user("accountant")
    sign_in(page, accountant.user.email)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Reports")).to_be_visible()
    assert nav.get_by_role("link", name="Settings").count() == 0
    for address in ("/reports/", "/reports/package-liability/", "/reports/revenue/"):
        assert page.goto(address).status == 200
        assert_chart_drawn(page)

    # On a tablet the page fits its width (the liability table scrolls inside its box).
    page.set_viewport_size({"width": 820, "height": 1180})
    page.goto("/reports/package-liability/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "report-liability-tablet")
