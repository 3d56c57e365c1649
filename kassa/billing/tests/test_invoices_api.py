"""POST /invoices, GET /invoices/{id}, GET /invoices?number=&customer=."""

from __future__ import annotations

import pytest

from conftest import make_tenant
from kassa.billing.models import Invoice
from kassa.ledger.models import JournalEntry
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify

FACIAL = {"kind": "service", "description": "Facial", "unit_price": "100.00", "tax_rate": "8.875"}


def test_invoice_is_issued_with_taxed_lines_and_posted_to_the_ledger(tenant):
    customer = tenant.customer()
    inv = tenant.invoice(
        FACIAL,
        {"kind": "product", "description": "Serum", "quantity": 3, "unit_price": "19.99",
         "tax_rate": "7.25"},
        {"kind": "service", "description": "Consult", "unit_price": "0.01"},
        customer=customer,
    )
    # 100.00 at 8.875 % = 8.875 → 8.88 (half-up); 59.97 at 7.25 % = 4.3478… → 4.35
    assert (inv["subtotal"], inv["tax"], inv["total"]) == ("159.98", "13.23", "173.21")
    assert (inv["status"], inv["paid"], inv["credits"], inv["refunded"], inv["balance_due"]) == \
        ("open", "0.00", "0.00", "0.00", "173.21")
    assert inv["number"] == "1001" and inv["customer"] == customer
    assert inv["center"] == tenant.center_id and inv["case"] is None
    assert [(ln["kind"], ln["quantity"], ln["unit_price"], ln["tax_rate"], ln["net"], ln["tax"],
             ln["paid"]) for ln in inv["lines"]] == [
        ("service", 1, "100.00", "8.875", "100.00", "8.88", "0.00"),
        ("product", 3, "19.99", "7.25", "59.97", "4.35", "0.00"),
        ("service", 1, "0.01", "0", "0.01", "0.00", "0.00"),
    ]
    assert inv["payments"] == [] and inv["refunds"] == [] and inv["packages"] == []
    assert tenant.api.get(f"/invoices/{inv['id']}").json() == inv

    entry = JournalEntry.objects.get(kind="invoice_issued")
    postings = {(p.code, p.amount_minor) for p in entry.postings.all()}
    assert postings == {("receivable", 17321), ("revenue_service", -10000),
                        ("tax_payable", -888), ("revenue_product", -5997),
                        ("tax_payable", -435), ("revenue_service", -1)}
    assert balance("receivable", invoice_id=inv["id"]) == 17321
    assert verify(tenant.organization) == []


def test_the_longest_description_allowed_is_stored_whole(tenant):
    inv = tenant.invoice(line(description="d" * 200))
    assert inv["lines"][0]["description"] == "d" * 200


def test_invoice_numbers_run_per_organization(tenant, other_tenant):
    assert [tenant.invoice()["number"] for _ in range(3)] == ["1001", "1002", "1003"]
    assert other_tenant.invoice()["number"] == "1001"


def test_invoice_in_a_case_of_its_customer(tenant):
    family = tenant.customer()
    case = tenant.api.post("/cases", {"customer": family, "name": "Case"}).json()["id"]
    assert tenant.invoice(customer=family, case=case)["case"] == case


def test_invoices_are_found_by_number_and_by_customer(tenant, other_tenant):
    ann, bo = tenant.customer("Ann", "ann@example.com"), tenant.customer("Bo", "bo@example.com")
    a1, b1, a2 = (tenant.invoice(customer=ann), tenant.invoice(customer=bo),
                  tenant.invoice(customer=ann))
    theirs = other_tenant.invoice()
    assert theirs["number"] == a1["number"] == "1001"

    def found(**params):
        r = tenant.api.get("/invoices", **params)
        assert r.status_code == 200, r.content
        return [i["id"] for i in r.json()]

    assert found() == [a2["id"], b1["id"], a1["id"]]  # newest first
    assert found(number="1002") == [b1["id"]]
    assert found(number="1001") == [a1["id"]]  # never another organization's 1001
    assert found(customer=ann) == [a2["id"], a1["id"]]
    assert found(customer=ann, number="1003") == [a2["id"]]
    assert found(customer=ann, number="1002") == []
    assert found(number="9999") == []
    assert found(customer=other_tenant.customer()) == []
    assert found(customer="424242") == []
    for junk in ("abc", "²", "-1", "9" * 30, "1_0", "0"):
        r = tenant.api.get("/invoices", customer=junk)
        assert r.status_code == 422, junk
        assert r.json()["errors"][0]["field"] == "customer"
    assert found(limit=1, offset=1) == [b1["id"]]
    full = tenant.api.get("/invoices", number="1001").json()[0]
    assert full == tenant.api.get(f"/invoices/{a1['id']}").json()


def test_a_bad_search_filter_is_422_not_500(tenant):
    for params in ({"number": "10\x0001"}, {"customer": "1\x00"}, {"number": "1" * 65}):
        r = tenant.api.get("/invoices", **params)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", params


def test_unknown_or_another_organizations_invoice_is_404(tenant, other_tenant):
    theirs = other_tenant.invoice()
    for invoice_id in (theirs["id"], "424242", "abc", "0", "99999999999999999999"):
        r = tenant.api.get(f"/invoices/{invoice_id}")
        assert r.status_code == 404 and r.json()["code"] == "not_found", invoice_id


def test_accountant_may_not_issue_an_invoice(tenant, unchanged):
    customer = tenant.customer()
    _, books = tenant.user("accountant")
    with unchanged():
        r = books.post("/invoices", {"customer": customer, "center": tenant.center_id,
                                     "lines": [FACIAL]})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert books.get("/invoices").json() == []


def line(**changes):
    return {**FACIAL, **changes}


BAD_INVOICES = [
    # (what changes in a good body, code, field)
    ({"customer": "424242"}, "validation_error", "customer"),
    ({"customer": "abc"}, "validation_error", "customer"),
    ({"center": "424242"}, "validation_error", "center"),
    ({"case": "424242"}, "validation_error", "case"),
    ({"lines": []}, "validation_error", "lines"),
    ({"lines": [FACIAL] * 101}, "validation_error", "lines"),
    ({"lines": "Facial"}, "validation_error", "lines"),
    ({"lines": [line(kind="gift")]}, "validation_error", "lines[0].kind"),
    ({"lines": [line(kind="package")]}, "validation_error", "lines[0].package_template"),
    ({"lines": [line(kind="package", package_template="424242")]}, "validation_error",
     "lines[0].package_template"),
    ({"lines": [line(package_template="1")]}, "validation_error", "lines[0].package_template"),
    ({"lines": [FACIAL, line(quantity=0)]}, "validation_error", "lines[1].quantity"),
    ({"lines": [line(quantity=10_001)]}, "validation_error", "lines[0].quantity"),
    ({"lines": [line(quantity="many")]}, "validation_error", "lines[0].quantity"),
    ({"lines": [line(quantity=1.5)]}, "validation_error", "lines[0].quantity"),
    ({"lines": [line(description="Fa\x00cial")]}, "validation_error", "lines[0].description"),
    ({"lines": [line(description="x" * 501)]}, "validation_error", "lines[0].description"),
    # the column holds 200: PostgreSQL refused 201 to 500 with a 500 before the service checked
    ({"lines": [line(description="x" * 201)]}, "validation_error", "lines[0].description"),
    ({"lines": [line(description="")]}, "validation_error", "lines[0].description"),
    ({"lines": [line(unit_price=100)]}, "validation_error", "lines[0].unit_price"),
    ({"lines": [line(unit_price="10.001")]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="ten")]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="1e3")]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="0.00")]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="-5.00")]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="9" * 30)]}, "invalid_amount", "lines[0].unit_price"),
    ({"lines": [line(unit_price="1" + "0" * 40)]}, "validation_error", "lines[0].unit_price"),
    ({"lines": [line(unit_price="9999999999999.99", quantity=10_000)]}, "invalid_amount",
     "lines[0].unit_price"),
    ({"lines": [line(unit_price="9000000000000.00", tax_rate="20")]}, "invalid_amount",
     "lines"),
    ({"lines": [line(tax_rate="100.01")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate="-1")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate="8.87501")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate="NaN")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate="1e1")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate="eight")]}, "validation_error", "lines[0].tax_rate"),
    ({"lines": [line(tax_rate=8.875)]}, "validation_error", "lines[0].tax_rate"),
]


@pytest.mark.parametrize(("change", "code", "field"), BAD_INVOICES)
def test_bad_invoice_is_refused_with_the_field_named_and_changes_nothing(tenant, unchanged,
                                                                         change, code, field):
    body = {"customer": tenant.customer(), "center": tenant.center_id, "lines": [FACIAL],
            **change}
    with unchanged():
        r = tenant.api.post("/invoices", body)
    assert r.status_code == 422, r.content
    assert r["Content-Type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == code, problem
    assert [e["field"] for e in problem["errors"]] == [field], problem
    # the refusal took no invoice number either: the next invoice is still the first
    assert tenant.invoice()["number"] == "1001"


def test_another_organizations_center_customer_or_case_is_bad_input(tenant, other_tenant,
                                                                    unchanged):
    mine = tenant.customer()
    theirs = other_tenant.customer()
    their_case = other_tenant.api.post("/cases", {"customer": theirs, "name": "C"}).json()["id"]
    for change, field in (({"customer": theirs}, "customer"),
                          ({"center": other_tenant.center_id}, "center"),
                          ({"case": their_case}, "case")):
        body = {"customer": mine, "center": tenant.center_id, "lines": [FACIAL], **change}
        with unchanged():
            r = tenant.api.post("/invoices", body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field


def test_a_case_of_another_customer_is_refused(tenant, unchanged):
    ann, bo = tenant.customer("Ann", "ann@example.com"), tenant.customer("Bo", "bo@example.com")
    bos_case = tenant.api.post("/cases", {"customer": bo, "name": "Bo's"}).json()["id"]
    with unchanged():
        r = tenant.api.post("/invoices", {"customer": ann, "center": tenant.center_id,
                                          "case": bos_case, "lines": [FACIAL]})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "case", "message": "belongs to another customer"}]


@pytest.mark.parametrize(("currency", "good", "minor", "too_fine"), [
    ("USD", "19.99", 1999, "19.999"),
    ("JPY", "1999", 1999, "1999.5"),
    ("KWD", "1.999", 1999, "1.9999"),
])
def test_unit_price_takes_exactly_the_currencys_decimals(db, currency, good, minor, too_fine):
    shop = make_tenant(f"{currency} Shop", currency=currency)
    inv = shop.invoice({"kind": "product", "description": "Item", "unit_price": good})
    assert inv["total"] == good
    assert Invoice.objects.get(pk=inv["id"]).total_minor == minor
    r = shop.api.post("/invoices", {"customer": shop.customer(), "center": shop.center_id,
                                    "lines": [{"kind": "product", "description": "Item",
                                               "unit_price": too_fine}]})
    assert r.status_code == 422 and r.json()["code"] == "invalid_amount"
    assert "decimal places" in r.json()["errors"][0]["message"]


def test_tax_is_rounded_half_up_once_per_line(db):
    shop = make_tenant("Yen Spa", currency="JPY")
    # 1,250 at 10 % = 125; 1,005 at 5 % = 50.25 → 50; 1,010 at 5 % = 50.5 → 51 (not banker's 50)
    inv = shop.invoice({"kind": "service", "description": "A", "unit_price": "1250",
                        "tax_rate": "10"},
                       {"kind": "service", "description": "B", "unit_price": "1005",
                        "tax_rate": "5"},
                       {"kind": "service", "description": "C", "unit_price": "1010",
                        "tax_rate": "5"})
    assert [ln["tax"] for ln in inv["lines"]] == ["125", "50", "51"]
    assert inv["total"] == str(1250 + 1005 + 1010 + 125 + 50 + 51)
