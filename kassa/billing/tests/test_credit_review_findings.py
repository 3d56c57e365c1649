"""What a review of the customer's account found, as tests: each failed before its fix."""
from __future__ import annotations

from typing import Any

from conftest import run_tasks
from kassa.ledger.verify import verify
from kassa.refunds.sandbox import settle


def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()


def service(amount: str) -> dict[str, Any]:
    return {"kind": "service", "description": "Arrangements", "unit_price": amount,
            "tax_rate": "0"}


def package_template(tenant, price="100.00"):
    return ok(tenant.api.post("/package-templates", {
        "name": "Ten massages", "price": price, "tax_rate": "0",
        "benefits": [{"name": "Massage", "quantity": 10, "unit_value": "10.00"}]}))


def test_package_refund_online_ignores_what_the_gateway_already_refunded(tenant):
    """A card payment P of $100 paid a package. A refund out of the customer's (cash)
    credit to P for $100 uses up all the gateway can refund of P. A package refund of $100
    online to P then passes v1's `refundable` check and asks the gateway for $100 more."""
    guest = tenant.customer("Dana Guest", "dana@example.com")
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "100.00", "method": "cash"}))
    tpl = package_template(tenant)
    inv = tenant.invoice({"kind": "package", "description": "Ten massages",
                          "package_template": tpl["id"]}, customer=guest)
    card = tenant.pay(inv["id"], "100.00", method="card", online=True, source="sandbox_ok")
    out = ok(tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "100.00", "reason": "Closing the account",
        "refund_to": {"payment": card["id"]}}))
    assert out["type"] == "online"
    run_tasks()
    settle(refund_ids=[], everything=True)
    p = ok(tenant.api.get(f"/payments/{card['id']}"), 200)
    assert p["refundable_online"] == "0.00"
    package = inv["packages"][0]
    r = tenant.api.post(f"/packages/{package['id']}/refunds", {
        "amount": "100.00", "reason": "Moved away",
        "refund_to": {"payment": card["id"]}})
    assert r.status_code == 422, (r.status_code, r.content[:500])
    assert r.json()["code"] == "refund_exceeds_refundable"
    assert r.json()["errors"][0]["field"] == "refund_to.payment"


def test_card_paid_package_refunded_to_credit_can_be_paid_out_in_cash(tenant):
    """Card money goes back to the card: a package paid by card, refunded to credit,
    becomes credit that is not card money, so it can be refunded out in cash."""
    guest = tenant.customer("Dana Guest", "dana@example.com")
    tpl = package_template(tenant)
    inv = tenant.invoice({"kind": "package", "description": "Ten massages",
                          "package_template": tpl["id"]}, customer=guest)
    tenant.pay(inv["id"], "100.00", method="card", online=True, source="sandbox_ok")
    package = inv["packages"][0]
    ok(tenant.api.post(f"/packages/{package['id']}/refunds", {
        "amount": "100.00", "reason": "Moved away", "refund_to": {"credit": True}}))
    r = tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "100.00", "reason": "Cash please", "refund_to": {"method": "cash"}})
    assert r.status_code == 422, (r.status_code, r.content[:300])
    assert r.json()["code"] == "card_refund_must_go_to_card"
    assert verify(tenant.organization) == []


def test_daily_refunds_block_counts_money_refunded_to_credit_and_then_out_twice(tenant):
    guest = tenant.customer()
    inv = tenant.invoice(service("100.00"), customer=guest)
    cash = tenant.pay(inv["id"], "100.00", method="cash")
    ok(tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "credit", "amount": "100.00", "reason": "Keep it"}))
    ok(tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "100.00", "reason": "Give it back", "refund_to": {"method": "cash"}}))
    day = ok(tenant.api.get("/reports/daily", date=cash["created_at"][:10]), 200)

    assert day["collections"]["refunded"] == "100.00"
    assert day["refunds"]["total"] == "100.00", day["refunds"]


def test_refund_out_of_credit_across_centers_fails_and_books_stay_clean(tenant):
    other = ok(tenant.api.post("/centers", {"name": "Uptown"}))
    guest = tenant.customer()
    dep = ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": other["id"], "amount": "80.00", "method": "card", "online": True,
        "source": "sandbox_refund_fails"}))
    ok(tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "30.00", "method": "cash"}))
    inv = tenant.invoice(service("50.00"), customer=guest)
    paid = ok(tenant.api.post(f"/invoices/{inv['id']}/payments",
                              {"amount": "50.00", "method": "credit"}))
    assert verify(tenant.organization) == []
    out = ok(tenant.api.post(f"/customers/{guest}/credit/refunds", {
        "amount": "60.00", "reason": "Back to the card", "center": tenant.center_id,
        "refund_to": {"payment": dep["id"]}}))
    assert verify(tenant.organization) == []
    run_tasks()
    settle(refund_ids=[], everything=True)
    run_tasks()
    r = ok(tenant.api.get(f"/refunds/{out['id']}"), 200)
    assert r["status"] == "failed", r
    assert verify(tenant.organization) == []
    ok(tenant.api.post(f"/payments/{paid['id']}/refunds", {
        "type": "credit", "amount": "50.00", "reason": "Cancelled"}))
    assert verify(tenant.organization) == []
    credit = ok(tenant.api.get(f"/customers/{guest}/credit"), 200)
    assert credit["balance"] == "110.00", credit
    rep = ok(tenant.api.get("/reports/customer-credit"), 200)

    assert rep["totals"]["closing"] == "110.00"
    for c in (tenant.center_id, other["id"]):
        rep_c = ok(tenant.api.get("/reports/customer-credit", center=c), 200)
        print(c, rep_c["totals"], rep_c["rows"])
