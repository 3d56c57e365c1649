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
