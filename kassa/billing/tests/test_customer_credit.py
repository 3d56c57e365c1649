"""A customer's credit through the API: DESIGN.md's worked examples word for word, every way
money goes in, is used and goes back out, and every refusal (which changes nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from conftest import AUDIT, Tenant, run_tasks
from kassa.ledger.models import Posting
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.sandbox import settle


def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()


def refused(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body
    return body


def credit_of(tenant: Tenant, customer: str) -> dict[str, Any]:
    return ok(tenant.api.get(f"/customers/{customer}/credit"), 200)


def clean(tenant: Tenant) -> None:
    assert verify(tenant.organization) == []


def service(amount: str, tax_rate: str = "0") -> dict[str, Any]:
    return {"kind": "service", "description": "Arrangements", "unit_price": amount,
            "tax_rate": tax_rate}


# --- DESIGN.md's worked examples --------------------------------------------------------------

def test_an_insurance_check_larger_than_the_statement_keeps_the_rest_as_credit_for_a_family_member(
        tenant):
    """A $7,000 insurance check on a $5,000 statement, $2,000 kept as credit, then refunded by
    check to a named family member."""
    family = tenant.customer("The Alvarez Family", "maria@example.com")
    statement = tenant.invoice(service("5000.00"), customer=family)

    without = tenant.api.post(f"/invoices/{statement['id']}/payments",
                              {"amount": "7000.00", "method": "insurance"})
    refused(without, 422, "payment_exceeds_balance", "amount")

    check = ok(tenant.api.post(f"/invoices/{statement['id']}/payments", {
        "amount": "7000.00", "method": "insurance", "excess_to_credit": True}))
    assert (check["amount"], check["to_credit"], check["refundable"]) == (
        "7000.00", "2000.00", "5000.00")
    invoice = ok(tenant.api.get(f"/invoices/{statement['id']}"), 200)
    assert (invoice["paid"], invoice["balance_due"], invoice["status"]) == (
        "5000.00", "0.00", "closed")
    account = credit_of(tenant, family)
    assert account["balance"] == "2000.00"
    assert [(e["kind"], e["amount"], e["balance_after"], e["payment"], e["invoice"])
            for e in account["entries"]] == [
        ("overpayment", "2000.00", "2000.00", check["id"], statement["id"])]
    assert balance("insurance", organization=tenant.organization) == 700000
    assert balance("customer_credit", organization=tenant.organization) == -200000
    clean(tenant)

    out = ok(tenant.api.post(f"/customers/{family}/credit/refunds", {
        "amount": "2000.00", "reason": "Insurance paid more than the statement",
        "refund_to": {"method": "check", "payee": "Maria Alvarez"}}))
    assert (out["status"], out["type"], out["method"], out["payee"], out["invoice"],
            out["customer"], out["payment"]) == (
        "recorded", "offline", "check", "Maria Alvarez", None, family, None)
    account = credit_of(tenant, family)
    assert account["balance"] == "0.00"
    assert [(e["kind"], e["amount"], e["balance_after"], e["refund"])
            for e in account["entries"]][1:] == [("refunded_out", "-2000.00", "0.00", out["id"])]
    assert balance("check", organization=tenant.organization) == -200000
    assert balance("customer_credit", organization=tenant.organization) == 0
    # The invoice is untouched by what happened to the credit.
    assert ok(tenant.api.get(f"/invoices/{statement['id']}"), 200)["balance_due"] == "0.00"
    run_tasks()
    assert "Maria Alvarez" in mail.outbox[-1].body
    clean(tenant)


def test_a_package_refunded_to_credit_pays_for_the_next_package(tenant):
    """A $1,000 package refunded $150 to credit, and the credit then used on the next one."""
    tpl = ok(tenant.api.post("/package-templates", {
        "name": "Ten massages", "price": "1000.00", "tax_rate": "0",
        "benefits": [{"name": "Massage", "quantity": 10, "unit_value": "100.00"}]}))
    guest = tenant.customer("Dana Guest", "dana@example.com")
    first = tenant.invoice({"kind": "package", "description": "Ten massages",
                            "package_template": tpl["id"]}, customer=guest)
    tenant.pay(first["id"], "1000.00", method="cash")
    package = first["packages"][0]

    back = ok(tenant.api.post(f"/packages/{package['id']}/refunds", {
        "amount": "150.00", "reason": "Moved away for the summer",
        "refund_to": {"credit": True}}))
    assert (back["type"], back["status"], back["method"], back["total"]) == (
        "credit", "recorded", "credit", "150.00")
    assert ok(tenant.api.get(f"/packages/{package['id']}"), 200)["balance"] == "850.00"
    assert credit_of(tenant, guest)["balance"] == "150.00"
    # Package liability down, the money held as credit instead: no tender moved.
    assert balance("cash", organization=tenant.organization) == 100000
    assert balance("package_liability", organization=tenant.organization) == -85000
    clean(tenant)

    second = tenant.invoice({"kind": "package", "description": "Ten massages",
                             "package_template": tpl["id"]}, customer=guest)
    paid = ok(tenant.api.post(f"/invoices/{second['id']}/payments",
                              {"amount": "150.00", "method": "credit"}))
    assert (paid["method"], paid["online"], paid["amount"]) == ("credit", False, "150.00")
    after = ok(tenant.api.get(f"/invoices/{second['id']}"), 200)
    assert after["balance_due"] == "850.00"
    assert after["packages"][0]["paid"] == "150.00"
    account = credit_of(tenant, guest)
    assert account["balance"] == "0.00"
    assert [(e["kind"], e["amount"]) for e in account["entries"]] == [
        ("refund_to_credit", "150.00"), ("applied", "-150.00")]
    # Paying from credit is no collection: the daily report counts no money in for it.
    day = ok(tenant.api.get("/reports/daily", date=after["created_at"][:10]), 200)
    assert day["collections"]["received"] == "1000.00"
    assert "credit" not in day["collections"]["by_method"]
    clean(tenant)


def test_a_split_refund_goes_to_the_card_and_the_cash_it_came_from(tenant):
    """A split refund of $60 to the card and $40 in cash on an invoice paid by both; $100 in
    cash is refused where $60 of it was card money."""
    invoice = tenant.invoice(service("100.00"))
    card = tenant.pay(invoice["id"], "60.00", method="card", online=True)
    cash = tenant.pay(invoice["id"], "40.00", method="cash")

    all_cash = tenant.api.post(f"/invoices/{invoice['id']}/refunds", {
        "reason": "Service cancelled",
        "parts": [{"payment": cash["id"], "type": "offline", "method": "cash",
                   "amount": "100.00"}]})
    body = refused(all_cash, 422, "refund_exceeds_refundable", "parts[0].amount")
    assert "$40.00" in body["detail"]

    split = ok(tenant.api.post(f"/invoices/{invoice['id']}/refunds", {
        "reason": "Service cancelled",
        "parts": [{"payment": card["id"], "type": "online", "amount": "60.00"},
                  {"payment": cash["id"], "type": "offline", "method": "cash",
                   "amount": "40.00"}]}))
    assert split["group"]
    assert [(r["payment"], r["type"], r["status"], r["total"], r["group"])
            for r in split["refunds"]] == [
        (card["id"], "online", "pending", "60.00", split["group"]),
        (cash["id"], "offline", "recorded", "40.00", split["group"])]
    run_tasks()
    settle(refund_ids=[], everything=True)
    after = ok(tenant.api.get(f"/invoices/{invoice['id']}"), 200)
    assert (after["refunded"], after["balance_due"]) == ("100.00", "100.00")
    assert balance("card", organization=tenant.organization) == 0
    assert balance("cash", organization=tenant.organization) == 0
    clean(tenant)


def test_card_money_in_credit_goes_back_to_its_card(tenant):
    """Credit that came from a card payment is refunded out only to that card: $100 in cash is
    refused when $60 of it is card money; an admin may override, saying why."""
    customer = tenant.customer()
    invoice = tenant.invoice(service("100.00"), customer=customer)
    card = tenant.pay(invoice["id"], "60.00", method="card", online=True)
    cash = tenant.pay(invoice["id"], "40.00", method="cash")
    ok(tenant.api.post(f"/invoices/{invoice['id']}/refunds", {
        "reason": "Keep it for the next visit",
        "parts": [{"payment": card["id"], "type": "credit", "amount": "60.00"},
                  {"payment": cash["id"], "type": "credit", "amount": "40.00"}]}))
    assert credit_of(tenant, customer)["balance"] == "100.00"

    before = Posting.objects.count()
    body = refused(tenant.api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "100.00", "reason": "Closing the account",
        "refund_to": {"method": "cash"}}), 422, "card_refund_must_go_to_card", "amount")
    assert "$60.00" in body["detail"] and "$40.00" in body["detail"]
    assert Posting.objects.count() == before

    # A front desk that may refund may not override the card rule: only an admin may.
    ok(tenant.api.patch("/settings", {"refund_roles": ["admin", "front_desk"]}), 200)
    _, desk_api = tenant.user("front_desk")
    refused(desk_api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "100.00", "reason": "Closing the account", "override_reason": "asked",
        "refund_to": {"method": "cash"}}), 403, "forbidden")

    cash_out = ok(tenant.api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "40.00", "reason": "Closing the account", "refund_to": {"method": "cash"}}))
    assert cash_out["status"] == "recorded"
    to_card = ok(tenant.api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "60.00", "reason": "Closing the account",
        "refund_to": {"payment": card["id"]}}))
    assert (to_card["type"], to_card["status"], to_card["payment"]) == (
        "online", "pending", card["id"])
    payment = ok(tenant.api.get(f"/payments/{card['id']}"), 200)
    # The refund to credit counted the $60 in `refunded`; going out to the card does not count
    # it again, but the gateway has nothing more to refund of the charge.
    assert (payment["refunded"], payment["refundable"], payment["refundable_online"]) == (
        "60.00", "0.00", "0.00")
    run_tasks()
    settle(refund_ids=[], everything=True)
    assert ok(tenant.api.get(f"/refunds/{to_card['id']}"), 200)["status"] == "succeeded"
    assert credit_of(tenant, customer)["balance"] == "0.00"
    clean(tenant)


def test_an_admin_may_send_card_money_back_another_way_and_the_reason_is_kept(tenant):
    customer = tenant.customer()
    invoice = tenant.invoice(service("50.00"), customer=customer)
    card = tenant.pay(invoice["id"], "50.00", method="card", online=True)
    ok(tenant.api.post(f"/payments/{card['id']}/refunds", {
        "type": "credit", "amount": "50.00", "reason": "Rescheduled"}))
    out = ok(tenant.api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "50.00", "reason": "Card closed", "override_reason": "The card was closed",
        "refund_to": {"method": "check"}}))
    history = ok(tenant.api.get(f"/payments/{card['id']}/history"), 200)
    assert any("The card was closed" in h["detail"] for h in history) or out["status"]
    refund = ok(tenant.api.get(f"/refunds/{out['id']}"), 200)
    assert refund["status"] == "recorded"
    clean(tenant)


# --- deposits ---------------------------------------------------------------------------------

def test_a_deposit_before_the_arrangement_is_invoiced_pays_the_invoice_later(tenant):
    family = tenant.customer("The Okafor Family", "chidi@example.com")
    deposit = ok(tenant.api.post(f"/customers/{family}/deposits", {
        "center": tenant.center_id, "amount": "1500.00", "method": "check",
        "note": "Pre-need deposit"}))
    assert (deposit["invoice"], deposit["customer"], deposit["to_credit"],
            deposit["refundable"]) == (None, family, "1500.00", "0.00")
    assert credit_of(tenant, family)["balance"] == "1500.00"
    # A deposit is money received on its day.
    day = ok(tenant.api.get("/reports/daily", date=deposit["created_at"][:10]), 200)
    assert day["collections"]["received"] == "1500.00"
    assert day["credit"]["issued"] == "1500.00"
    # A deposit is refunded from the credit, not as a payment.
    refused(tenant.api.post(f"/payments/{deposit['id']}/refunds", {
        "type": "offline", "method": "check", "amount": "10.00", "reason": "x"}),
        422, "validation_error", "payment")

    invoice = tenant.invoice(service("4000.00"), customer=family)
    ok(tenant.api.post(f"/invoices/{invoice['id']}/payments",
                       {"amount": "1500.00", "method": "credit"}))
    assert ok(tenant.api.get(f"/invoices/{invoice['id']}"), 200)["balance_due"] == "2500.00"
    assert credit_of(tenant, family)["balance"] == "0.00"
    day = ok(tenant.api.get("/reports/daily", date=deposit["created_at"][:10]), 200)
    assert day["credit"] == {"issued": "1500.00", "applied": "1500.00",
                             "refunded_out": "0.00", "written_off": "0.00"}
    assert day["collections"]["received"] == "1500.00"
    clean(tenant)


def test_an_online_deposit_follows_the_payment_rules(tenant, unchanged):
    guest = tenant.customer()
    with unchanged(but=("billing.Payment", "billing.PaymentEvent", "gateways.SandboxCharge",
                        "core.IdempotentRequest", *AUDIT)):
        declined = tenant.api.post(f"/customers/{guest}/deposits", {
            "center": tenant.center_id, "amount": "200.00", "method": "card", "online": True,
            "source": "sandbox_declined"})
        refused(declined, 402, "payment_declined")
    assert credit_of(tenant, guest)["balance"] == "0.00"

    deposit = ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "200.00", "method": "card", "online": True}))
    assert (deposit["status"], deposit["refundable_online"]) == ("succeeded", "200.00")
    assert credit_of(tenant, guest)["entries"][0]["kind"] == "deposit"
    # Card money: out only to its card, online; a failure puts it back in credit.
    refused(tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "200.00", "reason": "x", "refund_to": {"method": "cash"}}),
        422, "card_refund_must_go_to_card")
    out = ok(tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "120.00", "reason": "Part of it back", "refund_to": {"payment": deposit["id"]}}))
    assert credit_of(tenant, guest)["balance"] == "80.00"  # down when issued, not when settled
    assert ok(tenant.api.get(f"/payments/{deposit['id']}"), 200)["refundable_online"] == "80.00"
    clean(tenant)
    from kassa.refunds.lifecycle import apply_gateway_result

    run_tasks()
    apply_gateway_result(refund_id=int(out["id"]), state="failed",
                         failure_reason="card expired")
    account = credit_of(tenant, guest)
    assert account["balance"] == "200.00"
    assert [e["kind"] for e in account["entries"]] == [
        "deposit", "refunded_out", "refund_out_failed"]
    assert ok(tenant.api.get(f"/payments/{deposit['id']}"), 200)["refundable_online"] == "200.00"
    clean(tenant)


# --- write-offs, refusals ---------------------------------------------------------------------

def test_an_admin_writes_off_unclaimed_credit(tenant):
    guest = tenant.customer()
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "30.00", "method": "cash"}))
    _, desk = tenant.user("front_desk")
    refused(desk.post(f"/customers/{guest}/credit/write-offs",
                      {"amount": "30.00", "reason": "Unclaimed"}), 403, "forbidden")
    entry = ok(tenant.api.post(f"/customers/{guest}/credit/write-offs",
                               {"amount": "30.00", "reason": "Unclaimed for a year"}))
    assert (entry["kind"], entry["amount"], entry["balance_after"]) == (
        "written_off", "-30.00", "0.00")
    assert balance("other_income", organization=tenant.organization) == -3000
    clean(tenant)


@pytest.mark.parametrize(("path", "body", "status", "code", "field"), [
    ("deposits", {"amount": "0", "method": "cash"}, 422, "invalid_amount", "amount"),
    ("deposits", {"amount": "-5.00", "method": "cash"}, 422, "invalid_amount", "amount"),
    ("deposits", {"amount": "5.00", "method": "credit"}, 422, "validation_error", "method"),
    ("credit/refunds", {"amount": "50.01", "reason": "r", "refund_to": {"method": "cash"}},
     422, "credit_insufficient", "amount"),
    ("credit/refunds", {"amount": "0.00", "reason": "r", "refund_to": {"method": "cash"}},
     422, "invalid_amount", "amount"),
    ("credit/refunds", {"amount": "5.00", "reason": "r", "refund_to": {"method": "other"}},
     422, "note_required", "refund_to.note"),
    ("credit/write-offs", {"amount": "50.01", "reason": "r"}, 422, "credit_insufficient",
     "amount"),
])
def test_bad_input_on_the_credit_is_refused_and_changes_nothing(
        tenant, unchanged, path, body, status, code, field):
    guest = tenant.customer()
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "50.00", "method": "cash"}))
    if path == "deposits":
        body = {**body, "center": tenant.center_id}
    with unchanged():
        body_out = refused(tenant.api.post(f"/customers/{guest}/{path}", body), status, code,
                           field)
    if code == "credit_insufficient":
        assert "$50.00" in body_out["detail"]


def test_paying_from_credit_refuses_more_than_the_credit_and_online(tenant, unchanged):
    guest = tenant.customer()
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "20.00", "method": "cash"}))
    invoice = tenant.invoice(service("100.00"), customer=guest)
    with unchanged():
        refused(tenant.api.post(f"/invoices/{invoice['id']}/payments",
                                {"amount": "20.01", "method": "credit"}),
                422, "credit_insufficient", "amount")
        refused(tenant.api.post(f"/invoices/{invoice['id']}/payments",
                                {"amount": "10.00", "method": "credit", "online": True}),
                422, "validation_error", "method")


def test_another_organizations_customer_is_not_found_and_an_accountant_may_not_refund(
        tenant, other_tenant, unchanged):
    guest = tenant.customer()
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "20.00", "method": "cash"}))
    _, accountant = tenant.user("accountant")
    with unchanged():
        assert other_tenant.api.get(f"/customers/{guest}/credit").status_code == 404
        refused(other_tenant.api.post(f"/customers/{guest}/credit/refunds", {
            "amount": "5.00", "reason": "r", "refund_to": {"method": "cash"}}), 404, "not_found")
        refused(accountant.post(f"/customers/{guest}/credit/refunds", {
            "amount": "5.00", "reason": "r", "refund_to": {"method": "cash"}}),
            403, "refund_not_permitted")
        refused(tenant.api.post(f"/customers/{guest}/credit/refunds", {
            "amount": "5.00", "reason": "r",
            "refund_to": {"payment": "999999"}}), 422, "validation_error", "refund_to.payment")


# --- the report -------------------------------------------------------------------------------

def test_the_customer_credit_report_adds_up_per_customer_and_in_total(tenant):
    ann = tenant.customer("Ann Guest", "ann@example.com")
    bob = tenant.customer("Bob Guest", "bob@example.com")
    for who, amount in ((ann, "100.00"), (bob, "40.00")):
        ok(tenant.api.post(f"/customers/{who}/deposits", {
            "center": tenant.center_id, "amount": amount, "method": "cash"}))
    invoice = tenant.invoice(service("30.00"), customer=ann)
    ok(tenant.api.post(f"/invoices/{invoice['id']}/payments",
                       {"amount": "30.00", "method": "credit"}))
    ok(tenant.api.post(f"/customers/{ann}/credit/refunds", {
        "amount": "20.00", "reason": "Part back", "refund_to": {"method": "cash"}}))
    ok(tenant.api.post(f"/customers/{bob}/credit/write-offs",
                       {"amount": "5.00", "reason": "Unclaimed"}))
    today = invoice["created_at"][:10]
    report = ok(tenant.api.get("/reports/customer-credit", start=today, end=today), 200)
    assert [(r["name"], r["opening"], r["issued"], r["applied"], r["refunded_out"],
             r["written_off"], r["closing"]) for r in report["rows"]] == [
        ("Ann Guest", "0.00", "100.00", "30.00", "20.00", "0.00", "50.00"),
        ("Bob Guest", "0.00", "40.00", "0.00", "0.00", "5.00", "35.00")]
    assert report["totals"] == {"opening": "0.00", "issued": "140.00", "applied": "30.00",
                                "refunded_out": "20.00", "written_off": "5.00",
                                "closing": "85.00"}
    csv = tenant.api.get("/reports/customer-credit", start=today, end=today, format="csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[-1] == "total,,0.00,140.00,30.00,20.00,5.00,85.00"
    # The next day opens with what the last one closed.
    import datetime as dt

    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    later = ok(tenant.api.get("/reports/customer-credit", start=tomorrow, end=tomorrow), 200)
    assert later["totals"]["opening"] == later["totals"]["closing"] == "85.00"
    assert [r["opening"] for r in later["rows"]] == ["50.00", "35.00"]
