"""Disputes, refunds made at the processor and returned payments, through the sandbox and the
API: the books, the balances and the payment's figures say what the processor or the bank
decided, and `kassa verify` is clean after every step."""

from __future__ import annotations

import pytest

from conftest import run_tasks
from kassa.billing.models import Payment, PaymentEvent
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.packages.tests.test_package_refunds_api import redeem, sell, template
from kassa.refunds import sandbox
from kassa.refunds.models import Dispute, Receipt, Refund
from kassa.refunds.sandbox import settle
from kassa.reports import reconciliation


def card_payment(tenant, amount="100.00", lines=()):
    inv = tenant.invoice(*lines)
    return inv, tenant.pay(inv["id"], amount, method="card", online=True)


def refund(tenant, payment, amount, type="online", **more):
    return tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": type, "amount": amount, "reason": "Family request", **more})


def clean(tenant, not_matched=()):
    """`kassa verify` clean, and the day's gateway lines all matched but `not_matched` (the
    types of the lines that must not be)."""
    assert verify(tenant.organization) == []
    day = reconciliation.reconcile(tenant.organization,
                                   reconciliation.today_of(tenant.organization))
    assert [line.type for line in reconciliation.exceptions(day)] == list(not_matched)


def test_an_opened_dispute_withdraws_the_funds_and_holds_refunds(tenant, unchanged):
    inv, payment = card_payment(tenant)
    opened = sandbox.dispute(payment_id=payment["id"], amount=None, outcome=None)
    assert opened["status"] == "needs_response"
    dispute = tenant.api.get(f"/disputes/{opened['dispute']}").json()
    assert dispute == {"id": opened["dispute"], "payment": payment["id"], "invoice": inv["id"],
                       "amount": "100.00", "reason": "fraudulent", "status": "needs_response",
                       "respond_by": dispute["respond_by"], "created_at": dispute["created_at"],
                       "closed_at": None, "settlement": None}
    assert dispute["respond_by"] > dispute["created_at"]
    assert balance("disputed_funds", organization=tenant.organization) == 10000
    assert balance("card", organization=tenant.organization) == 0
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert shown["disputed"] is True
    with unchanged():
        r = refund(tenant, payment, "10.00")
        assert r.status_code == 409 and r.json()["code"] == "payment_disputed"
        assert "disputed" in r.json()["detail"]
        r = refund(tenant, payment, "10.00", type="offline", method="cash")
        assert r.status_code == 409 and r.json()["code"] == "payment_disputed"
    assert [d["id"] for d in tenant.api.get("/disputes", status="needs_response").json()] == [
        opened["dispute"]]
    assert tenant.api.get("/disputes", status="won").json() == []
    clean(tenant)


def test_a_won_dispute_reinstates_the_funds_and_refunds_go_on(tenant):
    _, payment = card_payment(tenant)
    sandbox.dispute(payment_id=payment["id"], amount="40.00", outcome=None)
    won = sandbox.dispute(payment_id=payment["id"], amount=None, outcome="won")
    assert won["status"] == "won"
    assert balance("disputed_funds", organization=tenant.organization) == 0
    assert balance("card", organization=tenant.organization) == 10000
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["disputed"], shown["refundable"], shown["taken_back"]) == (False, "100.00",
                                                                             "0.00")
    assert refund(tenant, payment, "10.00").status_code == 201
    d = tenant.api.get(f"/disputes/{won['dispute']}").json()
    assert d["closed_at"] is not None and d["status"] == "won"
    clean(tenant)


def test_a_lost_dispute_is_settled_by_rebill_which_reopens_the_balance(tenant, unchanged):
    tpl = template(tenant, price="500.00")
    inv, pkg = sell(tenant, tpl)
    payment = tenant.pay(inv["id"], "500.00", method="card", online=True)
    redeem(tenant, pkg, 2)  # 400.00 of 500.00 used
    lost = sandbox.dispute(payment_id=payment["id"], amount=None, outcome="lost")
    assert lost["status"] == "lost"
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["disputed"], shown["refundable"], shown["taken_back"]) == (True, "0.00",
                                                                             "500.00")
    clean(tenant)
    front_desk = tenant.user("front_desk")[1]
    with unchanged():
        r = front_desk.post(f"/disputes/{lost['dispute']}/settle",
                            {"action": "rebill", "reason": "Family will pay again"})
        assert r.status_code == 403
        r = tenant.api.post(f"/disputes/{lost['dispute']}/settle",
                            {"action": "refund", "reason": "x"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "action"
    r = tenant.api.post(f"/disputes/{lost['dispute']}/settle",
                        {"action": "rebill", "reason": "Family will pay again"})
    assert r.status_code == 200, r.content
    assert r.json()["settlement"]["action"] == "rebill"
    with unchanged():
        again = tenant.api.post(f"/disputes/{lost['dispute']}/settle",
                                {"action": "write_off", "reason": "twice"})
        assert again.status_code == 409 and again.json()["code"] == "dispute_settled"
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (invoice["status"], invoice["balance_due"], invoice["paid"]) == ("open", "500.00",
                                                                            "0.00")
    package = tenant.api.get(f"/packages/{pkg['id']}").json()
    assert package["balance"] == "-400.00"  # what was redeemed of money that never came
    assert balance("disputed_funds", organization=tenant.organization) == 0
    assert tenant.api.get(f"/payments/{payment['id']}").json()["disputed"] is False
    # The family pays again; the package is whole.
    tenant.pay(inv["id"], "500.00", method="cash")
    assert tenant.api.get(f"/packages/{pkg['id']}").json()["balance"] == "100.00"
    clean(tenant)


def test_a_lost_dispute_written_off_is_a_loss_and_the_invoice_stays_paid(tenant, unchanged):
    inv, payment = card_payment(tenant)
    opened = sandbox.dispute(payment_id=payment["id"], amount="30.00", outcome=None)
    with unchanged():
        r = tenant.api.post(f"/disputes/{opened['dispute']}/settle",
                            {"action": "write_off", "reason": "Not worth chasing"})
        assert r.status_code == 409 and r.json()["code"] == "dispute_not_lost"
    sandbox.dispute(payment_id=payment["id"], amount=None, outcome="lost")
    r = tenant.api.post(f"/disputes/{opened['dispute']}/settle",
                        {"action": "write_off", "reason": "Not worth chasing"})
    assert r.status_code == 200, r.content
    assert balance("chargeback_losses", organization=tenant.organization) == 3000
    assert balance("disputed_funds", organization=tenant.organization) == 0
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "0.00"
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["disputed"], shown["refundable"]) == (False, "70.00")
    with unchanged():
        r = refund(tenant, payment, "70.01")
        assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_refundable"
    assert refund(tenant, payment, "70.00").status_code == 201
    clean(tenant)


def test_a_refund_pending_when_the_charge_is_disputed_fails_without_a_notice(tenant):
    _, payment = card_payment(tenant)
    pending = refund(tenant, payment, "25.00").json()
    run_tasks()  # the gateway has the refund
    sandbox.dispute(payment_id=payment["id"], amount="75.00", outcome=None)
    settle(refund_ids=[pending["id"]], everything=False)
    failed = Refund.objects.get(pk=pending["id"])
    assert failed.status == "failed"
    assert "charge_for_pending_refund_disputed" in failed.failure_reason
    assert not Receipt.objects.filter(refund=failed, kind="failure_notice").exists()
    history = PaymentEvent.objects.filter(payment_id=payment["id"], kind="refund_failed").get()
    assert "no failure notice" in history.detail and "disputed" in history.detail
    clean(tenant)


def test_dispute_news_is_safe_to_repeat_and_in_any_order(tenant):
    from kassa.gateways import sandbox_disputes
    from kassa.gateways.models import SandboxCharge
    from kassa.refunds.disputes import DisputeNews, apply_news

    _, payment = card_payment(tenant)
    stored = Payment.objects.get(pk=payment["id"])
    charge = SandboxCharge.objects.get(reference=stored.gateway_reference)
    row = sandbox_disputes.open_dispute(charge, amount_minor=5000)  # Kassa not told yet

    def news(status):
        return DisputeNews(gateway="sandbox", reference=row.reference,
                           charge_reference=charge.reference, amount_minor=5000, status=status)

    assert apply_news(news("lost")) == "opened"  # the closing news came first
    assert apply_news(news("needs_response")) == "unchanged"
    assert apply_news(news("lost")) == "unchanged"
    assert apply_news(news("won")) == "unchanged"  # decided once
    assert Dispute.objects.get().status == "lost"
    assert balance("disputed_funds", organization=tenant.organization) == 5000
    assert apply_news(DisputeNews(gateway="sandbox", reference="du_x", charge_reference="ch_no",
                                  amount_minor=5000, status="lost")) == "unknown charge"
    clean(tenant)


def test_a_dashboard_refund_is_booked_with_origin_gateway(tenant):
    inv, payment = card_payment(tenant)
    made = sandbox.gateway_refund(payment_id=payment["id"], amount="30.00")
    assert made["booked"] is True
    booked = tenant.api.get(f"/refunds/{made['refund']}").json()
    assert (booked["origin"], booked["created_by"], booked["decrease_balance_owed"],
            booked["status"], booked["total"]) == ("gateway", None, True, "succeeded", "30.00")
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert shown["refundable"] == "70.00"
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "0.00"
    run_tasks()  # its poll finds nothing more to do; Kassa never calls the gateway for it
    assert Refund.objects.get(pk=made["refund"]).status == "succeeded"
    clean(tenant)


def test_a_dashboard_refund_larger_than_refundable_is_not_booked(tenant, unchanged):
    _, payment = card_payment(tenant)
    assert refund(tenant, payment, "80.00", type="offline", method="cash").status_code == 201
    made = sandbox.gateway_refund(payment_id=payment["id"], amount="50.00")
    assert made == {"gateway_id": made["gateway_id"], "booked": False, "refund": None,
                    "payment": payment["id"]}
    assert not Refund.objects.filter(origin="gateway").exists()
    clean(tenant, not_matched=["refund"])  # the processor has it, Kassa has not


@pytest.mark.parametrize("method", ["check"])
def test_a_returned_check_with_a_fee_reopens_the_invoice_and_empties_the_package(
        tenant, unchanged, method):
    tpl = template(tenant, price="500.00")
    inv, pkg = sell(tenant, tpl)
    payment = tenant.pay(inv["id"], "500.00", method=method)
    redeem(tenant, pkg, 1)  # 200.00 used
    r = tenant.api.post(f"/payments/{payment['id']}/returns",
                        {"reason": "NSF", "fee": "25.00"})
    assert r.status_code == 201, r.content
    returned = r.json()
    assert (returned["amount"], returned["fee"]) == ("500.00", "25.00")
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (invoice["status"], invoice["total"], invoice["paid"], invoice["balance_due"]) == (
        "open", "525.00", "0.00", "525.00")
    [fee] = [line for line in invoice["lines"] if line["kind"] == "fee"]
    assert fee["description"] == "Returned check fee"
    assert tenant.api.get(f"/packages/{pkg['id']}").json()["balance"] == "-200.00"
    assert balance("check", organization=tenant.organization) == 0
    assert balance("revenue_fee", organization=tenant.organization) == -2500
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["refundable"], shown["taken_back"]) == ("0.00", "500.00")
    with unchanged():
        again = tenant.api.post(f"/payments/{payment['id']}/returns", {"reason": "NSF"})
        assert again.status_code == 409 and again.json()["code"] == "payment_already_returned"
    revenue = tenant.api.get("/reports/revenue").json()
    assert revenue["by_kind"]["fee"] == "25.00"
    clean(tenant)


def test_returns_refused_for_the_wrong_method_or_too_much(tenant, unchanged):
    inv = tenant.invoice()
    cash = tenant.pay(inv["id"], "40.00", method="cash")
    check = tenant.pay(inv["id"], "60.00", method="check")
    assert refund(tenant, check, "20.00", type="offline", method="check").status_code == 201
    front_desk = tenant.user("front_desk")[1]
    with unchanged():
        r = tenant.api.post(f"/payments/{cash['id']}/returns", {"reason": "x"})
        assert r.status_code == 422 and r.json()["code"] == "return_not_allowed"
        r = tenant.api.post(f"/payments/{check['id']}/returns", {"reason": "x",
                                                                 "amount": "40.01"})
        assert r.status_code == 422 and r.json()["code"] == "return_exceeds_unrefunded"
        assert "$40.00" in r.json()["detail"]
        r = front_desk.post(f"/payments/{check['id']}/returns", {"reason": "x"})
        assert r.status_code == 403
        r = tenant.api.post(f"/payments/{check['id']}/returns", {"reason": " "})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = tenant.api.post(f"/payments/{check['id']}/returns", {"reason": "Stopped"})
    assert r.status_code == 201 and r.json()["amount"] == "40.00"
    # The refund re-opened 20.00, the return the other 40.00 of the check.
    assert tenant.api.get(f"/invoices/{inv['id']}").json()["balance_due"] == "60.00"
    clean(tenant)
