"""Every flow of payment-refunds.txt through the API, and every rule's refusal."""

from __future__ import annotations

import pytest
from django.core import mail

from conftest import make_all_tasks_due, run_tasks
from kassa.billing.models import Invoice, Payment
from kassa.ledger.models import JournalEntry, Posting
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.sandbox import settle


@pytest.fixture
def paid(tenant):
    """An invoice of 200.00 + 8.875% tax (217.75), paid in full by card online."""
    inv = tenant.invoice({"kind": "service", "description": "Service", "unit_price": "200.00",
                          "tax_rate": "8.875"})
    payment = tenant.pay(inv["id"], inv["total"], method="card", online=True)
    return inv, payment


def snapshot():
    return (Refund.objects.count(), JournalEntry.objects.count(), Posting.objects.count(),
            Receipt.objects.count(), list(Payment.objects.values_list("refunded_minor", flat=True)),
            list(Invoice.objects.values_list("balance_due_minor", flat=True)))


def refund(tenant, payment_id, api=None, **body):
    body.setdefault("reason", "Guest changed plans")
    return (api or tenant.api).post(f"/payments/{payment_id}/refunds", body)


def test_offline_refund_of_an_offline_payment_is_recorded_and_reopens_the_balance(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    r = refund(tenant, payment["id"], type="offline", amount="40.00", method="cash",
               internal_note="manager approved")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "recorded" and body["type"] == "offline"
    assert body["amount"] == "40.00" and body["total"] == "40.00" and body["method"] == "cash"
    assert body["internal_note"] == "manager approved" and body["created_by"]
    p = tenant.api.get(f"/payments/{payment['id']}").json()
    assert p["refunded"] == "40.00" and p["refundable"] == "60.00" and not p["refund_pending"]
    got = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert got["refunded"] == "40.00" and got["balance_due"] == "40.00" and got["status"] == "open"
    assert [x["id"] for x in got["refunds"]] == [body["id"]]
    assert balance("cash", organization=tenant.organization) == 6000
    assert verify(tenant.organization) == []


def test_online_refund_is_pending_blocks_others_and_succeeds_when_settled(tenant, paid):
    _inv, payment = paid
    r = refund(tenant, payment["id"], type="online", amount="50.00")
    assert r.status_code == 201, r.content
    first = r.json()
    assert first["status"] == "pending" and first["method"] == "card"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refund_pending"] is True

    before = snapshot()
    for body in ({"type": "online", "amount": "10.00"},
                 {"type": "offline", "amount": "10.00", "method": "check"}):
        again = refund(tenant, payment["id"], **body)
        assert again.status_code == 409 and again.json()["code"] == "refund_pending"
    assert snapshot() == before

    run_tasks()  # the gateway call
    got = Refund.objects.get(pk=first["id"])
    assert got.gateway_reference.startswith("re_") and got.status == "pending"
    assert balance("refunds_in_transit", organization=tenant.organization) == -5000
    assert verify(tenant.organization) == []

    settle(refund_ids=[first["id"]], everything=False)
    done = tenant.api.get(f"/refunds/{first['id']}").json()
    assert done["status"] == "succeeded" and done["settled_at"]
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert balance("card", organization=tenant.organization) == 21775 - 5000
    p = tenant.api.get(f"/payments/{payment['id']}").json()
    assert p["refund_pending"] is False and p["refundable"] == "167.75"
    # Now another refund may start.
    assert refund(tenant, payment["id"], type="offline", amount="7.75",
                  method="check").status_code == 201
    assert verify(tenant.organization) == []


def test_failed_online_refund_gives_the_amount_back_and_tells_the_customer(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True,
                         source="sandbox_refund_fails")
    body = refund(tenant, payment["id"], type="online", amount="100.00",
                  decrease_balance_owed=True).json()
    run_tasks()
    settle(refund_ids=[], everything=True)
    run_tasks()
    got = tenant.api.get(f"/refunds/{body['id']}").json()
    assert got["status"] == "failed"
    p = tenant.api.get(f"/payments/{payment['id']}").json()
    assert p["refundable"] == "100.00" and p["refunded"] == "0.00" and not p["refund_pending"]
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert invoice["credits"] == "0.00" and invoice["balance_due"] == "0.00"
    assert invoice["status"] == "closed"
    assert balance("refunds_in_transit", organization=tenant.organization) == 0
    assert balance("sales_credits", organization=tenant.organization) == 0
    subjects = [m.subject for m in mail.outbox]
    assert any("could not be completed" in s for s in subjects), subjects
    kinds = [e["kind"] for e in tenant.api.get(f"/payments/{payment['id']}/history").json()]
    assert kinds[:3] == ["payment_started", "payment_taken", "refund_issued"]
    assert "refund_failed" in kinds
    assert verify(tenant.organization) == []


def test_refund_that_fails_after_it_succeeded_is_reversed_too(tenant, paid):
    from kassa.refunds.lifecycle import apply_gateway_result

    inv, payment = paid
    body = refund(tenant, payment["id"], type="online", amount="20.00").json()
    run_tasks()
    assert apply_gateway_result(refund_id=int(body["id"]), state="succeeded")
    assert not apply_gateway_result(refund_id=int(body["id"]), state="succeeded")  # duplicate
    assert apply_gateway_result(refund_id=int(body["id"]), state="failed",
                                failure_reason="card account closed")
    assert not apply_gateway_result(refund_id=int(body["id"]), state="succeeded")  # late
    got = tenant.api.get(f"/refunds/{body['id']}").json()
    assert got["status"] == "failed" and got["failure_reason"] == "card account closed"
    assert tenant.api.get(f"/payments/{payment['id']}").json()["refundable"] == inv["total"]
    assert balance("card", organization=tenant.organization) == 21775
    assert verify(tenant.organization) == []


def test_decrease_balance_owed_credits_net_and_tax_in_the_invoice_proportion(tenant, paid):
    inv, payment = paid
    r = refund(tenant, payment["id"], type="offline", amount="108.88", method="check",
               decrease_balance_owed=True)
    assert r.status_code == 201, r.content
    got = tenant.api.get(f"/invoices/{inv['id']}").json()
    # The refund does not re-open the balance: the sale itself went down.
    assert got["balance_due"] == "0.00" and got["credits"] == "108.88"
    assert got["status"] == "closed"
    refund_row = Refund.objects.get(pk=r.json()["id"])
    # 108.88 × 17.75 / 217.75 = 8.875…, rounded half-up: 8.88 tax, 100.00 net.
    assert (refund_row.credit_net_minor, refund_row.credit_tax_minor) == (10000, 888)
    assert balance("sales_credits", organization=tenant.organization) == 10000
    assert verify(tenant.organization) == []


def test_online_payment_may_take_an_offline_refund(tenant, paid):
    _inv, payment = paid
    r = refund(tenant, payment["id"], type="offline", amount="10.00", method="check",
               note="check #1042")
    assert r.status_code == 201 and r.json()["method"] == "check"
    assert r.json()["note"] == "check #1042"


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"type": "offline", "amount": "217.76", "method": "cash"}, 422,
     "refund_exceeds_refundable", "amount"),
    ({"type": "offline", "amount": "0", "method": "cash"}, 422, "invalid_amount", "amount"),
    ({"type": "offline", "amount": "-5", "method": "cash"}, 422, "invalid_amount", "amount"),
    ({"type": "offline", "amount": "1.005", "method": "cash"}, 422, "invalid_amount", "amount"),
    ({"type": "offline", "amount": "ten", "method": "cash"}, 422, "invalid_amount", "amount"),
    ({"type": "offline", "amount": "5.00", "method": "cash", "reason": "  "}, 422,
     "validation_error", "reason"),
    ({"type": "offline", "amount": "5.00", "method": "other"}, 422, "note_required", "note"),
    ({"type": "offline", "amount": "5.00", "method": "card"}, 422, "validation_error", "method"),
    ({"type": "offline", "amount": "5.00"}, 422, "validation_error", "method"),
    ({"type": "online", "amount": "5.00", "method": "cash"}, 422, "validation_error", "method"),
    ({"type": "sideways", "amount": "5.00"}, 422, "validation_error", "type"),
    ({"type": "offline", "amount": "5.00", "method": "cash", "reason": "a\x00b"}, 422,
     "validation_error", "reason"),
])
def test_refused_refund_names_the_rule_and_changes_nothing(tenant, paid, body, status, code,
                                                           field):
    _inv, payment = paid
    body = {"reason": "Because", **body}
    before = snapshot()
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", body)
    assert r.status_code == status, r.content
    problem = r.json()
    assert problem["code"] == code
    assert field in [e["field"] for e in problem["errors"]]
    assert r["Content-Type"] == "application/problem+json"
    assert snapshot() == before


def test_online_refund_of_an_offline_payment_is_refused(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="check")
    before = snapshot()
    r = refund(tenant, payment["id"], type="online", amount="5.00")
    assert r.status_code == 422 and r.json()["code"] == "online_refund_not_allowed"
    assert snapshot() == before


def test_only_roles_the_organization_allows_may_refund(tenant, paid):
    _inv, payment = paid
    _, desk = tenant.user("front_desk")
    _, books = tenant.user("accountant")
    before = snapshot()
    # With no policy set, the front desk asks (request_roles defaults to front_desk) and the
    # accountant may not even ask: no refund is made either way.
    r = refund(tenant, payment["id"], api=books, type="offline", amount="5.00", method="cash")
    assert r.status_code == 403 and r.json()["code"] == "refund_not_permitted"
    assert tenant.api.patch("/settings", {"request_roles": []}).status_code == 200
    r = refund(tenant, payment["id"], api=desk, type="offline", amount="5.00", method="cash")
    assert r.status_code == 403 and r.json()["code"] == "refund_not_permitted"
    assert snapshot() == before
    changed = tenant.api.patch("/settings", {"refund_roles": ["admin", "front_desk"]})
    assert changed.status_code == 200
    assert refund(tenant, payment["id"], api=desk, type="offline", amount="5.00",
                  method="cash").status_code == 201
    r = refund(tenant, payment["id"], api=books, type="offline", amount="5.00", method="cash")
    assert r.status_code == 403


def test_another_organizations_payment_is_not_found(tenant, other_tenant, paid):
    _inv, payment = paid
    before = snapshot()
    r = refund(other_tenant, payment["id"], type="offline", amount="5.00", method="cash")
    assert r.status_code == 404
    assert snapshot() == before


def test_a_refund_of_another_organizations_payment_into_credit_is_not_found(
        tenant, other_tenant, paid):
    # The customer is locked by way of the payment's id: another organization's payment
    # finds no customer to lock, and the answer is the same 404 (issue 17).
    _inv, payment = paid
    before = snapshot()
    for body in ({"type": "credit", "amount": "5.00"}, {"type": "online", "amount": "5.00"},
                 {"type": "offline", "amount": "5.00", "method": "other"}):
        r = refund(other_tenant, payment["id"], **body)
        assert r.status_code == 404, (body, r.content)
    for missing in ("999999", "0", "abc"):
        assert refund(tenant, missing, type="credit", amount="5.00").status_code == 404
    assert snapshot() == before


def test_a_deposit_is_refused_by_the_payment_refund_naming_the_payment(tenant):
    customer = tenant.customer()
    r = tenant.api.post(f"/customers/{customer}/deposits",
                        {"amount": "50.00", "method": "cash", "center": tenant.center_id})
    assert r.status_code == 201, r.content
    deposit = r.json()["id"]
    before = snapshot()
    for body in ({"type": "offline", "method": "cash"}, {"type": "credit"}):
        r = refund(tenant, deposit, amount="5.00", **body)
        assert r.status_code == 422, r.content
        assert [e["field"] for e in r.json()["errors"]] == ["payment"]
        assert "deposit" in r.json()["errors"][0]["message"]
    assert snapshot() == before


def test_every_refund_shows_in_history_invoice_case_and_list(tenant):
    customer = tenant.customer("The Alvarez Family", "maria@example.com")
    case = tenant.api.post("/cases", {"customer": customer, "name": "Jose Alvarez"}).json()
    inv = tenant.invoice(customer=customer, case=case["id"])
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    online = refund(tenant, payment["id"], type="online", amount="30.00",
                    internal_note="family request").json()
    run_tasks()
    settle(refund_ids=[online["id"]], everything=False)
    offline = refund(tenant, payment["id"], type="offline", amount="20.00", method="other",
                     note="paid from petty cash").json()
    run_tasks()

    history = tenant.api.get(f"/payments/{payment['id']}/history").json()
    kinds = [h["kind"] for h in history]
    assert kinds[:2] == ["payment_started", "payment_taken"]
    for kind in ("refund_issued", "refund_succeeded", "refund_recorded", "receipt_sent"):
        assert kind in kinds
    assert all(h["at"] for h in history) and history[2]["by"] == tenant.admin.user.email

    tab = tenant.api.get(f"/cases/{case['id']}/payments").json()
    assert {r["id"] for r in tab["refunds"]} == {online["id"], offline["id"]}
    assert [p["id"] for p in tab["payments"]] == [payment["id"]]
    listed = tenant.api.get("/refunds", payment=payment["id"]).json()
    assert [r["id"] for r in listed] == [online["id"], offline["id"]]
    assert tenant.api.get("/refunds", invoice=inv["id"]).json() == listed
    assert tenant.api.get("/refunds", case=case["id"]).json() == listed
    invoice = tenant.api.get(f"/invoices/{inv['id']}").json()
    assert [r["status"] for r in invoice["refunds"]] == ["succeeded", "recorded"]


def test_every_refund_emails_the_customer_a_receipt_once(tenant, paid):
    inv, payment = paid
    body = refund(tenant, payment["id"], type="offline", amount="12.50", method="check").json()
    run_tasks()
    make_all_tasks_due()
    run_tasks()
    receipts = [m for m in mail.outbox if "refund receipt" in m.subject]
    assert len(receipts) == 1
    text = receipts[0].body
    for expected in ("Acme Spa", "$12.50", "Offline", "check", "Guest changed plans",
                     "Recorded", inv["number"], f"#{payment['id']}"):
        assert expected in text, expected
    assert receipts[0].to == ["ann@example.com"]
    assert Receipt.objects.get(refund_id=body["id"]).status == "sent"
