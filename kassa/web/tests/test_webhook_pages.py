"""Webhook endpoints on the settings page, in Chromium as the admin uses them: added with the
secret shown once (and never again on the settings page), listed, removed; a private URL
refused beside its field with nothing saved. Other roles may not post the forms."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from kassa.web.tests.conftest import screenshot, sign_in
from kassa.webhooks import secret_box
from kassa.webhooks.models import WebhookEndpoint

PUBLIC = "https://93.184.215.14/kassa-hooks"  # a public address: nothing is sent to it here


def field(page, label):
    return page.locator(".field", has=page.get_by_label(label, exact=True))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_adds_an_endpoint_sees_the_secret_once_and_removes_it(page, tenant):
    sign_in(page, tenant.admin.user.email)
    page.goto("/settings/")
    hooks = page.get_by_role("region", name="Webhook endpoints")
    expect(hooks).to_contain_text("No webhook endpoints yet.")

    # A private address is refused beside the URL, and nothing is saved.
    hooks.get_by_label("Endpoint URL").fill("http://10.0.0.8/hooks")
    hooks.get_by_label("refund.created").check()
    hooks.get_by_role("button", name="Add endpoint").click()
    expect(field(page, "Endpoint URL").locator(".errorlist")).to_contain_text(
        "resolves to a private address")
    expect(page.get_by_label("Endpoint URL")).to_have_value("http://10.0.0.8/hooks")
    assert WebhookEndpoint.objects.count() == 0

    page.get_by_label("Endpoint URL").fill(PUBLIC)
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("heading", name="Webhook endpoint added")).to_be_visible()
    secret = page.get_by_label("Secret", exact=True).input_value()
    assert secret.startswith("whsec_")
    screenshot(page, "webhook-endpoint-added")
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.events) == (PUBLIC, ["refund.created"])
    assert secret_box.decrypt(endpoint.secret_encrypted) == secret

    page.get_by_role("link", name="Back to settings").click()
    hooks = page.get_by_role("region", name="Webhook endpoints")
    row = hooks.get_by_role("row", name=PUBLIC)
    expect(row).to_contain_text("refund.created")
    assert secret not in page.content()  # shown once, never again
    hooks.scroll_into_view_if_needed()
    screenshot(page, "settings-webhook-endpoints")
    row.get_by_role("button", name=f"Remove {PUBLIC}").click()
    expect(page.get_by_role("status")).to_contain_text("Webhook endpoint removed.")
    expect(page.get_by_role("region", name="Webhook endpoints")).to_contain_text(
        "No webhook endpoints yet.")
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.django_db
def test_other_roles_may_not_add_or_remove_endpoints(tenant):
    endpoint, _ = _endpoint(tenant)
    for role in ("front_desk", "accountant"):
        member, _ = tenant.user(role)
        client = Client()
        client.force_login(member.user)
        assert client.post("/settings/webhooks/", {"url": PUBLIC,
                                                   "events": ["refund.created"]}).status_code == 403
        assert client.post(f"/settings/webhooks/{endpoint.pk}/remove/").status_code == 403
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [endpoint.pk]


@pytest.mark.django_db
def test_the_page_that_shows_the_secret_is_never_cached_and_another_orgs_is_404(tenant,
                                                                                other_tenant):
    client = Client()
    client.force_login(tenant.admin.user)
    r = client.post("/settings/webhooks/", {"url": PUBLIC, "events": ["payment.succeeded"]})
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    assert b"whsec_" in r.content
    assert b"whsec_" not in client.get("/settings/").content
    theirs, _ = _endpoint(other_tenant)
    assert client.post(f"/settings/webhooks/{theirs.pk}/remove/").status_code == 404
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
    r = client.post("/settings/webhooks/", {"url": PUBLIC, "events": []})
    assert r.status_code == 422 and WebhookEndpoint.objects.count() == 2


def _endpoint(tenant):
    from kassa.webhooks.services import add_endpoint

    return add_endpoint(actor=tenant.admin, url=PUBLIC, events=["refund.created"])
