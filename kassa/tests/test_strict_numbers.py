"""A count where the API expects an integer (a quantity) is a JSON integer: `true`, `1.0` and
`"2"` — which pydantic alone reads as 1, 1 and 2 — are refused with a 422 naming the field,
and nothing is written."""

from __future__ import annotations

import pytest

from kassa.core.errors import sentence

NOT_INTEGERS = [True, 1.0, "2", 2.5, None]


def template_body(quantity):
    return {"name": "Five massages", "price": "500.00",
            "benefits": [{"name": "Massage", "quantity": quantity, "unit_value": "100.00"}]}


def assert_refused(r, field):
    assert r.status_code == 422, r.content
    assert r["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "validation_error"
    [error] = body["errors"]
    assert error["field"] == field
    assert error["message"].startswith("must be a whole number")
    assert body["detail"] == sentence(field, error["message"])  # a sentence naming the field


@pytest.mark.parametrize("quantity", NOT_INTEGERS)
def test_an_invoice_line_quantity_that_is_not_an_integer_is_refused(tenant, unchanged,
                                                                    quantity):
    customer = tenant.customer()
    with unchanged():
        r = tenant.api.post("/invoices", {
            "customer": customer, "center": tenant.center_id,
            "lines": [{"kind": "service", "description": "Facial", "unit_price": "100.00",
                       "quantity": quantity}]})
    assert_refused(r, "lines[0].quantity")


@pytest.mark.parametrize("quantity", NOT_INTEGERS)
def test_a_benefit_quantity_that_is_not_an_integer_is_refused(tenant, unchanged, quantity):
    with unchanged():
        r = tenant.api.post("/package-templates", template_body(quantity))
    assert_refused(r, "benefits[0].quantity")


@pytest.mark.parametrize("quantity", NOT_INTEGERS)
def test_a_redemption_quantity_that_is_not_an_integer_is_refused(tenant, unchanged, quantity):
    tpl = tenant.api.post("/package-templates", template_body(5)).json()
    inv = tenant.invoice({"kind": "package", "description": tpl["name"],
                          "package_template": tpl["id"]})
    [pkg] = inv["packages"]
    with unchanged():
        r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                            {"benefit": pkg["benefits"][0]["id"], "quantity": quantity})
    assert_refused(r, "quantity")


def test_integers_still_pass_and_their_bounds_still_hold(tenant):
    tpl = tenant.api.post("/package-templates", template_body(5))
    assert tpl.status_code == 201 and tpl.json()["benefits"][0]["quantity"] == 5
    inv = tenant.invoice({"kind": "service", "description": "Facial", "unit_price": "10.00",
                          "quantity": 3})
    assert inv["lines"][0]["quantity"] == 3
    too_many = tenant.api.post("/package-templates", template_body(10_001))
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "benefits[0].quantity"
