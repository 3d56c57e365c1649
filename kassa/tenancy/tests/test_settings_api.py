"""GET and PATCH /settings: every organization's four settings; only an admin changes them."""

from __future__ import annotations

import pytest

from kassa.tenancy.models import Organization

PROBLEM = "application/problem+json"


# The refund policy's defaults (DESIGN.md, "Governed refunds").
POLICY = {"approval_threshold": None, "request_roles": ["front_desk"],
          "approver_roles": ["admin"], "daily_refund_limit": None,
          "online_refund_window_days": None, "reason_codes": [], "request_expiry_days": 7}


def test_settings_start_with_the_documented_defaults(tenant):
    r = tenant.api.get("/settings")
    assert r.status_code == 200
    assert r.json() == {"currency": "USD", "timezone": "UTC",
                        "allow_multiple_package_refunds": True, "refund_roles": ["admin"],
                        "business_kind": "spa", **POLICY}


def test_admin_changes_settings_and_they_are_stored(tenant):
    r = tenant.api.patch("/settings", {"currency": "jpy", "timezone": "Asia/Tokyo",
                                       "allow_multiple_package_refunds": False,
                                       "refund_roles": ["front_desk", "admin", "admin"]})
    assert r.status_code == 200, r.content
    want = {"currency": "JPY", "timezone": "Asia/Tokyo", "allow_multiple_package_refunds": False,
            "refund_roles": ["admin", "front_desk"], "business_kind": "spa", **POLICY}
    assert r.json() == want
    assert tenant.api.get("/settings").json() == want
    org = Organization.objects.get(pk=tenant.organization.pk)
    assert (org.currency, org.timezone, org.refund_roles) == ("JPY", "Asia/Tokyo",
                                                              ["admin", "front_desk"])


def test_a_patch_changes_only_the_fields_it_names(tenant):
    r = tenant.api.patch("/settings", {"timezone": "America/Chicago"})
    assert r.status_code == 200
    assert r.json() == {"currency": "USD", "timezone": "America/Chicago",
                        "allow_multiple_package_refunds": True, "refund_roles": ["admin"],
                        "business_kind": "spa", **POLICY}


def test_settings_are_per_organization(tenant, other_tenant):
    tenant.api.patch("/settings", {"currency": "EUR"})
    assert other_tenant.api.get("/settings").json()["currency"] == "USD"


@pytest.mark.parametrize("role", ["front_desk", "accountant"])
def test_only_an_admin_may_change_settings_and_a_refusal_changes_nothing(tenant, unchanged,
                                                                         role):
    _, api = tenant.user(role)
    assert api.get("/settings").status_code == 200  # everyone reads them
    with unchanged():
        r = api.patch("/settings", {"refund_roles": ["admin", "front_desk"]})
    assert r.status_code == 403 and r["Content-Type"] == PROBLEM
    assert r.json()["code"] == "forbidden"


@pytest.mark.parametrize(("body", "field"), [
    ({"currency": "ABC"}, "currency"),
    ({"currency": "US"}, "currency"),
    ({"currency": "DOLLARS"}, "currency"),
    ({"currency": "XXX"}, "currency"),        # "no currency" is an ISO code, not money
    ({"currency": "XAU"}, "currency"),        # nor is gold
    ({"currency": "ÜSD"}, "currency"),
    ({"currency": "US\x00"}, "currency"),
    ({"currency": 840}, "currency"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "America"}, "timezone"),    # a folder of the zone database, not a zone
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": "localtime"}, "timezone"),  # whatever the server's clock says
    ({"timezone": "posix/UTC"}, "timezone"),
    ({"timezone": "Factory"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"timezone": "Europe/Paris\x00"}, "timezone"),
    ({"timezone": "x" * 65}, "timezone"),
    ({"refund_roles": ["admin", "accountant"]}, "refund_roles"),
    ({"refund_roles": ["accountant"]}, "refund_roles"),
    ({"refund_roles": ["owner"]}, "refund_roles"),
    ({"refund_roles": "admin"}, "refund_roles"),
    ({"refund_roles": ["admin", "front_desk", "admin", "front_desk"]}, "refund_roles"),
    ({"refund_roles": [None]}, "refund_roles[0]"),
    ({"allow_multiple_package_refunds": "sometimes"}, "allow_multiple_package_refunds"),
    ({"refund_role": ["front_desk"]}, "refund_role"),  # a misspelt field is not a no-op
])
def test_bad_setting_is_refused_with_the_field_named_and_changes_nothing(tenant, unchanged,
                                                                         body, field):
    with unchanged():
        r = tenant.api.patch("/settings", body)
    assert r.status_code == 422, r.content
    assert r["Content-Type"] == PROBLEM
    problem = r.json()
    assert problem["code"] == "validation_error" and problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == [field], problem


@pytest.mark.parametrize("body", ["[]", "5", '"currency"', "null", "{"])
def test_a_body_that_is_not_an_object_is_refused(tenant, unchanged, body):
    with unchanged():
        r = tenant.api.client.patch("/api/v1/settings", body, content_type="application/json",
                                    headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_currency_cannot_change_once_invoices_exist(tenant, unchanged):
    tenant.invoice()
    with unchanged():
        r = tenant.api.patch("/settings", {"currency": "EUR", "timezone": "Europe/Paris"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "currency",
                                   "message": "cannot change once invoices exist"}]
    # naming the currency it already has is no change, and allowed
    r = tenant.api.patch("/settings", {"currency": "USD", "timezone": "Europe/Paris"})
    assert r.status_code == 200 and r.json()["timezone"] == "Europe/Paris"


def test_currency_cannot_change_once_package_templates_hold_amounts(tenant, unchanged):
    """A USD 1000.00 template would otherwise become JPY 100000 (its minor units reread)."""
    r = tenant.api.post("/package-templates", {
        "name": "Ten sessions", "price": "1000.00", "tax_rate": "0",
        "benefits": [{"name": "Session", "quantity": 10, "unit_value": "100.00"}]})
    assert r.status_code == 201, r.content
    with unchanged():
        r = tenant.api.patch("/settings", {"currency": "JPY"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "currency",
                                   "message": "cannot change once package templates exist"}]
    assert tenant.api.patch("/settings", {"currency": "USD"}).status_code == 200  # the same


def test_settings_need_a_token(anonymous, tenant, unchanged):
    assert anonymous.get("/settings").status_code == 401
    with unchanged():
        assert anonymous.patch("/settings", {"currency": "EUR"}).status_code == 401


def test_refund_roles_may_not_be_emptied(tenant):
    r = tenant.api.patch("/settings", {"refund_roles": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "refund_roles"
    assert tenant.api.get("/settings").json()["refund_roles"] == ["admin"]
