"""Pages show every date and time in the organization's time zone: a payment and its refund
at 02:00 UTC on 2 December are on 1 December, 20:00, for a front desk in America/Chicago."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.test import Client
from django.utils import timezone

from conftest import make_tenant

AT = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)


def test_a_signed_in_page_shows_the_local_date_and_time(db):
    chicago = make_tenant("Windy Spa", timezone="America/Chicago")
    utc = make_tenant("Greenwich Spa", timezone="UTC")
    pages = {}
    for tenant in (chicago, utc):
        inv = tenant.invoice()
        with time_machine.travel(AT, tick=False):
            payment = tenant.pay(inv["id"], "100.00")
            r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
                "type": "offline", "amount": "10.00", "method": "cash", "reason": "Returned"})
            assert r.status_code == 201, r.content
        client = Client()
        client.force_login(tenant.admin.user)
        page = client.get(f"/payments/{payment['id']}/")
        assert page.status_code == 200
        pages[tenant.organization.timezone] = page.content.decode()
        # The zone was the request's only: this thread is back in UTC.
        assert timezone.get_current_timezone_name() == "UTC"
    # Received, the refund row and the history: all in the local day and hour.
    assert pages["America/Chicago"].count("2026-12-01 20:00") >= 3
    assert "2026-12-02" not in pages["America/Chicago"]
    assert pages["UTC"].count("2026-12-02 02:00") >= 3
    assert "2026-12-01" not in pages["UTC"]


def test_the_api_keeps_utc_timestamps(db):
    chicago = make_tenant("Windy Spa", timezone="America/Chicago")
    inv = chicago.invoice()
    with time_machine.travel(AT, tick=False):
        payment = chicago.pay(inv["id"], "100.00")
    assert chicago.api.get(f"/payments/{payment['id']}").json()["created_at"].startswith(
        "2026-12-02T02:00:00")
