"""`/audit/`: admins and accountants read the audit log, filtered by object; others get a 403."""

from __future__ import annotations

from django.test import Client


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def test_admins_and_accountants_see_the_log_from_the_menu(tenant):
    tenant.pay(tenant.invoice()["id"], "100.00")
    books, _ = tenant.user("accountant")
    for who in (tenant.admin, books):
        client = signed_in(who)
        home = client.get("/audit/")
        assert home.status_code == 200
        text = home.content.decode()
        assert 'href="/audit/"' in text and "payment.succeeded" in text
        assert tenant.admin.user.email in text
        only = client.get("/audit/", {"object": "payment"}).content.decode()
        assert "payment.succeeded" in only and "invoice.issued" not in only


def test_the_front_desk_gets_a_403_and_no_menu_link(tenant):
    desk, _ = tenant.user("front_desk")
    client = signed_in(desk)
    assert client.get("/audit/").status_code == 403
    assert 'href="/audit/"' not in client.get("/").content.decode()
