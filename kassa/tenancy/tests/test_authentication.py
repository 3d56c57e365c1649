"""Bearer tokens: stored hashed, shown once; without a good one every endpoint is a 401."""

from __future__ import annotations

import hashlib

import pytest

from kassa.tenancy.models import ApiToken

# Every endpoint of the foundation, with a body that would be valid, so that the 401 can only
# come from the missing or bad token.
ENDPOINTS = [
    ("get", "/settings"), ("patch", "/settings"), ("get", "/centers"), ("post", "/centers"),
    ("get", "/customers"), ("post", "/customers"), ("get", "/customers/1"), ("get", "/cases"),
    ("post", "/cases"), ("get", "/cases/1"), ("get", "/cases/1/payments"), ("get", "/invoices"),
    ("post", "/invoices"), ("get", "/invoices/1"), ("post", "/invoices/1/payments"),
    ("get", "/payments/1"), ("get", "/payments/1/history"),
]


def call(client, method, path, token=None, header=None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"/api/v1{path}"
    if method == "get":
        return client.get(url, headers=headers)
    return getattr(client, method)(url, "{}", content_type="application/json", headers=headers)


BAD_HEADERS = [
    None, "", "Bearer", "Bearer ", "Bearer not-a-token", "Basic YWRtaW46cHc=",
    "Bearer kassa_" + "x" * 43, "Bearer " + "k" * 5000,
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_or_bad_token_is_401_and_changes_nothing(tenant, unchanged, method, path):
    with unchanged():
        for header in BAD_HEADERS:
            r = call(tenant.api.client, method, path, header=header)
            assert r.status_code == 401, (header, r.content)
            assert r["Content-Type"] == "application/problem+json"
            assert r["WWW-Authenticate"] == "Bearer"
            assert r.json()["code"] == "unauthorized" and r.json()["status"] == 401


def test_a_token_is_stored_only_as_its_digest(tenant):
    stored = ApiToken.objects.get(membership=tenant.admin)
    assert stored.digest == hashlib.sha256(tenant.token.encode()).hexdigest()
    assert tenant.token not in {stored.digest, stored.prefix}
    assert tenant.token.startswith(stored.prefix) and len(stored.prefix) == 12


def test_a_deactivated_users_token_stops_working(tenant):
    membership, api = tenant.user("front_desk")
    assert api.get("/settings").status_code == 200
    membership.user.is_active = False
    membership.user.save()
    assert api.get("/settings").status_code == 401


def test_a_token_is_good_only_for_its_own_organization(tenant, other_tenant):
    customer = tenant.customer()
    assert tenant.api.get(f"/customers/{customer}").status_code == 200
    assert other_tenant.api.get(f"/customers/{customer}").status_code == 404
    assert other_tenant.api.get("/customers").json() == []


def test_using_a_token_records_when(tenant):
    ApiToken.objects.filter(membership=tenant.admin).update(last_used_at=None)
    tenant.api.get("/settings")
    assert ApiToken.objects.get(membership=tenant.admin).last_used_at is not None
