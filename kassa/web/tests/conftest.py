"""Browser tests: Debian's Chromium driven by Playwright (no browser download), against the
live test server. Every page a test visits can be saved as a screenshot under var/screenshots/.

Every page must pass the Content-Security-Policy: whatever the browser refuses under it (an
inline script or handler, an inline style, a script from elsewhere) is recorded from the console
and from `securitypolicyviolation` events, and fails the test that visited the page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"
PASSWORD = "pw-123456"
CSP_VIOLATIONS = pytest.StashKey[list[str]]()

# Added to every document before its own scripts run (Playwright's init scripts are not subject
# to the page's policy): the browser's own report of a refusal, beside its console message.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const element = e.target && e.target.tagName
    ? ` on <${e.target.tagName.toLowerCase()}${e.target.id ? "#" + e.target.id : ""}>` : "";
  console.error(`csp-violation: ${e.effectiveDirective} refused ${e.blockedURI || "inline"} `
                + `at ${e.sourceFile || document.URL}:${e.lineNumber}${element}`);
});
"""


def is_csp_violation(text: str) -> bool:
    return text.startswith("csp-violation:") or "Content Security Policy" in text


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def csp_violations(request: pytest.FixtureRequest) -> list[str]:
    """What the pages of this test refused under the Content-Security-Policy (the `page`
    fixture fills it; a test that provokes a violation on purpose empties it)."""
    violations: list[str] = []
    request.node.stash[CSP_VIOLATIONS] = violations
    return violations


@pytest.fixture
def page(browser: Any, live_server: Any, csp_violations: list[str]) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.add_init_script(REPORT_VIOLATIONS)

    def on_console(message: Any) -> None:
        if message.type == "error" and is_csp_violation(message.text):
            where = message.page.url if message.page else "?"
            csp_violations.append(f"{message.text} (on {where})")

    context.on("console", on_console)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
    # A refusal reported after the test's last step (the hook below has checked the rest).
    assert not csp_violations, "the pages broke the Content-Security-Policy:\n" + "\n".join(
        csp_violations)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose pages broke the Content-Security-Policy fails, even when all it asserted
    held: the policy is part of what every browser test checks."""
    result = yield
    violations = item.stash.get(CSP_VIOLATIONS, None)
    if violations:
        found = list(violations)
        violations.clear()
        raise AssertionError("the pages broke the Content-Security-Policy:\n" + "\n".join(found))
    return result


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"),
                    full_page=True)


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))
