"""The policy on every refund page (DESIGN.md, "Governed refunds"): the payment refund form, the
package wizard, *Refund invoice* and *Refund credit* go through the API's one door
(`refund_or_request`), so a front desk that asks gets a request (the pages' "Refund requested —
a manager will approve it"), a daily limit or the threshold turns an admin's refund into one,
and a reason code the policy requires is asked for beside its field; a refusal changes
nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from kassa.refunds.models import Refund, RefundRequest

pytestmark = pytest.mark.django_db

REQUESTED = "Refund requested — a manager will approve it."
CODES = [{"code": "dup", "label": "Duplicate charge", "note_required": False},
         {"code": "other", "label": "Other", "note_required": True}]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signed_in(member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


def field_block(html: str, name: str) -> str:
    """The form field's own block (its label, input and errors) on the page."""
    found = re.search(r'<div class="field[^"]*">\s*<label for="id_' + name
                      + r'">.*?</div>\s*(?=<div class="field|<div class="form-actions)',
                      html, re.S)
    assert found, f"no field {name} on the page"
    return found.group(0)


def test_front_desk_using_the_payment_refund_form_opens_a_request(tenant, unchanged):
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    desk_member, _ = tenant.user("front_desk")
    desk = signed_in(desk_member)
    url = f"/payments/{payment['id']}/refund/offline/"
    assert desk.get(url).status_code == 200  # the form, for who may ask
    form = {"amount": "40.00", "reason": "Family request", "method": "cash"}
    with unchanged():
        review = desk.post(url, form)
        assert review.status_code == 200
        html = review.content.decode()
        assert "Ask for a refund of <strong>$40.00</strong>" in html
        assert "Request refund of $40.00" in html
    done = desk.post(url, {**form, "confirm": "1"})
    assert done.status_code == 302 and done["Location"] == f"/payments/{payment['id']}/"
    assert REQUESTED in desk.get(done["Location"]).content.decode()
    request = RefundRequest.objects.get()
    assert (request.kind, request.status, request.amount_minor, request.requested_by_id) == (
        "payment", "open", 4000, desk_member.user_id)
    assert not Refund.objects.exists()
    shown = tenant.api.get(f"/payments/{payment['id']}").json()
    assert (shown["requested"], shown["refundable"]) == ("40.00", "60.00")
    # The same desk through the API: 202, and one open request per payment.
    _, desk_api = tenant.user("front_desk")
    r = desk_api.post(f"/payments/{payment['id']}/refunds", {**form, "type": "offline"})
    assert r.status_code == 409 and r.json()["code"] == "refund_request_open"


def test_a_reason_code_the_policy_requires_is_asked_beside_its_field(tenant, unchanged):
    assert tenant.api.patch("/settings", {"reason_codes": CODES}).status_code == 200
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    admin = signed_in(tenant.admin)
    url = f"/payments/{payment['id']}/refund/offline/"
    assert '<label for="id_reason_code">Reason code</label>' in admin.get(url).content.decode()
    form = {"amount": "10.00", "reason": "Charged twice", "method": "cash"}
    with unchanged():
        refused = admin.post(url, form)
        assert refused.status_code == 422
        block = field_block(refused.content.decode(), "reason_code")
        assert "has-error" in block and "Choose a reason code for this refund" in block
        refused = admin.post(url, {**form, "reason_code": "other", "confirm": "1"})
        assert refused.status_code == 422
        block = field_block(refused.content.decode(), "internal_note")
        assert "has-error" in block and "is required with the reason code other" in block
        # The API says the same.
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", {**form, "type": "offline"})
        assert r.status_code == 422 and r.json()["code"] == "reason_code_required"
    done = admin.post(url, {**form, "reason_code": "dup", "confirm": "1"})
    assert done.status_code == 302
    assert Refund.objects.get().amount_minor == 1000


def test_past_the_daily_limit_an_admins_web_refund_is_requested_or_refused(tenant, unchanged):
    assert tenant.api.patch("/settings", {"daily_refund_limit": {"admin": "50.00"}}
                            ).status_code == 200
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    admin = signed_in(tenant.admin)
    url = f"/payments/{payment['id']}/refund/offline/"
    form = {"amount": "60.00", "reason": "Closing the account", "method": "cash",
            "confirm": "1"}
    with unchanged():  # no one else can approve: refused, beside the amount
        refused = admin.post(url, form)
        assert refused.status_code == 422
        block = field_block(refused.content.decode(), "amount")
        assert "past your daily refund limit of $50.00" in block
    tenant.user("admin")  # someone who can approve
    done = admin.post(url, form)
    assert done.status_code == 302
    assert RefundRequest.objects.get().amount_minor == 6000
    assert not Refund.objects.exists()


def test_front_desk_using_the_package_wizard_opens_a_request(tenant):
    tpl = tenant.api.post("/package-templates", {
        "name": "Five facials", "price": "500.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 5, "unit_value": "100.00"}]}).json()
    guest = tenant.customer()
    inv = tenant.invoice({"kind": "package", "description": "Five facials",
                          "package_template": tpl["id"]}, customer=guest)
    tenant.pay(inv["id"], "500.00")
    pkg = inv["packages"][0]
    desk_member, _ = tenant.user("front_desk")
    desk = signed_in(desk_member)
    assert desk.get(f"/customers/{guest}/packages/?refund={pkg['id']}").status_code == 200
    form = {"package": pkg["id"], "amount": "150.00", "reason": "Moving away",
            "refund_to": "cash"}
    review = desk.post(f"/customers/{guest}/packages/refund/pay/", form)
    assert "Request refund of $150.00" in review.content.decode()
    assert not RefundRequest.objects.exists()
    done = desk.post(f"/customers/{guest}/packages/refund/pay/", {**form, "confirm": "1"})
    assert done.status_code == 302
    assert REQUESTED in desk.get(done["Location"]).content.decode()
    request = RefundRequest.objects.get()
    assert (request.kind, request.package_id, request.amount_minor) == ("package",
                                                                        int(pkg["id"]), 15000)
    assert not Refund.objects.exists()


def test_front_desk_refunding_an_invoice_across_payments_opens_a_request(tenant):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00")
    desk_member, _ = tenant.user("front_desk")
    desk = signed_in(desk_member)
    form = {f"amount-{payment['id']}": "30.00", f"destination-{payment['id']}": "offline:cash",
            "reason": "Service cut short"}
    review = desk.post(f"/invoices/{inv['id']}/refund/", form)
    assert "Request refund of $30.00" in review.content.decode()
    done = desk.post(f"/invoices/{inv['id']}/refund/", {**form, "confirm": "1"})
    assert done.status_code == 302
    assert REQUESTED in desk.get(done["Location"]).content.decode()
    request = RefundRequest.objects.get()
    assert (request.kind, request.target_id, request.amount_minor) == ("split", int(inv["id"]),
                                                                       3000)
    assert not Refund.objects.exists()


def test_split_refund_page_asks_for_the_reason_code_beside_its_field(tenant, unchanged):
    assert tenant.api.patch("/settings", {"reason_codes": CODES}).status_code == 200
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00")
    admin = signed_in(tenant.admin)
    form = {f"amount-{payment['id']}": "30.00", f"destination-{payment['id']}": "offline:cash",
            "reason": "Service cut short", "confirm": "1"}
    with unchanged():
        refused = admin.post(f"/invoices/{inv['id']}/refund/", form)
        assert refused.status_code == 422
        html = refused.content.decode()
        assert re.search(r'<select id="reason_code" name="reason_code" aria-invalid="true".*?'
                         r'<div role="alert" id="reason_code-error">Choose a reason code',
                         html, re.S)
    assert admin.post(f"/invoices/{inv['id']}/refund/",
                      {**form, "reason_code": "dup"}).status_code == 302
    assert Refund.objects.get().amount_minor == 3000


def test_front_desk_refunding_credit_opens_a_request(tenant):
    guest = tenant.customer()
    r = tenant.api.post(f"/customers/{guest}/deposits", {
        "center": str(tenant.center_id), "amount": "80.00", "method": "cash"})
    assert r.status_code == 201, r.content
    desk_member, _ = tenant.user("front_desk")
    desk = signed_in(desk_member)
    done = desk.post(f"/customers/{guest}/credit/refund/", {
        "refund-amount": "20.00", "refund-reason": "Part of the deposit back",
        "refund-destination": "cash"})
    assert done.status_code == 302, done.content.decode()[:2000]
    assert REQUESTED in desk.get(done["Location"]).content.decode()
    request = RefundRequest.objects.get()
    assert (request.kind, request.target_id, request.amount_minor) == ("credit", int(guest),
                                                                       2000)
    assert not Refund.objects.exists()
