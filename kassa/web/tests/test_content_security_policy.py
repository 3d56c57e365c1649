"""The Content-Security-Policy: every answer carries it, the browser refuses what it forbids
(and the browser tests' fixture notices, so that every browser test proves its pages pass),
and the pages that need scripts — the API docs, the admin — still work under it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from kassa.web.tests.conftest import PASSWORD, sign_in

EXPECTED = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/api/v1/docs", "/api/v1/openapi.json",
                                  "/healthz"])
def test_every_answer_carries_the_policy_with_its_directives(path):
    r = Client().get(path)
    assert r.status_code == 200
    assert directives(r["Content-Security-Policy"]) == EXPECTED
    # Nothing allows inline code or eval anywhere in it.
    assert "unsafe" not in r["Content-Security-Policy"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_browser_refuses_inline_code_and_the_fixture_records_it(page, tenant,
                                                                    csp_violations):
    sign_in(page, tenant.admin.user.email)
    assert csp_violations == []  # the front desk itself passes
    # What the pages used to do (an inline script, hx-on/onclick, a style attribute), done
    # now from outside: the policy refuses each one, and the fixture would fail the test.
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.appendChild(script);
        const button = document.createElement("button");
        button.id = "inline-handler";
        button.setAttribute("onclick", "window.handlerRan = true");
        button.textContent = "inline";
        document.body.appendChild(button);
        document.body.insertAdjacentHTML("beforeend", "<p style='color: red'>styled</p>");
    }""")
    page.click("#inline-handler")
    page.wait_for_function("() => true")  # lets the console messages arrive
    page.wait_for_timeout(200)
    assert page.evaluate("[window.inlineRan, window.handlerRan]") == [None, None]
    found = " | ".join(csp_violations)
    assert "script-src-elem" in found, found  # the inline <script>
    assert "script-src-attr" in found, found  # the onclick handler
    assert "style-src-attr" in found, found  # the style attribute
    csp_violations.clear()  # provoked on purpose: this test passes


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_api_docs_work_under_the_policy(page):
    page.goto("/api/v1/docs")
    # Swagger UI from ninja's own static files, drawing the operations from openapi.json.
    page.get_by_text("/api/v1/centers").first.wait_for()
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("Kassa")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_admin_works_under_the_policy(page, tenant):
    get_user_model().objects.create_superuser("root@example.com", "root@example.com", PASSWORD)
    page.goto("/admin/")
    page.get_by_label("Username").fill("root@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Invoices").first.click()
    page.wait_for_url("**/admin/billing/invoice/")
    assert page.get_by_role("heading", name="Select invoice to view").is_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_behaviour_moved_out_of_inline_handlers_still_works(page, tenant):
    """web/kassa.js, which replaced the pages' onsubmit and hx-on:click handlers."""
    sign_in(page, tenant.admin.user.email)
    page.evaluate("""() => {
        document.body.insertAdjacentHTML("beforeend", `
          <form id="once" data-once><button id="plain">Pay</button>
            <button id="named" name="choice" value="a">A</button></form>
          <details class="menu" id="menu" open><summary>Menu</summary>
            <a id="item" href="#nowhere">Item</a></details>`);
        document.getElementById("once").addEventListener("submit", (e) => e.preventDefault());
    }""")
    page.click("#named")
    assert page.evaluate("document.getElementById('named').disabled") is False
    page.click("#plain")
    assert page.evaluate("document.getElementById('plain').disabled") is True  # no double click
    # The click on "Pay" was outside the menu, which closed it: open it again.
    assert page.evaluate("document.getElementById('menu').open") is False
    page.evaluate("document.getElementById('menu').open = true")
    page.click("#item")
    assert page.evaluate("document.getElementById('menu').open") is False
