"""A receipt greets the customer's contact ("Dear Maria Alvarez"), not "Dear The Alvarez
Family"; without a contact name, the customer's own name."""

from __future__ import annotations

from django.core import mail

from conftest import run_tasks


def receipt_for(tenant, customer: dict[str, str]) -> str:
    r = tenant.api.post("/customers", customer)
    assert r.status_code == 201, r.content
    inv = tenant.invoice(customer=r.json()["id"])
    payment = tenant.pay(inv["id"], "100.00")
    mail.outbox.clear()
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "10.00", "method": "cash", "reason": "Returned"})
    assert r.status_code == 201, r.content
    run_tasks()
    [message] = mail.outbox
    return str(message.body)


def test_a_family_is_greeted_by_its_contact(tenant):
    body = receipt_for(tenant, {"name": "The Alvarez Family", "email": "m@example.com",
                                "contact_name": "Maria Alvarez"})
    assert body.startswith("Dear Maria Alvarez,"), body


def test_a_guest_without_a_contact_is_greeted_by_name(tenant):
    body = receipt_for(tenant, {"name": "Ann Guest", "email": "ann@example.com"})
    assert body.startswith("Dear Ann Guest,"), body


def test_a_funeral_homes_receipt_names_the_case(tenant):
    r = tenant.api.post("/customers", {"name": "The Alvarez Family", "email": "m@example.com",
                                       "contact_name": "Maria Alvarez"})
    family = r.json()["id"]
    case = tenant.api.post("/cases", {"customer": family, "name": "Jose Alvarez"}).json()["id"]
    inv = tenant.invoice(customer=family, case=case)
    payment = tenant.pay(inv["id"], "100.00")
    mail.outbox.clear()
    tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "10.00", "method": "cash", "reason": "Returned"})
    run_tasks()
    [message] = mail.outbox
    assert "Case:            Jose Alvarez" in str(message.body)
