"""The Kassa side of the replica test, run as its own process so that its settings come from
the environment as an operator's would (DATABASE_URL, KASSA_REPORTS_DATABASE_URL).

    python -m kassa.reports.tests.replica_scenario write
        migrate, then an organization, an invoice (a service and a package), a payment and a
        refund; answer every report and export through the API and the pages.
    python -m kassa.reports.tests.replica_scenario read '<what write printed>'
        answer the same reports and exports again, as the same admin.
    python -m kassa.reports.tests.replica_scenario refuse
        try a write and a row lock through the reports alias; print what the database said.

Each prints one JSON object on its last line of stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kassa.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from conftest import Api, make_tenant, plain_static_files  # noqa: E402
from kassa.reports.selectors import reports_database  # noqa: E402
from kassa.tenancy.models import Membership  # noqa: E402

plain_static_files().enable()  # it renders pages, and collects no static files

TIMED_ROUNDS = 10


def reports(api: Api, session: Client, day: str) -> dict[str, Any]:
    """Every report, as JSON and CSV from the API and as CSV from its page."""
    period = {"start": day[:8] + "01", "end": day}
    answers: dict[str, Any] = {}
    for name, path, page, params in (
            ("daily", "/reports/daily", "/reports/", {"date": day}),
            ("liability", "/reports/package-liability", "/reports/package-liability/", period),
            ("revenue", "/reports/revenue", "/reports/revenue/", period)):
        json_answer = api.get(path, **params)
        csv_answer = api.get(path, **params, format="csv")
        page_csv = session.get(page, {**params, "format": "csv"})
        page_html = session.get(page, params)
        for answer in (json_answer, csv_answer, page_csv, page_html):
            assert answer.status_code == 200, (name, answer.status_code, answer.content[:500])
        answers[name] = {"json": json_answer.json(), "csv": csv_answer.content.decode(),
                         "page_csv": page_csv.content.decode(),
                         "page_has_figures": b"<table" in page_html.content}
    return answers


def timed(api: Api, day: str) -> dict[str, float]:
    """Median milliseconds of each report's API answer, over a few rounds."""
    period = {"start": day[:8] + "01", "end": day}
    result = {}
    for name, path, params in (("daily", "/reports/daily", {"date": day}),
                               ("liability", "/reports/package-liability", period),
                               ("revenue", "/reports/revenue", period)):
        samples = []
        for _ in range(TIMED_ROUNDS):
            began = time.perf_counter()
            assert api.get(path, **params).status_code == 200
            samples.append((time.perf_counter() - began) * 1000)
        result[name] = round(statistics.median(samples), 2)
    return result


def signed_in(email: str) -> Client:
    session = Client()
    membership = Membership.objects.select_related("user").get(user__email=email)
    session.force_login(membership.user, backend="kassa.tenancy.auth.EmailBackend")
    return session


def write() -> dict[str, Any]:
    call_command("migrate", interactive=False, verbosity=0)
    tenant = make_tenant("Replica Spa")
    template = tenant.api.post("/package-templates", {
        "name": "Five facials", "price": "500.00", "tax_rate": "0",
        "benefits": [{"name": "Facial", "quantity": 5, "unit_value": "100.00"}]}).json()
    invoice = tenant.invoice(
        {"kind": "service", "description": "Massage", "unit_price": "80.00", "tax_rate": "10"},
        {"kind": "package", "description": "Five facials", "package_template": template["id"]})
    payment = tenant.pay(invoice["id"], invoice["total"], method="cash")
    refund = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "30.00", "method": "cash", "reason": "a late start"})
    assert refund.status_code == 201, refund.content
    day = refund.json()["created_at"][:10]  # the organization's zone is UTC
    email = tenant.admin.user.email
    return {"token": tenant.token, "email": email, "day": day,
            "reports_database": reports_database(),
            "answers": reports(tenant.api, signed_in(email), day),
            "milliseconds": timed(tenant.api, day)}


def read(written: dict[str, Any]) -> dict[str, Any]:
    api = Api(written["token"], Client())
    day = written["day"]
    return {"reports_database": reports_database(),
            "answers": reports(api, signed_in(written["email"]), day),
            "milliseconds": timed(api, day)}


def refuse() -> dict[str, Any]:
    """What the reports' database says to a write and to a row lock."""
    from kassa.refunds.models import Refund

    alias = reports_database()
    said = {}
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute("UPDATE refunds_refund SET reason = 'changed'")
        said["update"] = "accepted"
    except Exception as error:  # what the database said is the answer
        said["update"] = str(error).splitlines()[0]
    try:
        with transaction.atomic(using=alias):
            list(Refund.objects.using(alias).select_for_update())
        said["select_for_update"] = "accepted"
    except Exception as error:
        said["select_for_update"] = str(error).splitlines()[0]
    return {"reports_database": alias, "said": said}


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "write":
        out = write()
    elif mode == "read":
        out = read(json.loads(argv[1]))
    elif mode == "refuse":
        out = refuse()
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
