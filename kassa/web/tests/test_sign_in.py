from __future__ import annotations

import pytest

from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_with_email_and_find_an_invoice(page, tenant):
    inv = tenant.invoice(customer=tenant.customer("Ava Chen", "ava@example.com"))
    page.goto("/")
    assert "/accounts/login/" in page.url  # a page needs sign-in
    screenshot(page, "sign-in")
    sign_in(page, tenant.admin.user.email)
    page.get_by_label("Find invoice or receipt, or a guest").fill(inv["number"])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=inv["number"]).click()
    page.wait_for_url(f"**/invoices/{inv['id']}/")
    assert page.get_by_role("heading", name=f"Invoice {inv['number']}").is_visible()
    screenshot(page, "invoice")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/accounts/login/?signed_out=1")
    assert page.get_by_role("status").get_by_text("You are signed out.").is_visible()


def test_wrong_password_is_refused(page, tenant):
    page.goto("/accounts/login/")
    page.get_by_label("E-mail").fill(tenant.admin.user.email)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("That e-mail and password do not match an account").is_visible()


def test_another_organizations_invoice_is_404(page, tenant, other_tenant):
    inv = other_tenant.invoice()
    sign_in(page, tenant.admin.user.email)
    response = page.goto(f"/invoices/{inv['id']}/")
    assert response.status == 404
