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


def test_declined_card_is_402_and_changes_nothing(tenant):
    inv = tenant.invoice()
    r = tenant.api.post(f"/invoices/{inv['id']}/payments", {
        "amount": "50.00", "method": "card", "online": True, "source": "sandbox_declined"})
    assert r.status_code == 402 and r.json()["code"] == "payment_declined"
    assert Payment.objects.count() == 0


def test_a_charge_that_cannot_be_recorded_is_given_back_even_when_the_gateway_is_down(
        tenant, monkeypatch):
    """The invoice was paid while the card was being charged: the charge goes back, and if the
    gateway is down at that moment, a durable task gives it back later."""
    from conftest import make_all_tasks_due, run_tasks
    from kassa.billing import services
    from kassa.core.errors import PaymentExceedsBalance
    from kassa.gateways.base import GatewayError
    from kassa.gateways.models import SandboxCharge
    from kassa.gateways.sandbox import SandboxGateway

    inv = tenant.invoice()
    real_record, real_cancel = services._record_payment, SandboxGateway.cancel_charge
    down = {"gateway": True}

    def paid_meanwhile(**kwargs):
        if kwargs["online"]:  # another desk took the whole balance in cash meanwhile
            real_record(**{**kwargs, "amount_minor": 10000, "method": "cash", "online": False,
                           "gateway": "", "reference": ""})
        return real_record(**kwargs)

    def cancel(self, **kwargs):
        if down["gateway"]:
            raise GatewayError("503 from the gateway")
        return real_cancel(self, **kwargs)

    monkeypatch.setattr(services, "_record_payment", paid_meanwhile)
    monkeypatch.setattr(SandboxGateway, "cancel_charge", cancel)
    import pytest

    with pytest.raises(PaymentExceedsBalance):
        services.take_payment(actor=tenant.admin, invoice=inv["id"], amount="60.00",
                              method="card", online=True)
    charge = SandboxCharge.objects.get()
    assert not charge.cancelled and Payment.objects.filter(online=True).count() == 0
    run_tasks()  # still down: the task schedules itself again
    assert not SandboxCharge.objects.get().cancelled
    down["gateway"] = False
    make_all_tasks_due()
    run_tasks()
    assert SandboxCharge.objects.get().cancelled
    assert verify(tenant.organization) == []
