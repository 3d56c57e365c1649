"""Staff look at everything in the Django admin and cannot edit money there."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client


def test_staff_see_the_money_read_only(tenant):
    inv = tenant.invoice()
    tenant.pay(inv["id"], "100.00")
    staff = get_user_model().objects.create_superuser("root@example.com", "root@example.com",
                                                      "pw-123456")
    client = Client()
    client.force_login(staff)
    for path in ("/admin/billing/invoice/", "/admin/billing/payment/",
                 "/admin/refunds/refund/", "/admin/packages/package/",
                 "/admin/ledger/journalentry/", "/admin/tenancy/organization/",
                 f"/admin/billing/invoice/{inv['id']}/change/"):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/billing/invoice/add/").status_code == 403
    r = client.post(f"/admin/billing/invoice/{inv['id']}/change/", {"balance_due_minor": 0})
    assert r.status_code == 403


def test_staff_cannot_edit_a_customers_credit(tenant):
    guest = tenant.customer()
    r = tenant.api.post(f"/customers/{guest}/deposits", {
        "center": tenant.center_id, "amount": "25.00", "method": "cash"})
    assert r.status_code == 201, r.content
    staff = get_user_model().objects.create_superuser("root@example.com", "root@example.com",
                                                      "pw-123456")
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/billing/creditentry/").status_code == 200
    assert client.get("/admin/billing/creditentry/add/").status_code == 403
    page = client.get(f"/admin/billing/customer/{guest}/change/")
    assert page.status_code == 200 and 'name="credit_minor"' not in page.content.decode()
    client.post(f"/admin/billing/customer/{guest}/change/", {
        "organization": tenant.organization.pk, "name": "Ann Guest",
        "email": "ann@example.com", "credit_minor": 999999})
    from kassa.billing.models import Customer

    assert Customer.objects.get(pk=guest).credit_minor == 2500
