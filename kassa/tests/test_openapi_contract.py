"""The API against its own OpenAPI document, fuzzed by schemathesis, in process (WSGI).

Every operation of /api/v1/openapi.json gets valid and invalid input (NUL bytes and other
control characters in strings, huge numbers, wrong types, missing fields, unknown methods, no
token): no answer may be a 5xx, and every answer must be one the document declares, with its
status code, media type (errors are application/problem+json) and schema.

The run is authenticated as a real organization's admin, and the ids it sends are sometimes
real ones (a customer, a case, an open invoice with a payment), so that requests get past
"not found" into the services and their rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kassa.core.text import LINE_PATTERN, MONEY_PATTERN

# Per operation. About 40 s for the whole document on SQLite (seconds on PostgreSQL more).
MAX_EXAMPLES = 40

_LINE = re.compile(LINE_PATTERN)
_SWAPPABLE_LENGTH = 19  # the shortest maxLength of the fields swapped (an id filter's)
_MONEY = re.compile(MONEY_PATTERN)
# Values a real client would send, for body fields whose schema is only "a string": swapped in
# for some generated ones so that requests get past the services' first checks.
_REALISTIC: dict[str, tuple[re.Pattern[str], list[str]]] = {
    "email": (_LINE, ["guest@example.com"]),
    "kind": (_LINE, ["service", "product"]),
    "method": (_LINE, ["cash", "check", "card", "insurance", "other"]),
    "type": (_LINE, ["offline", "online"]),
    "source": (_LINE, ["sandbox_ok", "sandbox_declined"]),
    "tax_rate": (_LINE, ["8.875", "0"]),
    "timezone": (_LINE, ["America/Chicago"]),
    "currency": (_LINE, ["USD", "JPY"]),
    "amount": (_MONEY, ["1.00", "2.50"]),
    "unit_price": (_MONEY, ["40.00"]),
    "url": (_LINE, ["https://93.184.215.14/kassa-hooks"]),  # a public address, never called
}


def _realistic(body: Any, ids: dict[str, str], choice: int) -> Any:
    """The body with real ids and realistic values where it has a *valid* generated one, so
    that a body made invalid on purpose stays invalid."""
    if isinstance(body, list):
        return [_realistic(item, ids, choice) for item in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        # Short enough for any field's maxLength, so that a value too long on purpose stays.
        short = isinstance(value, str) and len(value) <= _SWAPPABLE_LENGTH
        if short and key in ids and _LINE.fullmatch(value):
            out[key] = ids[key]
        elif short and key in _REALISTIC and _REALISTIC[key][0].fullmatch(value):
            candidates = _REALISTIC[key][1]
            out[key] = candidates[choice % len(candidates)]
        else:
            out[key] = _realistic(value, ids, choice)
    return out


@pytest.fixture
def seeded(tenant: Any) -> dict[str, str]:
    """Real objects of the caller's organization, for ids in paths and bodies: a customer with
    a case, an invoice with a service and a package, partly paid by card, one refund."""
    customer = tenant.customer("Seed Guest", "seed@example.com")
    r = tenant.api.post("/cases", {"customer": customer, "name": "Seed case"})
    assert r.status_code == 201, r.content
    case = r.json()["id"]
    r = tenant.api.post("/package-templates", {
        "name": "Five massages", "price": "400.00", "tax_rate": "8.875",
        "benefits": [{"name": "Massage", "quantity": 5, "unit_value": "80.00"}]})
    assert r.status_code == 201, r.content
    template = r.json()["id"]
    invoice = tenant.invoice({"kind": "service", "description": "Facial", "unit_price": "90.00",
                              "tax_rate": "8.875"},
                             {"kind": "package", "description": "Five massages",
                              "package_template": template},
                             customer=customer, case=case)
    package = invoice["packages"][0]
    payment = tenant.pay(invoice["id"], "200.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "5.00", "reason": "Seed", "method": "cash"})
    assert r.status_code == 201, r.content
    refund = r.json()["id"]
    r = tenant.api.post("/webhook-endpoints", {"url": "https://93.184.215.14/kassa-hooks",
                                               "events": ["refund.created"]})
    assert r.status_code == 201, r.content
    return {"customer": customer, "case": case, "center": tenant.center_id,
            "invoice": invoice["id"], "payment": payment["id"], "refund": refund,
            "template": template, "package_template": template, "package": package["id"],
            "benefit": package["benefits"][0]["id"], "endpoint": r.json()["id"]}


@pytest.fixture
def api_schema(tenant: Any, seeded: dict[str, str]) -> Iterator[Any]:
    from kassa.wsgi import application

    # Django's own test client does this too: a request's end must not close the connection
    # that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
        schema.config.update(headers={"Authorization": f"Bearer {tenant.token}"})
        # Valid input may still break a rule of the business (an unknown customer, a payment
        # over the balance, a declined card): the document answers those 422 and 402.
        schema.config.checks.positive_data_acceptance.expected_statuses = [
            "2xx", "401", "402", "403", "404", "409", "422"]

        @schema.hook
        def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
            real = {name: seeded[name.removesuffix("_id")] for name in path_parameters or {}
                    if name.removesuffix("_id") in seeded}
            if not real:
                return st.just(path_parameters)
            return st.sampled_from([path_parameters, {**path_parameters, **real}])

        @schema.hook
        def flatmap_body(context: Any, body: Any) -> Any:
            return st.one_of(st.just(body),
                             st.integers(0, 4).map(lambda n: _realistic(body, seeded, n)))

        yield schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
def test_every_operation_answers_as_documented(case: Any) -> None:
    case.call_and_validate()


# What a fuzzer seldom sends whole: bodies that are not JSON objects at all.

@pytest.mark.parametrize("body", [
    b"{", b"not json", b"\xff\xfe", b"[1, 2]", b"null", b'"text"', b"12",
])
def test_a_body_that_is_not_a_json_object_is_422(tenant: Any, body: bytes) -> None:
    r = tenant.api.client.patch("/api/v1/settings", body, content_type="application/json",
                                headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status_code == 422, r.content
    assert r["Content-Type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["field"] == "body"
    assert tenant.api.get("/settings").json()["currency"] == "USD"


@pytest.mark.parametrize("value", ["Ann\x00", "\x00", "A\x1b[31m", "   ", "x" * 201,
                                   "Ann\x85", "\x9b31m"])  # C1 controls, like C0
def test_nul_and_control_characters_and_blank_text_are_422(tenant: Any, value: str) -> None:
    r = tenant.api.post("/customers", {"name": value, "email": "ann@example.com"})
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "validation_error"
    assert r.json()["errors"][0]["field"] == "name"
    assert tenant.api.get("/customers").json() == []


@pytest.mark.parametrize(("amount", "message"), [
    ("abc", "is not a number"), ("-5", "must be greater than zero"),
    ("1e3", 'must be a decimal string such as "150.00"'), (" 5", 'must be a decimal string'),
    ("1_000", "must be a decimal string"), ("١٢", "must be a decimal string"),
    ("NaN", "is not a number"), ("9" * 40, "is too large"), ("1.001", "decimal places"),
])
def test_money_that_is_not_a_plain_decimal_string_is_invalid_amount(
    tenant: Any, amount: str, message: str
) -> None:
    invoice = tenant.invoice()
    r = tenant.api.post(f"/invoices/{invoice['id']}/payments",
                        {"amount": amount, "method": "cash"})
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_amount"
    assert r.json()["errors"][0]["field"] == "amount"
    assert message in r.json()["errors"][0]["message"]
    assert tenant.api.get(f"/invoices/{invoice['id']}").json()["payments"] == []


def test_huge_numbers_and_wrong_types_are_422(tenant: Any) -> None:
    for query in ({"limit": str(2**70)}, {"offset": "-1"}, {"limit": "ten"}):
        r = tenant.api.get("/customers", **query)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.content
    r = tenant.api.post("/customers", {"name": 12, "email": ["a@b.c"]})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"name", "email"}
    invoice = tenant.invoice()
    r = tenant.api.post(f"/invoices/{invoice['id']}/payments",
                        {"amount": 1e308, "method": "cash"})
    assert r.status_code == 422, r.content


def test_the_document_declares_problem_json_for_every_error() -> None:
    from kassa.api import api

    document = json.loads(json.dumps(api.get_openapi_schema()))
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "422" in statuses, (method, path)
            if operation.get("security"):  # webhooks carry a signature, not a token
                assert "401" in statuses, (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (
                        method, path, status)


@pytest.mark.parametrize("value", [0, 1, 0.0, "true", "yes", "off", None])
def test_a_boolean_is_true_or_false_only(tenant: Any, value: Any) -> None:
    r = tenant.api.patch("/settings", {"allow_multiple_package_refunds": value})
    if value is None:  # an optional field left unset
        assert r.status_code == 200, r.content
    else:
        assert r.status_code == 422, r.content
        assert r.json()["errors"][0]["field"] == "allow_multiple_package_refunds"
    assert tenant.api.get("/settings").json()["allow_multiple_package_refunds"] is True


def test_a_report_day_is_an_iso_date_only(tenant: Any) -> None:
    for day in ("0", "1730592000", "2026-1-3", "03/11/2026"):
        r = tenant.api.get("/reports/daily", date=day)
        assert r.status_code == 422, (day, r.content)
        assert r.json()["errors"][0]["field"] == "date"
    assert tenant.api.get("/reports/daily", date="2026-11-03").status_code == 200


def test_an_id_filter_is_digits_only(tenant: Any) -> None:
    for value in ("³", "¹0", "abc", "9" * 20, "0"):
        r = tenant.api.get("/refunds", case=value)
        assert r.status_code == 422, (value, r.content)
        assert r.json()["errors"][0]["field"] == "case"
    assert tenant.api.get("/refunds", case="12345").json() == []


def test_c1_control_characters_are_refused_in_notes_and_refund_reasons_too(tenant: Any) -> None:
    invoice = tenant.invoice()
    payment = tenant.pay(invoice["id"], "10.00")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "1.00", "reason": "Moved\x9c away"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refunded"] == "0.00"
    from kassa.core.errors import ValidationFailed
    from kassa.refunds.services import refund_payment

    with pytest.raises(ValidationFailed) as refused:  # the service's own check, past the schema
        refund_payment(actor=tenant.admin, payment=payment["id"], type="offline", amount="1.00",
                       reason="ok", method="cash", internal_note="a\x80b")
    assert refused.value.field == "internal_note"
    # Accented letters sit just past the block and stay welcome.
    ok = tenant.api.post("/customers", {"name": "Zoë Ñúñez", "email": "zoe@example.com"})
    assert ok.status_code == 201, ok.content
