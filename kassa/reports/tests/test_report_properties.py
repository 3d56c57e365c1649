"""Hypothesis: over random histories spread across days, the reports add up and agree with the
ledger — liability closing = opening + paid − redeemed − refunded − forfeited, the days of a
period add up to the period, and `kassa verify` (which reconciles the reports with the accounts'
balances) stays clean."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_tenant
from kassa.ledger.verify import verify
from kassa.reports.selectors import COLUMNS, Scope, daily, package_liability, revenue

DAYS = [dt.date(2026, 4, 1) + dt.timedelta(days=i) for i in range(4)]

step = st.tuples(
    st.integers(0, len(DAYS) - 1),  # which day
    st.sampled_from(["sell", "pay", "redeem", "refund", "refund_close", "pay_refund"]),
    st.integers(1, 100),  # a percentage to size amounts
)


class Rollback(Exception):
    pass


@pytest.mark.django_db
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=3, max_size=14))
def test_reports_add_up_over_random_histories(steps):
    try:
        with transaction.atomic():
            _run(steps)
            raise Rollback
    except Rollback:
        pass


def _run(steps):
    tenant = make_tenant("Prop Spa", timezone="America/Chicago")
    zone = ZoneInfo("America/Chicago")
    tpl = tenant.api.post("/package-templates", {
        "name": "Pack", "price": "500.00", "tax_rate": "8.875",
        "benefits": [{"name": "Visit", "quantity": 10, "unit_value": "50.00"}]}).json()
    packages: list[dict] = []
    payments: list[dict] = []
    for day_index, action, pct in sorted(steps, key=lambda s: s[0]):
        moment = dt.datetime.combine(DAYS[day_index], dt.time(12), zone)
        with time_machine.travel(moment, tick=False):
            if action == "sell" or not packages:
                inv = tenant.invoice({"kind": "package", "description": "Pack",
                                      "package_template": tpl["id"]},
                                     {"kind": "service", "description": "Consult",
                                      "unit_price": "40.00"})
                packages.append(inv["packages"][0] | {"invoice": inv["id"]})
                continue
            pkg = tenant.api.get(f"/packages/{packages[-1]['id']}").json()
            invoice = tenant.api.get(f"/invoices/{pkg['invoice']}").json()
            due = int(invoice["balance_due"].replace(".", ""))
            balance = int(pkg["balance"].replace(".", ""))
            if action == "pay" and due > 0:
                amount = max(1, due * pct // 100)
                payments.append(tenant.pay(pkg["invoice"], f"{amount / 100:.2f}"))
            elif action == "redeem" and pkg["status"] == "active":
                tenant.api.post(f"/packages/{pkg['id']}/redemptions",
                                {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
            elif action in ("refund", "refund_close") and balance > 0:
                amount = max(1, balance * pct // 100)
                r = tenant.api.post(f"/packages/{pkg['id']}/refunds", {
                    "amount": f"{amount / 100:.2f}", "reason": "r",
                    "close_package": action == "refund_close",
                    "refund_to": {"method": "cash"}})
                assert r.status_code in (201, 422), r.content
            elif action == "pay_refund" and payments:
                p = tenant.api.get(f"/payments/{payments[-1]['id']}").json()
                refundable = int(p["refundable"].replace(".", ""))
                if refundable > 0:
                    amount = max(1, refundable * pct // 100)
                    r = tenant.api.post(f"/payments/{p['id']}/refunds", {
                        "type": "offline", "amount": f"{amount / 100:.2f}", "method": "check",
                        "reason": "r", "decrease_balance_owed": pct % 2 == 0})
                    assert r.status_code in (201, 422), r.content

    org = tenant.organization
    assert verify(org) == []
    whole = Scope(org, None, DAYS[0], DAYS[-1])
    period = package_liability(whole, limit=1000)
    for row in [*period["rows"], period["totals"]]:
        assert row["closing"] == (row["opening"] + row["paid"] - row["redeemed"]
                                  - row["refunded"] - row["forfeited"])
    assert sum(r["closing"] for r in period["rows"]) == period["totals"]["closing"]
    days = [Scope(org, None, d, d) for d in DAYS]
    liability_days = [package_liability(s, limit=1000)["totals"] for s in days]
    for before, after in itertools.pairwise(liability_days):
        assert before["closing"] == after["opening"]
    for column in COLUMNS[1:5]:
        assert sum(t[column] for t in liability_days) == period["totals"][column]
    assert sum(revenue(s)["total"] for s in days) == revenue(whole)["total"]
    whole_daily = daily(whole)
    for section, figure in (("sales", "net"), ("collections", "net"), ("tax", "net")):
        assert sum(daily(s)[section][figure] for s in days) == whole_daily[section][figure]
