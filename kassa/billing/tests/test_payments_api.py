"""POST /invoices/{id}/payments, GET /payments/{id} and its history."""

from __future__ import annotations

import pytest

from conftest import AUDIT, make_tenant
from kassa.billing.models import Invoice, InvoiceLine, Payment, PaymentAllocation
from kassa.gateways.base import GatewayError
from kassa.gateways.models import SandboxCharge
from kassa.gateways.sandbox import SandboxGateway
from kassa.ledger.models import JournalEntry
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify

FACIAL = {"kind": "service", "description": "Facial", "unit_price": "100.00", "tax_rate": "8.875"}


def pay(tenant, invoice_id, body):
    return tenant.api.post(f"/invoices/{invoice_id}/payments", body)


def test_offline_payments_pay_the_invoice_down_and_close_it(tenant):
    inv = tenant.invoice(FACIAL)  # 108.88
    first = tenant.pay(inv["id"], "50.00", method="cash")
    assert first == {"id": first["id"], "invoice": inv["id"], "customer": inv["customer"],
                     "amount": "50.00", "to_credit": "0.00",
                     "method": "cash", "online": False, "refunded": "0.00",
                     "refundable": "50.00", "requested": "0.00", "refundable_online": "0.00",
                     "refund_pending": False, "disputed": False, "taken_back": "0.00",
                     "status": "succeeded",
                     "failure_reason": "", "created_at": first["created_at"]}
    now = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (now["status"], now["paid"], now["balance_due"]) == ("open", "50.00", "58.88")
    tenant.pay(inv["id"], "58.88", method="check")
    now = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert (now["status"], now["paid"], now["balance_due"]) == ("closed", "108.88", "0.00")
    assert [p["amount"] for p in now["payments"]] == ["50.00", "58.88"]
    assert now["lines"][0]["paid"] == "108.88"
    assert balance("receivable", invoice_id=inv["id"]) == 0
    assert balance("cash") == 5000 and balance("check") == 5888
    assert verify(tenant.organization) == []


def test_a_payment_is_allocated_to_lines_pro_rata_net_and_tax_apart(tenant):
    inv = tenant.invoice(FACIAL, {"kind": "product", "description": "Serum",
                                  "unit_price": "50.00"})  # owes 100 + 8.88, 50 + 0
    payment = tenant.pay(inv["id"], "79.44", method="insurance")  # half of 158.88
    lines = list(InvoiceLine.objects.filter(invoice_id=inv["id"]).order_by("position"))
    assert [(ln.paid_net_minor, ln.paid_tax_minor) for ln in lines] == [(5000, 444), (2500, 0)]
    assert sorted(PaymentAllocation.objects.filter(payment_id=payment["id"])
                  .values_list("net_minor", "tax_minor")) == [(2500, 0), (5000, 444)]


def test_online_payment_goes_through_the_gateway(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "40.00", method="card", online=True, source="sandbox_ok")
    assert payment["online"] is True and payment["method"] == "card"
    stored = Payment.objects.get(pk=payment["id"])
    assert stored.gateway == "sandbox" and stored.gateway_reference.startswith("ch_")
    charge = SandboxCharge.objects.get(reference=stored.gateway_reference)
    assert (charge.amount_minor, charge.currency, charge.cancelled) == (4000, "USD", False)
    ach = tenant.pay(inv["id"], "60.00", method="ach", online=True)  # sandbox_ok by default
    assert ach["method"] == "ach"
    assert balance("card") == 4000 and balance("ach") == 6000
    assert verify(tenant.organization) == []


def test_declined_card_is_402_and_books_nothing(tenant, unchanged):
    """The payment was recorded before the card was tried: it stays, declined, with nothing
    booked (no entry, no allocation, the invoice as it was)."""
    inv = tenant.invoice()
    with unchanged(but=("billing.Payment", "billing.PaymentEvent", *AUDIT)):
        r = pay(tenant, inv["id"], {"amount": "50.00", "method": "card", "online": True,
                                    "source": "sandbox_declined"})
    assert r.status_code == 402, r.content
    assert r["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "payment_declined" and r.json()["status"] == 402
    assert SandboxCharge.objects.count() == 0
    [declined] = tenant.api.get(f"/invoices/{inv['id']}").json()["payments"]
    assert (declined["status"], declined["refundable"]) == ("declined", "0.00")
    assert "declined" in declined["failure_reason"]
    history = tenant.api.get(f"/payments/{declined['id']}/history").json()
    assert [e["kind"] for e in history] == ["payment_started", "payment_declined"]
    assert verify(tenant.organization) == []


def test_payment_over_the_balance_is_refused_and_changes_nothing(tenant, unchanged):
    inv = tenant.invoice()  # 100.00
    tenant.pay(inv["id"], "60.00")
    for amount, online in (("40.01", False), ("40.01", True), ("1000000.00", False)):
        with unchanged():
            r = pay(tenant, inv["id"], {"amount": amount, "online": online,
                                        "method": "card" if online else "cash"})
        assert r.status_code == 422 and r.json()["code"] == "payment_exceeds_balance"
        assert r.json()["errors"][0]["field"] == "amount"
    assert SandboxCharge.objects.count() == 0  # refused before the card was charged
    tenant.pay(inv["id"], "40.00")


def test_a_closed_invoice_takes_no_payment(tenant, unchanged):
    inv = tenant.invoice()
    tenant.pay(inv["id"], "100.00")
    with unchanged():
        r = pay(tenant, inv["id"], {"amount": "0.01", "method": "cash"})
    assert r.status_code == 422 and r.json()["code"] == "payment_exceeds_balance"


def test_an_online_payment_holds_its_amount_while_it_is_charged(tenant, monkeypatch):
    """The card is charged outside the invoice's lock: meanwhile the payment, recorded as
    processing, holds its amount, so another desk cannot take the same balance."""
    from kassa.billing import services
    from kassa.core.errors import PaymentExceedsBalance

    inv = tenant.invoice()
    original = SandboxGateway.charge
    refused = []

    def charge_while_someone_else_pays(self, **kwargs):
        try:
            services.take_payment(actor=tenant.admin, invoice=inv["id"], amount="100.00",
                                  method="cash", online=False)
        except PaymentExceedsBalance as exc:
            refused.append(exc.detail)
        return original(self, **kwargs)

    monkeypatch.setattr(SandboxGateway, "charge", charge_while_someone_else_pays)
    r = pay(tenant, inv["id"], {"amount": "30.00", "method": "card", "online": True})
    assert r.status_code == 201 and r.json()["status"] == "succeeded"
    assert refused == ["At most $70.00 can be paid; $30.00 is being charged online"]
    assert list(Payment.objects.values_list("method", flat=True)) == ["card"]
    assert verify(tenant.organization) == []


def test_gateway_down_is_503_and_books_nothing_until_the_worker_knows(
        tenant, unchanged, monkeypatch):
    """A gateway that does not answer may still have charged: the payment stays processing
    (holding its amount), and the worker asks the gateway for its key later: no charge there,
    so it fails, and the balance is free again."""
    from conftest import make_all_tasks_due, run_tasks

    def down(self, **kwargs):
        raise GatewayError("connection refused")

    monkeypatch.setattr(SandboxGateway, "charge", down)
    inv = tenant.invoice()
    with unchanged(but=("billing.Payment", "billing.PaymentEvent", *AUDIT)):
        r = pay(tenant, inv["id"], {"amount": "30.00", "method": "card", "online": True})
    assert r.status_code == 503 and r.json()["code"] == "gateway_unavailable"
    payment = Payment.objects.get()
    assert payment.status == "processing" and f"Payment {payment.pk}" in r.json()["detail"]
    assert pay(tenant, inv["id"], {"amount": "70.01", "method": "cash"}).status_code == 422
    make_all_tasks_due()
    run_tasks()
    payment.refresh_from_db()
    assert (payment.status, payment.charge_state) == ("failed", "")
    assert "nothing was taken" in payment.failure_reason
    assert tenant.pay(inv["id"], "100.00")["status"] == "succeeded"
    assert verify(tenant.organization) == []


@pytest.mark.parametrize(("currency", "price", "good", "too_fine"), [
    ("USD", "100.00", "33.33", "33.333"),
    ("JPY", "10000", "3333", "3333.3"),
    ("KWD", "100.000", "33.333", "33.3333"),
])
def test_amount_takes_exactly_the_currencys_decimals(db, unchanged, currency, price, good,
                                                     too_fine):
    shop = make_tenant(f"{currency} Spa", currency=currency)
    inv = shop.invoice({"kind": "service", "description": "Massage", "unit_price": price})
    with unchanged():
        r = pay(shop, inv["id"], {"amount": too_fine, "method": "cash"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_amount"
    assert r.json()["errors"][0]["field"] == "amount"
    assert shop.pay(inv["id"], good)["amount"] == good


@pytest.mark.parametrize("amount", [
    "abc", "", "1,00", "NaN", "Infinity", "1e3", "0x10", "\u0661\u0660", "0", "0.00", "-0.01",
    "-10.00", "99999999999999999999", "1" + "0" * 38, "10.00\x00", " 10.00", "+10.00",
])
def test_an_amount_that_is_not_a_positive_number_is_refused_and_changes_nothing(
        tenant, unchanged, amount):
    inv = tenant.invoice()
    with unchanged():
        r = pay(tenant, inv["id"], {"amount": amount, "method": "cash"})
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_amount"
    assert r.json()["errors"][0]["field"] == "amount"


@pytest.mark.parametrize(("body", "field"), [
    ({"amount": 10, "method": "cash"}, "amount"),  # money travels as a string
    ({"amount": 10.5, "method": "cash"}, "amount"),
    ({"amount": "1" * 41, "method": "cash"}, "amount"),
    ({"method": "cash"}, "amount"),
    ({"amount": "10.00", "method": "bitcoin"}, "method"),
    ({"amount": "10.00", "method": None}, "method"),
    ({"amount": "10.00"}, "method"),
    ({"amount": "10.00", "method": "cash", "online": True}, "method"),
    ({"amount": "10.00", "method": "card", "online": False}, "method"),
    ({"amount": "10.00", "method": "ach"}, "method"),
    ({"amount": "10.00", "method": "cash", "online": "perhaps"}, "online"),
    ({"amount": "10.00", "method": "check", "source": "sandbox_ok"}, "source"),
    ({"amount": "10.00", "method": "card", "online": True, "source": "tok_visa"}, "source"),
    ({"amount": "10.00", "method": "card", "online": True, "source": "x\x00"}, "source"),
    ({"amount": "10.00", "method": "card", "online": True, "source": "s" * 65}, "source"),
])
def test_bad_payment_is_refused_with_the_field_named_and_changes_nothing(tenant, unchanged,
                                                                         body, field):
    inv = tenant.invoice()
    with unchanged():
        r = pay(tenant, inv["id"], body)
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "validation_error"
    assert [e["field"] for e in r.json()["errors"]] == [field], r.json()
    assert SandboxCharge.objects.count() == 0


def test_accountant_may_not_take_a_payment(tenant, unchanged):
    inv = tenant.invoice()
    _, books = tenant.user("accountant")
    with unchanged():
        r = books.post(f"/invoices/{inv['id']}/payments", {"amount": "10.00", "method": "cash"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_front_desk_takes_payments(tenant):
    inv = tenant.invoice()
    desk_membership, desk = tenant.user("front_desk")
    r = desk.post(f"/invoices/{inv['id']}/payments", {"amount": "10.00", "method": "cash"})
    assert r.status_code == 201
    history = desk.get(f"/payments/{r.json()['id']}/history").json()
    assert history[0]["by"] == desk_membership.user.email


def test_paying_an_unknown_or_another_organizations_invoice_is_404(tenant, other_tenant,
                                                                   unchanged):
    theirs = other_tenant.invoice()
    for invoice_id in (theirs["id"], "424242", "abc"):
        with unchanged():
            r = pay(tenant, invoice_id, {"amount": "10.00", "method": "cash"})
        assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_payment_and_its_history_are_read_back(tenant):
    inv = tenant.invoice()
    cash = tenant.pay(inv["id"], "25.00")
    card = tenant.pay(inv["id"], "75.00", method="card", online=True)
    assert tenant.api.get(f"/payments/{cash['id']}").json() == cash
    assert tenant.api.get(f"/payments/{card['id']}").json() == card
    history = tenant.api.get(f"/payments/{card['id']}/history")
    assert history.status_code == 200
    started, event = history.json()
    assert (started["kind"], started["status"]) == ("payment_started", "processing")
    assert event["kind"] == "payment_taken" and event["amount"] == "75.00"
    assert event["status"] == "succeeded" and event["by"] == tenant.admin.user.email
    assert "card" in event["detail"] and "sandbox" in event["detail"]
    assert started["at"] == card["created_at"] <= event["at"]


def test_another_organizations_payment_is_404(tenant, other_tenant):
    theirs = other_tenant.pay(other_tenant.invoice()["id"], "10.00")
    for payment_id in (theirs["id"], "424242", "x", "-3"):
        for path in (f"/payments/{payment_id}", f"/payments/{payment_id}/history"):
            r = tenant.api.get(path)
            assert r.status_code == 404 and r.json()["code"] == "not_found", path


def test_every_payment_posts_one_balanced_entry(tenant):
    inv = tenant.invoice(FACIAL)
    tenant.pay(inv["id"], "8.88", method="other")
    entry = JournalEntry.objects.get(kind="payment")
    assert sorted((p.code, p.amount_minor, p.invoice_id, p.payment_id)
                  for p in entry.postings.all()) == sorted([
        ("other", 888, int(inv["id"]), Payment.objects.get().pk),
        ("receivable", -888, int(inv["id"]), Payment.objects.get().pk)])
    assert Invoice.objects.get().balance_due_minor == balance("receivable", invoice_id=inv["id"])
