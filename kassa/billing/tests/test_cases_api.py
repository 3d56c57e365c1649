"""POST, GET /cases, GET /cases/{id} and the case's payments tab."""

from __future__ import annotations

import pytest

from kassa.billing.models import Case


def test_case_is_created_for_a_customer_and_read_back(tenant):
    family = tenant.customer("The Alvarez Family", "maria@example.com")
    r = tenant.api.post("/cases", {"customer": family, "name": "Jose Alvarez (1941-2026)"})
    assert r.status_code == 201, r.content
    case = r.json()
    assert case == {"id": case["id"], "customer": family, "name": "Jose Alvarez (1941-2026)"}
    assert tenant.api.get(f"/cases/{case['id']}").json() == case
    assert tenant.api.get("/cases").json() == [case]


def test_payments_tab_shows_the_cases_invoices_and_their_payments_only(tenant):
    family = tenant.customer()
    case = tenant.api.post("/cases", {"customer": family, "name": "Case"}).json()["id"]
    first = tenant.invoice(customer=family, case=case)
    second = tenant.invoice({"kind": "product", "description": "Urn", "unit_price": "80.00",
                             "tax_rate": "10"}, customer=family, case=case)
    tenant.invoice(customer=family)  # not in the case
    by_card = tenant.pay(first["id"], "100.00", method="card", online=True)
    by_check = tenant.pay(second["id"], "30.00", method="check")

    tab = tenant.api.get(f"/cases/{case}/payments")
    assert tab.status_code == 200
    tab = tab.json()
    assert {i["id"] for i in tab["invoices"]} == {first["id"], second["id"]}
    assert [p["id"] for p in tab["payments"]] == [by_card["id"], by_check["id"]] or \
        [p["id"] for p in tab["payments"]] == [by_check["id"], by_card["id"]]
    assert {p["id"]: p["amount"] for p in tab["payments"]} == {by_card["id"]: "100.00",
                                                               by_check["id"]: "30.00"}
    second_now = next(i for i in tab["invoices"] if i["id"] == second["id"])
    assert (second_now["total"], second_now["paid"], second_now["balance_due"]) == \
        ("88.00", "30.00", "58.00")
    assert tab["refunds"] == []


def test_an_empty_case_has_an_empty_payments_tab(tenant):
    family = tenant.customer()
    case = tenant.api.post("/cases", {"customer": family, "name": "Case"}).json()["id"]
    assert tenant.api.get(f"/cases/{case}/payments").json() == {
        "invoices": [], "payments": [], "refunds": []}


def test_accountant_may_not_open_a_case(tenant, unchanged):
    family = tenant.customer()
    _, books = tenant.user("accountant")
    with unchanged():
        r = books.post("/cases", {"customer": family, "name": "Case"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_case_for_another_organizations_customer_is_refused(tenant, other_tenant, unchanged):
    theirs = other_tenant.customer()
    with unchanged():
        r = tenant.api.post("/cases", {"customer": theirs, "name": "Case"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "customer", "message": f"no customer {theirs}"}]


@pytest.mark.parametrize(("body", "field"), [
    ({"customer": "999999", "name": "Case"}, "customer"),
    ({"customer": "abc", "name": "Case"}, "customer"),
    ({"customer": 1, "name": "Case"}, "customer"),  # ids are strings
    ({"customer": "{c}", "name": "Ca\x00se"}, "name"),
    ({"customer": "{c}", "name": "C" * 201}, "name"),
    ({"customer": "{c}"}, "name"),
    ({"name": "Case"}, "customer"),
])
def test_bad_case_is_refused_with_the_field_named_and_changes_nothing(tenant, unchanged, body,
                                                                      field):
    customer = tenant.customer()
    body = {k: v.replace("{c}", customer) if isinstance(v, str) else v for k, v in body.items()}
    with unchanged():
        r = tenant.api.post("/cases", body)
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "validation_error"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert Case.objects.count() == 0


def test_another_organizations_case_is_404(tenant, other_tenant):
    theirs = other_tenant.customer()
    case = other_tenant.api.post("/cases", {"customer": theirs, "name": "Theirs"}).json()["id"]
    for path in (f"/cases/{case}", f"/cases/{case}/payments", "/cases/424242",
                 "/cases/424242/payments", "/cases/x/payments"):
        r = tenant.api.get(path)
        assert r.status_code == 404 and r.json()["code"] == "not_found", path
    assert tenant.api.get("/cases").json() == []
