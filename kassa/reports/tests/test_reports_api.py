"""The reports through the API: the Impacts of package-refunds.txt with exact figures, time
zones, failed refunds on the day they fail, and CSV with the same figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import time_machine

from conftest import make_tenant, run_tasks
from kassa.ledger.verify import verify
from kassa.refunds.sandbox import settle

NY = ZoneInfo("America/New_York")


def at(day: str, hour: int, minute: int = 0, zone=NY):
    y, m, d = map(int, day.split("-"))
    return dt.datetime(y, m, d, hour, minute, tzinfo=zone)


@pytest.fixture
def spa(db):
    return make_tenant("Lumen Spa", timezone="America/New_York")


def package_sold_and_paid(spa, tax_rate="0"):
    tpl = spa.api.post("/package-templates", {
        "name": "Weight loss, 10 sessions", "price": "1000.00", "tax_rate": tax_rate,
        "benefits": [{"name": "Session", "quantity": 5, "unit_value": "200.00"}]}).json()
    inv = spa.invoice({"kind": "package", "description": "Weight loss",
                       "package_template": tpl["id"]})
    pkg = inv["packages"][0]
    spa.pay(inv["id"], inv["total"], method="card", online=True)
    return inv, pkg


def daily(spa, day, **params):
    r = spa.api.get("/reports/daily", date=day, **params)
    assert r.status_code == 200, r.content
    return r.json()


def test_impacts_of_a_package_refund(spa):
    with time_machine.travel(at("2026-03-02", 10), tick=False):
        _inv, pkg = package_sold_and_paid(spa)
        spa.api.post(f"/packages/{pkg['id']}/redemptions",
                     {"benefit": pkg["benefits"][0]["id"], "quantity": 1})
    with time_machine.travel(at("2026-03-03", 15), tick=False):
        r = spa.api.post(f"/packages/{pkg['id']}/refunds", {
            "amount": "150.00", "reason": "moving", "close_package": False,
            "refund_to": {"method": "cash"}})
        assert r.status_code == 201, r.content

    sale_day = daily(spa, "2026-03-02")
    assert sale_day["sales"] == {"gross": "1000.00", "credits": "0.00", "net": "1000.00"}
    assert sale_day["collections"]["received"] == "1000.00"
    refund_day = daily(spa, "2026-03-03")
    # Sales for the day go down by the refunded amount; so do collections.
    assert refund_day["sales"] == {"gross": "0.00", "credits": "150.00", "net": "-150.00"}
    assert refund_day["collections"]["refunded"] == "150.00"
    assert refund_day["collections"]["net"] == "-150.00"
    assert refund_day["collections"]["by_method"]["cash"] == "-150.00"
    assert refund_day["refunds"] == {"count": 1, "total": "150.00"}

    # Liability: the Refunds column, and the closing balance including refunds.
    month = spa.api.get("/reports/package-liability", start="2026-03-01",
                        end="2026-03-31").json()
    [row] = month["rows"]
    assert (row["opening"], row["paid"], row["redeemed"], row["refunded"], row["forfeited"],
            row["closing"]) == ("0.00", "1000.00", "200.00", "150.00", "0.00", "650.00")
    assert month["totals"]["closing"] == "650.00"
    day_two = spa.api.get("/reports/package-liability", start="2026-03-03",
                          end="2026-03-03").json()
    assert day_two["rows"][0]["opening"] == "800.00"
    assert day_two["rows"][0]["closing"] == "650.00"

    # Revenue: the redemption only; the refund changes nothing.
    revenue = spa.api.get("/reports/revenue", start="2026-03-01", end="2026-03-31").json()
    assert revenue["by_kind"] == {"service": "0.00", "product": "0.00",
                                  "redemption": "200.00", "forfeit": "0.00", "fee": "0.00"}
    assert revenue["total"] == "200.00"
    assert verify(spa.organization) == []


def test_a_payment_late_in_the_evening_counts_on_that_local_day(spa):
    with time_machine.travel(at("2026-05-10", 23, 30), tick=False):
        inv = spa.invoice({"kind": "service", "description": "Massage",
                           "unit_price": "90.00"})
        spa.pay(inv["id"], "90.00", method="cash")
    assert daily(spa, "2026-05-10")["collections"]["received"] == "90.00"
    assert daily(spa, "2026-05-11")["collections"]["received"] == "0.00"


def test_a_refund_the_day_after_the_sale_counts_on_its_own_day(spa):
    with time_machine.travel(at("2026-05-10", 12), tick=False):
        inv = spa.invoice({"kind": "service", "description": "Massage",
                           "unit_price": "90.00"})
        payment = spa.pay(inv["id"], "90.00", method="check")
    with time_machine.travel(at("2026-05-11", 9), tick=False):
        spa.api.post(f"/payments/{payment['id']}/refunds", {
            "type": "offline", "amount": "30.00", "method": "cash", "reason": "late",
            "decrease_balance_owed": True})
    first, second = daily(spa, "2026-05-10"), daily(spa, "2026-05-11")
    assert first["collections"]["refunded"] == "0.00" and first["sales"]["credits"] == "0.00"
    assert second["collections"]["refunded"] == "30.00"
    assert second["collections"]["by_method"] == {"cash": "-30.00", "check": "0.00",
                                                  "card": "0.00"}
    assert second["sales"]["credits"] == "30.00"


def test_an_online_refund_leaves_collections_when_it_settles_and_a_failure_comes_back(spa):
    with time_machine.travel(at("2026-06-01", 10), tick=False):
        inv = spa.invoice({"kind": "service", "description": "Facial", "unit_price": "100.00"})
        ok = spa.pay(inv["id"], "50.00", method="card", online=True)
        bad = spa.pay(inv["id"], "50.00", method="card", online=True,
                      source="sandbox_refund_fails")
        for payment in (ok, bad):
            spa.api.post(f"/payments/{payment['id']}/refunds",
                         {"type": "online", "amount": "20.00", "reason": "r"})
        run_tasks()
    with time_machine.travel(at("2026-06-02", 10), tick=False):
        settle(refund_ids=[], everything=True)
    issued, settled = daily(spa, "2026-06-01"), daily(spa, "2026-06-02")
    assert issued["collections"]["refunded"] == "0.00"  # nothing left the bank yet
    assert issued["refunds"] == {"count": 2, "total": "40.00"}
    assert settled["collections"]["refunded"] == "20.00"
    assert settled["refunds"] == {"count": -1, "total": "-20.00"}  # the failure, on its day
    assert verify(spa.organization) == []


def test_reports_by_center_and_in_total(spa):
    second = spa.api.post("/centers", {"name": "Uptown"}).json()
    with time_machine.travel(at("2026-07-01", 12), tick=False):
        a = spa.invoice({"kind": "service", "description": "A", "unit_price": "10.00"})
        spa.pay(a["id"], "10.00")
        customer = spa.customer("Bo", "bo@example.com")
        r = spa.api.post("/invoices", {"customer": customer, "center": second["id"], "lines": [
            {"kind": "product", "description": "B", "unit_price": "5.00"}]})
        spa.pay(r.json()["id"], "5.00")
    assert daily(spa, "2026-07-01")["sales"]["gross"] == "15.00"
    assert daily(spa, "2026-07-01", center=second["id"])["sales"]["gross"] == "5.00"
    assert daily(spa, "2026-07-01", center=spa.center_id)["sales"]["gross"] == "10.00"


def test_every_report_also_as_csv_with_the_same_figures(spa):
    with time_machine.travel(at("2026-03-02", 10), tick=False):
        _inv, _pkg = package_sold_and_paid(spa, tax_rate="10")
    r = spa.api.get("/reports/daily", date="2026-03-02", format="csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == ["section", "figure", "amount"]
    assert ["sales", "gross", "1000.00"] in rows and ["tax", "charged", "100.00"] in rows
    liability = spa.api.get("/reports/package-liability", start="2026-03-01",
                            end="2026-03-31", format="csv")
    rows = list(csv.reader(io.StringIO(liability.content.decode())))
    assert rows[0] == ["package", "customer", "name", "opening", "paid", "redeemed",
                       "refunded", "forfeited", "closing"]
    assert rows[-1] == ["total", "", "", "0.00", "1000.00", "0.00", "0.00", "0.00", "1000.00"]
    revenue = spa.api.get("/reports/revenue", start="2026-03-01", end="2026-03-31",
                          format="csv")
    assert list(csv.reader(io.StringIO(revenue.content.decode())))[-1] == ["total", "0.00"]


def test_bad_report_parameters_are_422_naming_the_field(spa):
    for params, field in (({"date": "2026-02-30"}, "date"), ({"center": "999"}, "center")):
        r = spa.api.get("/reports/daily", **params)
        assert r.status_code == 422, r.content
        assert field in [e["field"] for e in r.json()["errors"]]
    r = spa.api.get("/reports/revenue", start="2026-03-02", end="2026-03-01")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start"


def test_a_name_that_a_spreadsheet_would_run_as_a_formula_stays_text_in_the_csv(spa):
    """A customer named `=HYPERLINK(…)` is a name in the package-liability CSV, not a formula;
    a negative amount keeps its sign."""
    with time_machine.travel(at("2026-03-02", 10), tick=False):
        tpl = spa.api.post("/package-templates", {
            "name": "Ten sessions", "price": "100.00", "tax_rate": "0",
            "benefits": [{"name": "Session", "quantity": 1, "unit_value": "100.00"}]}).json()
        for name in ('=HYPERLINK("http://evil.example","x")', "+1 Guest", "@Guest", "-Guest"):
            customer = spa.customer(name, "g@example.com")
            inv = spa.invoice({"kind": "package", "description": "Ten sessions",
                               "package_template": tpl["id"]}, customer=customer)
            spa.pay(inv["id"], inv["total"])
    r = spa.api.get("/reports/package-liability", start="2026-03-01", end="2026-03-31",
                    format="csv")
    customers = [row[1] for row in csv.reader(io.StringIO(r.content.decode()))][1:-1]
    assert customers == ['\'=HYPERLINK("http://evil.example","x")', "'+1 Guest", "'@Guest",
                         "'-Guest"]
    from kassa.reports.presenters import neutralised

    assert (neutralised("-50.00"), neutralised("\tx"), neutralised("Ann")) == (
        "-50.00", "'\tx", "Ann")
