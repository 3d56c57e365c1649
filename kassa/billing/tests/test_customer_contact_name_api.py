"""A customer's `contact_name` (the person a receipt greets) and PATCH /customers/{id}."""

from __future__ import annotations

import pytest

from kassa.billing.models import Customer


def test_a_family_has_a_contact_name_which_can_be_changed_and_cleared(tenant):
    r = tenant.api.post("/customers", {"name": "The Alvarez Family", "email": "m@example.com",
                                       "contact_name": " Maria Alvarez "})
    assert r.status_code == 201, r.content
    family = r.json()
    assert family["contact_name"] == "Maria Alvarez"
    r = tenant.api.patch(f"/customers/{family['id']}", {"contact_name": "Luis Alvarez",
                                                         "email": "Luis@Example.com"})
    assert r.status_code == 200, r.content
    assert (r.json()["contact_name"], r.json()["email"]) == ("Luis Alvarez", "luis@example.com")
    assert r.json()["name"] == "The Alvarez Family"
    r = tenant.api.patch(f"/customers/{family['id']}", {"contact_name": ""})
    assert r.json()["contact_name"] == ""
    assert Customer.objects.get(pk=family["id"]).greeting_name == "The Alvarez Family"


@pytest.mark.parametrize(("body", "field"), [
    ({"contact_name": "M\x00"}, "contact_name"),
    ({"contact_name": "M" * 201}, "contact_name"),
    ({"name": ""}, "name"),
    ({"email": "nope"}, "email"),
    ({"nickname": "x"}, "nickname"),
])
def test_a_bad_customer_change_is_refused_naming_the_field(tenant, unchanged, body, field):
    ann = tenant.customer()
    with unchanged():
        r = tenant.api.patch(f"/customers/{ann}", body)
    assert r.status_code == 422, r.content
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_another_organizations_customer_is_not_found(tenant, other_tenant, unchanged):
    theirs = other_tenant.customer()
    with unchanged():
        r = tenant.api.patch(f"/customers/{theirs}", {"name": "Mine"})
    assert r.status_code == 404
