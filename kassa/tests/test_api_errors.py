"""Errors that no single router owns."""

from __future__ import annotations


def test_an_unknown_api_address_is_a_problem_document(tenant):
    r = tenant.api.get("/no-such-thing")
    assert r.status_code == 404 and r["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"
