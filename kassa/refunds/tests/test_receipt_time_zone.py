"""A receipt's date is the organization's local date and time, as its pages show it, though
the worker that renders it runs in UTC."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.core import mail
from django.utils import timezone

from conftest import make_tenant, run_tasks

AT = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)


def receipt_of_a_refund_at_two_utc(zone: str) -> str:
    tenant = make_tenant("Windy Spa", timezone=zone)
    inv = tenant.invoice(customer=tenant.customer("Ann Guest", "ann@example.com"))
    payment = tenant.pay(inv["id"], "100.00")
    mail.outbox.clear()
    with time_machine.travel(AT, tick=False):
        r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "amount": "10.00", "method": "cash", "reason": "Returned"})
        assert r.status_code == 201, r.content
        run_tasks()
    [message] = mail.outbox
    return str(message.body)


def test_a_receipt_shows_the_local_date_in_chicago(db):
    body = receipt_of_a_refund_at_two_utc("America/Chicago")
    assert "Date:            2026-12-01 20:00 CST" in body, body
    assert timezone.get_current_timezone_name() == "UTC"  # the override ended with the render


def test_a_receipt_shows_utc_where_the_organization_keeps_it(db):
    body = receipt_of_a_refund_at_two_utc("UTC")
    assert "Date:            2026-12-02 02:00 UTC" in body, body
