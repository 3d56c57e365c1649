from __future__ import annotations

from kassa.billing.models import Invoice, Payment
from kassa.ledger.models import JournalEntry
from kassa.ledger.verify import verify


def test_offline_payment_closes_invoice_and_posts_to_the_tender(tenant):
    inv = tenant.invoice({"kind": "service", "description": "Facial", "unit_price": "100.00",
                          "tax_rate": "8.875"})
    assert inv["total"] == "108.88"
    pay = tenant.pay(inv["id"], "108.88", method="check")
    assert pay["refundable"] == "108.88"
    got = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert got["status"] == "closed" and got["balance_due"] == "0.00" and got["paid"] == "108.88"
    assert verify(tenant.organization) == []


def test_payment_over_balance_is_refused_and_changes_nothing(tenant):
    inv = tenant.invoice()
    entries = JournalEntry.objects.count()
    r = tenant.api.post(f"/invoices/{inv['id']}/payments",
                        {"amount": "100.01", "method": "cash", "online": False})
    assert r.status_code == 422 and r.json()["code"] == "payment_exceeds_balance"
    assert r["Content-Type"] == "application/problem+json"
    assert Payment.objects.count() == 0 and JournalEntry.objects.count() == entries
    assert Invoice.objects.get(pk=inv["id"]).balance_due_minor == 10000


def test_declined_card_is_402_and_books_nothing(tenant):
    inv = tenant.invoice()
    r = tenant.api.post(f"/invoices/{inv['id']}/payments", {
        "amount": "50.00", "method": "card", "online": True, "source": "sandbox_declined"})
    assert r.status_code == 402 and r.json()["code"] == "payment_declined"
    assert list(Payment.objects.values_list("status", flat=True)) == ["declined"]
    assert not JournalEntry.objects.filter(kind="payment").exists()
    assert Invoice.objects.get(pk=inv["id"]).balance_due_minor == 10000


def test_a_charge_that_cannot_be_booked_is_given_back_even_when_the_gateway_is_down(
        tenant, monkeypatch):
    """While the card was being charged the package was closed, cancelling what its invoice
    still owed: the charge cannot be booked, so the payment fails and the charge goes back —
    an outbox row, retried while the gateway is down."""
    from conftest import make_all_tasks_due, run_tasks
    from kassa.gateways.base import GatewayError
    from kassa.gateways.models import SandboxCharge
    from kassa.gateways.sandbox import SandboxGateway
    from kassa.packages.tests.test_package_refunds_api import refund, sell, template
    from kassa.reports import reconciliation

    inv, pkg = sell(tenant, template(tenant))  # 1000.00
    tenant.pay(inv["id"], "400.00")
    real_charge, real_cancel = SandboxGateway.charge, SandboxGateway.cancel_charge
    down = {"gateway": True}

    def charge_while_the_package_closes(self, **kwargs):
        assert refund(tenant, pkg, "100.00", close=True).status_code == 201
        return real_charge(self, **kwargs)

    def cancel(self, **kwargs):
        if down["gateway"]:
            raise GatewayError("503 from the gateway")
        return real_cancel(self, **kwargs)

    monkeypatch.setattr(SandboxGateway, "charge", charge_while_the_package_closes)
    monkeypatch.setattr(SandboxGateway, "cancel_charge", cancel)
    r = tenant.api.post(f"/invoices/{inv['id']}/payments",
                        {"amount": "600.00", "method": "card", "online": True})
    assert r.status_code == 201 and r.json()["status"] == "failed"
    assert "no longer owed" in r.json()["failure_reason"]
    payment = Payment.objects.get(pk=r.json()["id"])
    assert payment.charge_state == "give_back" and not payment.allocations.exists()
    run_tasks()  # the gateway is down: the row waits out its backoff
    assert not SandboxCharge.objects.get().cancelled
    # Meanwhile the charge is money at the processor that Kassa's books do not hold.
    day = reconciliation.reconcile(tenant.organization,
                                   reconciliation.today_of(tenant.organization))
    assert [(line.type, line.status) for line in day] == [("charge", "missing_in_kassa")]
    down["gateway"] = False
    make_all_tasks_due()
    run_tasks()
    assert SandboxCharge.objects.get().cancelled
    payment.refresh_from_db()
    assert payment.charge_state == "" and payment.events.filter(kind="charge_given_back").exists()
    # Given back: the charge and its give-back both match the failed payment.
    day = reconciliation.reconcile(tenant.organization,
                                   reconciliation.today_of(tenant.organization))
    assert [(line.type, line.amount_minor, line.kassa and line.kassa.id, line.status)
            for line in day] == [("charge", 60000, payment.pk, "matched"),
                                 ("refund", -60000, payment.pk, "matched")]
    assert verify(tenant.organization) == []
