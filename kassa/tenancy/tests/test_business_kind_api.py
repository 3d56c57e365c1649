"""The `business_kind` setting (DESIGN.md, "The front desk's own words"): funeral_home or spa,
spa by default; only an admin changes it, and anything else is a 422 naming the field."""

from __future__ import annotations

import pytest

from kassa.tenancy.models import Organization


def test_business_kind_defaults_to_spa_and_an_admin_makes_it_a_funeral_home(tenant):
    assert tenant.api.get("/settings").json()["business_kind"] == "spa"
    r = tenant.api.patch("/settings", {"business_kind": "funeral_home"})
    assert r.status_code == 200, r.content
    assert r.json()["business_kind"] == "funeral_home"
    assert Organization.objects.get(pk=tenant.organization.pk).business_kind == "funeral_home"


@pytest.mark.parametrize("value", ["hotel", "", "Funeral_Home", 5, None])
def test_another_business_kind_is_refused_naming_the_field(tenant, unchanged, value):
    with unchanged():
        r = tenant.api.patch("/settings", {"business_kind": value})
    if value is None:  # null is "not given", as for every setting
        assert r.status_code == 200
        return
    assert r.status_code == 422, r.content
    assert [e["field"] for e in r.json()["errors"]] == ["business_kind"]


def test_a_front_desk_may_not_change_the_business_kind(tenant, unchanged):
    _, desk = tenant.user("front_desk")
    with unchanged():
        r = desk.patch("/settings", {"business_kind": "funeral_home"})
    assert r.status_code == 403
