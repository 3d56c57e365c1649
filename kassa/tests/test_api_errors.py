"""Errors that no single router owns."""

from __future__ import annotations


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
