"""POST and GET /centers: an admin adds a location; each has its own chart of accounts."""

from __future__ import annotations

import pytest

from kassa.ledger.models import Account, AccountCode
from kassa.tenancy.models import Center


def test_admin_adds_a_center_with_its_chart_of_accounts(tenant):
    r = tenant.api.post("/centers", {"name": "  Uptown  "})
    assert r.status_code == 201, r.content
    center = r.json()
    assert center == {"id": center["id"], "name": "Uptown"}
    assert set(Account.objects.filter(center_id=center["id"]).values_list("code", flat=True)) \
        == set(AccountCode.values)
    listed = tenant.api.get("/centers").json()
    assert listed == [{"id": tenant.center_id, "name": "Main"}, center]


def test_centers_are_listed_per_organization_and_paged(tenant, other_tenant):
    for name in ("B", "C"):
        assert tenant.api.post("/centers", {"name": name}).status_code == 201
    assert [c["name"] for c in other_tenant.api.get("/centers").json()] == ["Main"]
    assert [c["name"] for c in tenant.api.get("/centers", limit=2).json()] == ["Main", "B"]
    assert [c["name"] for c in tenant.api.get("/centers", offset=2).json()] == ["C"]
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "ten"}):
        r = tenant.api.get("/centers", **params)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", params


def test_a_center_name_is_unique_in_its_organization(tenant, other_tenant, unchanged):
    with unchanged():
        r = tenant.api.post("/centers", {"name": "Main"})
    assert r.status_code == 409 and r.json()["code"] == "center_name_taken"
    assert other_tenant.api.post("/centers", {"name": "Uptown"}).status_code == 201
    assert tenant.api.post("/centers", {"name": "Uptown"}).status_code == 201


@pytest.mark.parametrize("role", ["front_desk", "accountant"])
def test_only_an_admin_adds_centers(tenant, unchanged, role):
    _, api = tenant.user(role)
    with unchanged():
        r = api.post("/centers", {"name": "Uptown"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert len(api.get("/centers").json()) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Up\x00town"}, "name"),
    ({"name": "Up\ntown"}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "   "}, "name"),
    ({"name": 7}, "name"),
    ({"name": None}, "name"),
    ({}, "name"),
])
def test_bad_center_name_is_refused_and_changes_nothing(tenant, unchanged, body, field):
    with unchanged():
        r = tenant.api.post("/centers", body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert Center.objects.filter(organization=tenant.organization).count() == 1


def test_the_longest_name_allowed_is_stored_whole(tenant):
    r = tenant.api.post("/centers", {"name": "x" * 200})
    assert r.status_code == 201 and r.json()["name"] == "x" * 200
