"""POST, GET /customers and GET /customers/{id}."""

from __future__ import annotations

import pytest

from kassa.billing.models import Customer


def test_customer_is_created_and_read_back(tenant):
    r = tenant.api.post("/customers", {"name": " Ann Guest ", "email": "Ann.Guest@Example.COM"})
    assert r.status_code == 201, r.content
    ann = r.json()
    assert ann == {"id": ann["id"], "name": "Ann Guest", "contact_name": "",
                   "email": "ann.guest@example.com"}
    assert tenant.api.get(f"/customers/{ann['id']}").json() == ann
    assert tenant.api.get("/customers").json() == [ann]
    assert Customer.objects.get(pk=ann["id"]).organization == tenant.organization


def test_front_desk_creates_customers_and_an_accountant_may_not(tenant, unchanged):
    _, desk = tenant.user("front_desk")
    assert desk.post("/customers", {"name": "Bo", "email": "bo@example.com"}).status_code == 201
    _, books = tenant.user("accountant")
    with unchanged():
        r = books.post("/customers", {"name": "Cy", "email": "cy@example.com"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert len(books.get("/customers").json()) == 1  # reading is fine


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Ann\x00", "email": "ann@example.com"}, "name"),
    ({"name": "Ann", "email": "ann\x00@example.com"}, "email"),
    ({"name": "A" * 201, "email": "ann@example.com"}, "name"),
    ({"name": "Ann", "email": ("a" * 245) + "@example.com"}, "email"),
    ({"name": "Ann", "email": "not-an-email"}, "email"),
    ({"name": "Ann", "email": "ann@"}, "email"),
    ({"name": "Ann", "email": "ann@example"}, "email"),
    ({"name": "Ann", "email": "ann @example.com"}, "email"),
    ({"name": "Ann", "email": ""}, "email"),
    ({"name": "", "email": "ann@example.com"}, "name"),
    ({"name": ["Ann"], "email": "ann@example.com"}, "name"),
    ({"name": "Ann", "email": 12}, "email"),
    ({"name": "Ann"}, "email"),
])
def test_bad_customer_is_refused_with_the_field_named_and_changes_nothing(tenant, unchanged,
                                                                          body, field):
    with unchanged():
        r = tenant.api.post("/customers", body)
    assert r.status_code == 422, r.content
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert all(e["message"] for e in problem["errors"])


def test_customers_are_listed_oldest_first_and_paged(tenant):
    ids = [tenant.customer(f"Guest {i}", f"g{i}@example.com") for i in range(3)]
    assert [c["id"] for c in tenant.api.get("/customers").json()] == ids
    assert [c["id"] for c in tenant.api.get("/customers", limit=1, offset=1).json()] == ids[1:2]


@pytest.mark.parametrize("customer_id", ["999999", "0", "-1", "abc", "1.0", "99999999999999999999",
                                         "%C2%B2"])
def test_unknown_customer_is_404(tenant, customer_id):
    r = tenant.api.get(f"/customers/{customer_id}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert r["Content-Type"] == "application/problem+json"


def test_another_organizations_customer_is_404_and_not_listed(tenant, other_tenant):
    theirs = other_tenant.customer("Their Guest", "their@example.com")
    r = tenant.api.get(f"/customers/{theirs}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert tenant.api.get("/customers").json() == []
