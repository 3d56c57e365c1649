"""On PostgreSQL, parameters are bound on the server and a statement a connection runs often
is prepared there once (psycopg's `prepare_threshold`), so the money transaction's statements
are not planned again on every request; `KASSA_PG_PREPARE=0` turns it off for a pooler."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from conftest import Tenant
from kassa.billing.models import Payment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_statement_run_often_is_prepared_on_the_server(tenant: Tenant) -> None:
    payment = tenant.pay(tenant.invoice()["id"], "10.00")
    for _ in range(6):
        assert Payment.objects.get(pk=payment["id"]).amount_minor == 1000
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "billing_payment"' in sql for sql in prepared), prepared


def test_it_can_be_turned_off_for_a_pooler() -> None:
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold'))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kassa.settings", "KASSA_PG_PREPARE": "0"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert off.stdout.strip() == "None"
    env["KASSA_PG_PREPARE"] = "1"
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        check=True)
    assert on.stdout.strip() == "5"
