"""Errors that no single router owns."""

from __future__ import annotations

import pytest


def test_an_unknown_api_address_is_a_problem_document(tenant):
    r = tenant.api.get("/no-such-thing")
    assert r.status_code == 404 and r["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"


def test_a_post_to_an_unknown_api_address_is_a_404_problem_not_a_csrf_page(tenant):
    from django.test import Client

    r = Client(enforce_csrf_checks=True).post(
        "/api/v1/no-such-thing", "{}", content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 404 and r["Content-Type"] == "application/problem+json"


def test_a_key_sent_twice_is_refused_naming_it_and_changes_nothing(tenant, unchanged):
    import json

    customer = tenant.customer()
    line = '{"kind": "service", "description": "A", "unit_price": "1.00", "unit_price": "999.00"}'
    body = (f'{{"customer": {json.dumps(customer)}, "center": {json.dumps(tenant.center_id)}, '
            f'"lines": [{line}]}}')
    with unchanged():
        r = tenant.api.client.post("/api/v1/invoices", body, content_type="application/json",
                                   headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 422 and r["Content-Type"] == "application/problem+json"
    assert r.json()["errors"] == [{"field": "unit_price",
                                   "message": "appears twice in the body: send each field once"}]


def test_a_body_over_the_limit_is_a_413_problem(tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = '{"name": "' + "x" * 2000 + '", "email": "a@example.com"}'
    for key in (None, "big-1"):
        headers = {"Authorization": f"Bearer {tenant.token}"}
        if key:
            headers["Idempotency-Key"] = key
        r = tenant.api.client.post("/api/v1/customers", big, content_type="application/json",
                                   headers=headers)
        assert r.status_code == 413 and r["Content-Type"] == "application/problem+json", key
        assert r.json()["code"] == "body_too_large"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_lock_waited_for_too_long_is_503_busy_and_changes_nothing(tenant):
    """Another connection holds the payment's row: the refund waits at most the lock timeout,
    then answers 503 `busy` (retry), its transaction rolled back; the key is free again."""
    import threading

    import psycopg
    from django.db import connection, connections
    from django.test import Client

    from conftest import Api
    from kassa.core.models import IdempotentRequest
    from kassa.refunds.models import Refund

    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    options = connections.databases["default"].setdefault("OPTIONS", {})
    kept = options.get("options")
    options["options"] = "-c lock_timeout=500ms"  # for the refund thread's new connection
    s = connection.settings_dict
    holder = psycopg.connect(dbname=s["NAME"], user=s["USER"], host=s["HOST"] or "127.0.0.1",
                             port=s["PORT"] or 5432)
    answers = []
    try:
        holder.execute("SELECT id FROM billing_payment WHERE id = %s FOR UPDATE",
                       [int(payment["id"])])

        def refund():
            try:
                answers.append(Api(tenant.token, Client()).post(
                    f"/payments/{payment['id']}/refunds",
                    {"type": "offline", "method": "cash", "amount": "10.00",
                     "reason": "Goodwill"}, key="busy-1"))
            finally:
                connection.close()

        thread = threading.Thread(target=refund)
        thread.start()
        thread.join(timeout=30)
    finally:
        holder.rollback()
        holder.close()
        options["options"] = kept
    [answer] = answers
    assert answer.status_code == 503 and answer.json()["code"] == "busy", answer.content
    assert not Refund.objects.exists() and not IdempotentRequest.objects.filter(
        key="busy-1").exists()
    again = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "10.00", "reason": "Goodwill"},
        key="busy-1")
    assert again.status_code == 201
