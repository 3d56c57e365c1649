"""The endpoints a process keeps per organization (kassa.webhooks.events): a money transaction
reads them only when the organization's webhooks version moved, and a change of them — by the
API or by the ORM (the admin) — is seen by the very next money change."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kassa.webhooks.models import WebhookDelivery, WebhookEndpoint
from kassa.webhooks.tests.receiver import add_endpoint

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/hooks"  # a public address: nothing is resolved or sent
REFUND = {"type": "offline", "method": "cash", "amount": "5.00", "reason": "Moved away"}


def refund(tenant, payment_id):
    with CaptureQueriesContext(connection) as captured:
        r = tenant.api.post(f"/payments/{payment_id}/refunds", REFUND)
    assert r.status_code == 201, r.content
    return [q["sql"] for q in captured.captured_queries if "webhooks_webhookendpoint" in q["sql"]]


def created_deliveries():
    return WebhookDelivery.objects.filter(event__type="refund.created").count()


def test_endpoints_are_read_again_only_after_they_change(tenant):
    payment = tenant.pay(tenant.invoice()["id"], "100.00")  # read once here, kept: none
    assert refund(tenant, payment["id"]) == []  # kept: not read, nothing written
    assert created_deliveries() == 0

    endpoint = add_endpoint(tenant.api, URL, ["refund.created"])
    assert len(refund(tenant, payment["id"])) == 1  # the version moved: read again
    assert created_deliveries() == 1
    assert refund(tenant, payment["id"]) == []
    assert created_deliveries() == 2

    r = tenant.api.client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}",
                                 headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 204, r.content
    refund(tenant, payment["id"])
    assert WebhookDelivery.objects.count() == 0  # gone with its endpoint, and none new


def test_an_endpoint_made_with_the_orm_is_heard_at_once(tenant):
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    refund(tenant, payment["id"])  # none kept
    endpoint = WebhookEndpoint.objects.create(
        organization=tenant.organization, url=URL, events=["refund.created"],
        secret_encrypted="x", created_at=timezone.now())
    refund(tenant, payment["id"])
    assert created_deliveries() == 1
    endpoint.events = ["payment.succeeded"]
    endpoint.save()
    refund(tenant, payment["id"])
    assert created_deliveries() == 1  # no longer listened for
