"""`/webhook-endpoints`: admins add (the secret shown once), list and remove endpoints; a URL
Kassa will not send to, or an event type it does not know, is refused naming the field, and a
refused request changes nothing."""

from __future__ import annotations

import socket

import pytest

from conftest import database_state
from kassa.webhooks import secret_box
from kassa.webhooks.addresses import AddressRefused, resolve
from kassa.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

PUBLIC = "https://93.184.215.14/hooks"  # a public address: nothing is resolved or sent


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(tenant):
    r = tenant.api.post("/webhook-endpoints", {
        "url": PUBLIC, "events": ["refund.succeeded", "refund.created", "refund.created"]})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["url"] == PUBLIC
    assert body["events"] == ["refund.created", "refund.succeeded"]  # each once, in order
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40

    listed = tenant.api.get("/webhook-endpoints")
    assert listed.status_code == 200
    assert listed.json() == [{k: v for k, v in body.items() if k != "secret"}]
    assert body["secret"] not in listed.content.decode()

    # Stored so that it can sign, but not in the clear.
    row = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in row.secret_encrypted
    assert secret_box.decrypt(row.secret_encrypted) == body["secret"]


def test_removing_an_endpoint(tenant, other_tenant):
    endpoint = tenant.api.post("/webhook-endpoints",
                               {"url": PUBLIC, "events": ["payment.succeeded"]}).json()
    r = other_tenant.api.client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}",
                                       headers={"Authorization": f"Bearer {other_tenant.token}"})
    assert r.status_code == 404  # another organization's is not found
    assert other_tenant.api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries"
                                ).status_code == 404
    r = tenant.api.client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}",
                                 headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 204
    assert tenant.api.get("/webhook-endpoints").json() == []
    assert tenant.api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").status_code == 404


@pytest.mark.parametrize("role", ["front_desk", "accountant"])
def test_only_an_admin_may_touch_endpoints(tenant, role):
    endpoint = tenant.api.post("/webhook-endpoints",
                               {"url": PUBLIC, "events": ["payment.succeeded"]}).json()
    _, api = tenant.user(role)
    before = database_state()
    r = api.post("/webhook-endpoints", {"url": PUBLIC, "events": ["payment.succeeded"]})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert r["Content-Type"] == "application/problem+json"
    assert api.get("/webhook-endpoints").status_code == 403
    assert api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").status_code == 403
    r = api.client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}",
                          headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code == 403
    assert database_state() == before


@pytest.mark.parametrize("events", [["refund.made"], ["payment.succeeded", "charge.refunded"],
                                    []])
def test_an_unknown_event_type_is_refused_naming_events(tenant, events):
    before = database_state()
    r = tenant.api.post("/webhook-endpoints", {"url": PUBLIC, "events": events})
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "validation_error"
    assert [e["field"] for e in r.json()["errors"]] == ["events"]
    assert database_state() == before


@pytest.mark.parametrize("url", [
    "ftp://93.184.215.14/hooks", "file:///etc/passwd", "javascript:alert(1)", "93.184.215.14",
    "http://", "https://user:pw@93.184.215.14/", "http://93.184.215.14:0/",
    "http://93.184.215.14:99999/",
    "http://127.0.0.1:8000/", "http://localhost/hooks", "http://10.1.2.3/",
    "http://192.168.0.10/", "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://[fd00::1]/",
    "http://100.64.0.1/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://no-such-host.invalid/", "https://93.184.215.14/a path",
])
def test_a_url_kassa_will_not_send_to_is_refused_naming_url(tenant, url):
    before = database_state()
    r = tenant.api.post("/webhook-endpoints", {"url": url, "events": ["refund.created"]})
    assert r.status_code == 422, r.content
    assert [e["field"] for e in r.json()["errors"]] == ["url"]
    assert r["Content-Type"] == "application/problem+json"
    assert database_state() == before


def test_private_addresses_are_allowed_when_the_setting_says_so(tenant, private_allowed):
    r = tenant.api.post("/webhook-endpoints", {"url": "http://127.0.0.1:9/hooks",
                                               "events": ["refund.created"]})
    assert r.status_code == 201, r.content
    # The scheme is still checked.
    r = tenant.api.post("/webhook-endpoints", {"url": "gopher://127.0.0.1/",
                                               "events": ["refund.created"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    """A name with one public and one private address is refused (the private one could be
    the one connected to)."""
    def two_addresses(host, port, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    with pytest.raises(AddressRefused, match="private address"):
        resolve("https://hooks.example.com/kassa")


def test_the_body_is_checked(tenant):
    for body in ({"url": PUBLIC}, {"events": ["refund.created"]},
                 {"url": "http://x\x00/", "events": ["refund.created"]},
                 {"url": PUBLIC, "events": "refund.created"}):
        r = tenant.api.post("/webhook-endpoints", body)
        assert r.status_code == 422, (body, r.content)
    assert WebhookEndpoint.objects.count() == 0
