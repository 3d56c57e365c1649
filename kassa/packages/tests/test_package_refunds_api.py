"""package-refunds.txt through the API: its worked examples word for word, the taxed example,
and every rule's refusal."""

from __future__ import annotations

import pytest

from conftest import run_tasks
from kassa.ledger.models import JournalEntry
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.packages.models import Package
from kassa.refunds.models import Refund
from kassa.refunds.sandbox import settle


def template(tenant, price="1000.00", tax_rate="0", benefits=None):
    body = {"name": "Body contouring, 5 sessions", "price": price, "tax_rate": tax_rate,
            "benefits": benefits or [{"name": "Contouring session", "quantity": 5,
                                      "unit_value": "200.00"}]}
    r = tenant.api.post("/package-templates", body)
    assert r.status_code == 201, r.content
    return r.json()


def sell(tenant, tpl, customer=None, extra_lines=()):
    inv = tenant.invoice({"kind": "package", "description": tpl["name"],
                          "package_template": tpl["id"]}, *extra_lines, customer=customer)
    assert len(inv["packages"]) == 1
    return inv, inv["packages"][0]


def redeem(tenant, pkg, quantity=1):
    r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                        {"benefit": pkg["benefits"][0]["id"], "quantity": quantity})
    assert r.status_code == 201, r.content
    return r.json()


def refund(tenant, pkg, amount, close=False, api=None, **refund_to):
    return (api or tenant.api).post(f"/packages/{pkg['id']}/refunds", {
        "amount": amount, "reason": "Guest moving away", "close_package": close,
        "refund_to": refund_to or {"method": "cash"}})


def get(tenant, pkg):
    return tenant.api.get(f"/packages/{pkg['id']}").json()


def state():
    return (Refund.objects.count(), JournalEntry.objects.count(),
            list(Package.objects.values_list("line__refunded_net_minor", "forfeited_minor",
                                             "status")))


def test_worked_example_closed_invoice_1000_paid_200_redeemed_refund_150(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1000.00", method="card", online=True)
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["status"] == "closed"
    redeem(tenant, pkg)
    assert get(tenant, pkg)["balance"] == "800.00"
    r = refund(tenant, pkg, "150.00")
    assert r.status_code == 201, r.content
    assert r.json()["total"] == "150.00" and r.json()["package"] == pkg["id"]
    got = get(tenant, pkg)
    assert got["balance"] == "650.00" and got["status"] == "active"
    assert (got["paid"], got["redeemed"], got["refunded"]) == ("1000.00", "200.00", "150.00")
    # The second refund is taken from $650.
    over = refund(tenant, pkg, "650.01")
    assert over.status_code == 422 and over.json()["code"] == "package_refund_exceeds_balance"
    assert refund(tenant, pkg, "650.00").status_code == 201
    assert get(tenant, pkg)["balance"] == "0.00"
    assert verify(tenant.organization) == []


def test_worked_example_open_invoice_500_of_1000_paid_200_redeemed_refund_150(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "500.00", method="cash")
    redeem(tenant, pkg)
    assert get(tenant, pkg)["balance"] == "300.00"
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["status"] == "open"
    r = refund(tenant, pkg, "150.00", method="check")
    assert r.status_code == 201, r.content
    assert get(tenant, pkg)["balance"] == "150.00"
    # The invoice still owes its unpaid 500: the refund gave paid money back and took the
    # same off the sale.
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert invoice["balance_due"] == "500.00" and invoice["credits"] == "150.00"
    assert invoice["refunded"] == "150.00"
    second = refund(tenant, pkg, "150.00")
    assert second.status_code == 201
    assert get(tenant, pkg)["balance"] == "0.00"
    assert verify(tenant.organization) == []


def test_taxed_package_refunds_return_the_tax_received_to_the_cent(tenant):
    tpl = template(tenant, tax_rate="8.875")
    inv, pkg = sell(tenant, tpl)
    assert inv["total"] == "1088.75"
    tenant.pay(inv["id"], "1088.75", method="card", online=True)
    assert get(tenant, pkg)["tax_paid"] == "88.75"
    taxes = []
    for amount in ("333.33", "333.33", "333.34"):
        r = refund(tenant, pkg, amount)
        assert r.status_code == 201, r.content
        taxes.append(r.json()["tax"])
        assert r.json()["total"] == f"{float(amount) + float(r.json()['tax']):.2f}"
    assert taxes == ["29.58", "29.58", "29.59"]
    got = get(tenant, pkg)
    assert got["balance"] == "0.00" and got["tax_refunded"] == "88.75"
    assert balance("tax_payable", organization=tenant.organization) == 0
    assert verify(tenant.organization) == []


def test_closing_forfeits_the_balance_and_credits_what_is_unpaid(tenant):
    tpl = template(tenant, tax_rate="10")
    inv, pkg = sell(tenant, tpl)  # 1000 + 100 tax
    tenant.pay(inv["id"], "550.00", method="cash")  # 500 net + 50 tax into the package
    redeem(tenant, pkg)  # 200 recognised
    r = refund(tenant, pkg, "100.00", close=True)
    assert r.status_code == 201, r.content
    assert r.json()["tax"] == "10.00"
    got = get(tenant, pkg)
    assert got["status"] == "closed" and got["forfeited"] == "200.00" and got["balance"] == "0.00"
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert invoice["balance_due"] == "0.00" and invoice["status"] == "closed"
    assert balance("revenue_forfeit", organization=tenant.organization) == -20000
    assert balance("revenue_redemption", organization=tenant.organization) == -20000
    # No more redemptions, and no more refunds.
    r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                        {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
    assert r.status_code == 422 and r.json()["code"] == "package_closed"
    assert refund(tenant, pkg, "1.00").json()["code"] == "package_closed"
    assert verify(tenant.organization) == []


def test_refund_does_not_change_recognised_revenue(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1000.00", method="cash")
    redeem(tenant, pkg, 2)
    before = balance("revenue_redemption", organization=tenant.organization)
    refund(tenant, pkg, "300.00")
    assert balance("revenue_redemption", organization=tenant.organization) == before == -40000
    redeem(tenant, pkg)
    assert balance("revenue_redemption", organization=tenant.organization) == -60000


def test_one_refund_only_when_the_organization_says_so(tenant):
    changed = tenant.api.patch("/settings", {"allow_multiple_package_refunds": False})
    assert changed.status_code == 200
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1000.00", method="cash")
    assert refund(tenant, pkg, "100.00").status_code == 201
    before = state()
    r = refund(tenant, pkg, "100.00")
    assert r.status_code == 409 and r.json()["code"] == "package_already_refunded"
    assert state() == before


def test_refund_online_to_one_of_the_invoice_payments_follows_the_payment_rules(tenant):
    tpl = template(tenant, tax_rate="8.875")
    inv, pkg = sell(tenant, tpl)
    card = tenant.pay(inv["id"], "600.00", method="card", online=True)
    tenant.pay(inv["id"], "488.75", method="cash")
    r = refund(tenant, pkg, "100.00", payment=card["id"])
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["type"] == "online" and body["status"] == "pending" and body["total"] == "108.88"
    again = refund(tenant, pkg, "10.00", payment=card["id"])
    assert again.status_code == 409 and again.json()["code"] == "refund_pending"
    p = tenant.api.get(f"/payments/{card['id']}").json()
    assert p["refund_pending"] and p["refundable"] == "491.12"
    run_tasks()
    settle(refund_ids=[body["id"]], everything=False)
    assert tenant.api.get(f"/refunds/{body['id']}").json()["status"] == "succeeded"
    assert balance("card", organization=tenant.organization) == 60000 - 10888
    assert verify(tenant.organization) == []


def test_failed_online_package_refund_puts_the_money_back_in_the_package(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    card = tenant.pay(inv["id"], "1000.00", method="card", online=True,
                      source="sandbox_refund_fails")
    body = refund(tenant, pkg, "250.00", payment=card["id"]).json()
    assert get(tenant, pkg)["balance"] == "750.00"
    run_tasks()
    settle(refund_ids=[], everything=True)
    assert tenant.api.get(f"/refunds/{body['id']}").json()["status"] == "failed"
    got = get(tenant, pkg)
    assert got["balance"] == "1000.00" and got["refunded"] == "0.00"
    assert tenant.api.get(f"/payments/{card['id']}").json()["refundable"] == "1000.00"
    assert verify(tenant.organization) == []


@pytest.mark.parametrize(("amount", "refund_to", "status", "code", "field"), [
    ("1000.01", {"method": "cash"}, 422, "package_refund_exceeds_balance", "amount"),
    ("0", {"method": "cash"}, 422, "invalid_amount", "amount"),
    ("1.001", {"method": "cash"}, 422, "invalid_amount", "amount"),
    ("10.00", {"method": "insurance"}, 422, "validation_error", "refund_to.method"),
    ("10.00", {"method": "other"}, 422, "note_required", "refund_to.note"),
    ("10.00", {"payment": "999999"}, 422, "validation_error", "refund_to.payment"),
])
def test_refused_package_refund_names_the_rule_and_changes_nothing(tenant, amount, refund_to,
                                                                   status, code, field):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1000.00", method="cash")
    before = state()
    r = refund(tenant, pkg, amount, **refund_to)
    assert r.status_code == status, r.content
    assert r.json()["code"] == code
    assert field in [e["field"] for e in r.json()["errors"]]
    assert state() == before


def test_refund_to_an_offline_payment_is_refused(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    cash = tenant.pay(inv["id"], "1000.00", method="cash")
    r = refund(tenant, pkg, "10.00", payment=cash["id"])
    assert r.status_code == 422 and r.json()["code"] == "online_refund_not_allowed"


def test_nothing_to_refund_on_an_unpaid_package(tenant):
    tpl = template(tenant)
    _inv, pkg = sell(tenant, tpl)
    r = refund(tenant, pkg, "1.00")
    assert r.status_code == 422 and r.json()["code"] == "package_refund_exceeds_balance"


def test_redemption_beyond_what_is_paid_leaves_a_negative_balance(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "100.00", method="cash")
    got = redeem(tenant, pkg)
    assert got["balance"] == "-100.00"
    assert refund(tenant, pkg, "1.00").json()["code"] == "package_refund_exceeds_balance"
    assert verify(tenant.organization) == []


def test_benefits_are_limited_by_what_is_left(tenant):
    tpl = template(tenant)
    _inv, pkg = sell(tenant, tpl)
    redeem(tenant, pkg, 4)
    r = tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                        {"benefit": pkg["benefits"][0]["id"], "quantity": 2})
    assert r.status_code == 422 and r.json()["code"] == "benefit_exhausted"
    assert get(tenant, pkg)["benefits"][0]["used"] == 4


def test_front_desk_and_accountant_may_not_refund_packages_by_default(tenant):
    """The front desk asks (a request, no refund: request_roles defaults to front_desk); the
    accountant may not even ask."""
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1000.00", method="cash")
    _, desk = tenant.user("front_desk")
    _, books = tenant.user("accountant")
    before = state()
    assert refund(tenant, pkg, "10.00", api=books).status_code == 403
    assert state() == before
    r = refund(tenant, pkg, "10.00", api=desk)
    assert r.status_code == 202 and r.json()["request"]["kind"] == "package"
    assert state() == before  # nothing refunded: only the request is recorded


def test_payment_refund_may_not_take_a_package_below_zero(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    cash = tenant.pay(inv["id"], "1000.00", method="cash")
    redeem(tenant, pkg, 4)  # 800 used, 200 left
    r = tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "amount": "300.00", "method": "cash", "reason": "x"})
    assert r.status_code == 422 and r.json()["code"] == "package_refund_exceeds_balance"
    ok = tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "amount": "200.00", "method": "cash", "reason": "x"})
    assert ok.status_code == 201, ok.content
    assert get(tenant, pkg)["balance"] == "0.00" and get(tenant, pkg)["paid"] == "800.00"
    assert verify(tenant.organization) == []


def test_payment_is_allocated_pro_rata_to_what_each_line_owes(tenant):
    tpl = template(tenant, price="300.00", tax_rate="10",
                   benefits=[{"name": "Massage", "quantity": 3, "unit_value": "100.00"}])
    inv, pkg = sell(tenant, tpl, extra_lines=[
        {"kind": "product", "description": "Oil", "unit_price": "100.00", "tax_rate": "0"}])
    assert inv["total"] == "430.00"
    tenant.pay(inv["id"], "100.00", method="cash")
    # 100 × 300/430 = 69.767… net, 100 × 30/430 = 6.976… tax, 100 × 100/430 = 23.255… oil:
    # floors 69.76 + 6.97 + 23.25 = 99.98; the two cents left go to the buckets owing most:
    # the package's net, then the oil.
    got = get(tenant, pkg)
    assert (got["paid"], got["tax_paid"]) == ("69.77", "6.97")
    lines = tenant.api.get(f"/invoices/{inv['id']}").json()["lines"]
    assert [line["paid"] for line in lines] == ["76.74", "23.26"]
    assert verify(tenant.organization) == []


def test_a_package_is_not_closed_while_a_payment_refund_on_its_invoice_is_pending(tenant):
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    card = tenant.pay(inv["id"], "1000.00", method="card", online=True)
    pending = tenant.api.post(f"/payments/{card['id']}/refunds", {
        "type": "online", "amount": "300.00", "reason": "r"})
    assert pending.status_code == 201
    before = state()
    r = refund(tenant, pkg, "100.00", close=True)
    assert r.status_code == 409 and r.json()["code"] == "refund_pending"
    assert r.json()["errors"][0]["field"] == "close_package"
    assert state() == before
    assert refund(tenant, pkg, "100.00").status_code == 201  # without closing, it may go on
    assert verify(tenant.organization) == []


def test_money_a_failed_refund_brings_back_to_a_closed_package_is_forfeited(tenant):
    from kassa.refunds.lifecycle import apply_gateway_result

    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl)
    card = tenant.pay(inv["id"], "1000.00", method="card", online=True)
    body = tenant.api.post(f"/payments/{card['id']}/refunds", {
        "type": "online", "amount": "300.00", "reason": "r",
        "decrease_balance_owed": True}).json()
    run_tasks()
    assert apply_gateway_result(refund_id=int(body["id"]), state="succeeded")
    assert refund(tenant, pkg, "100.00", close=True).status_code == 201
    assert get(tenant, pkg)["status"] == "closed"
    assert apply_gateway_result(refund_id=int(body["id"]), state="failed",
                                failure_reason="card closed")
    got = get(tenant, pkg)
    assert got["balance"] == "0.00" and got["forfeited"] == "900.00"
    assert verify(tenant.organization) == []


def test_many_small_refunds_never_return_more_tax_than_is_due_on_what_they_refunded(tenant):
    tpl = template(tenant, price="1.00", tax_rate="10",
                   benefits=[{"name": "Sample", "quantity": 1, "unit_value": "0.50"}])
    inv, pkg = sell(tenant, tpl)
    tenant.pay(inv["id"], "1.10", method="cash")
    for _ in range(10):
        assert refund(tenant, pkg, "0.05").status_code == 201  # 0.5 cent of tax each
    got = get(tenant, pkg)
    assert got["refunded"] == "0.50" and got["tax_refunded"] == "0.05"  # 10 % of 0.50
    assert verify(tenant.organization) == []


def test_a_payment_refund_takes_back_from_the_lines_that_can_give_it(tenant):
    """Once the package on an invoice is used up, the service part of a payment can still be
    refunded: the refund comes back from the service line alone, and only what truly cannot
    be refunded is refused, saying how much can."""
    tpl = template(tenant)
    inv, pkg = sell(tenant, tpl, extra_lines=[{"kind": "service", "description": "Consultation",
                                               "unit_price": "100.00"}])
    cash = tenant.pay(inv["id"], "1100.00", method="cash")
    redeem(tenant, pkg, 5)  # the package is used up: it can give nothing back
    before = state()
    over = tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "amount": "100.01", "method": "cash", "reason": "x"})
    assert over.status_code == 422, over.content
    body = over.json()
    assert body["code"] == "package_refund_exceeds_balance"
    assert "At most $100.00" in body["detail"] and "Body contouring" in body["detail"]
    assert state() == before
    done = tenant.api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "amount": "100.00", "method": "cash",
        "reason": "Consultation cancelled"})
    assert done.status_code == 201, done.content
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    lines = {line["kind"]: line for line in invoice["lines"]}
    assert lines["service"]["paid"] == "0.00" and lines["package"]["paid"] == "1000.00"
    assert get(tenant, pkg)["balance"] == "0.00"
    assert verify(tenant.organization) == []
