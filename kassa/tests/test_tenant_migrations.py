"""The tenant-key migrations fill `organization_id` from each row's parent, and go back and
forth on the database the suite runs on (on PostgreSQL, re-keying the tables each way)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

# The last migration of each app before the tenant keys.
BEFORE = [("tenancy", "0001_initial"), ("gateways", "0002_sandbox_charge_state"),
          ("refunds", "0008_failed_refunds_by_day"), ("packages", "0003_figures_from_the_line"),
          ("billing", "0006_fewer_indexes"), ("ledger", "0006_fewer_indexes")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_organization_is_copied_from_the_parent_rows_and_the_migrations_reverse() -> None:
    old = migrate(BEFORE)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org = old.get_model("tenancy", "Organization").objects.create(name="Acme")
    other = old.get_model("tenancy", "Organization").objects.create(name="Other")
    center = old.get_model("tenancy", "Center").objects.create(organization=org, name="Main")
    customer = old.get_model("billing", "Customer").objects.create(
        organization=org, name="Ada", email="ada@example.com")
    invoice = old.get_model("billing", "Invoice").objects.create(
        organization=org, center=center, customer=customer, number="1001", status="open",
        subtotal_minor=1000, tax_minor=0, total_minor=1000, balance_due_minor=1000,
        created_at=now)
    line = old.get_model("billing", "InvoiceLine").objects.create(
        invoice=invoice, position=1, kind="service", description="Service", quantity=1,
        unit_price_minor=1000, tax_rate=0, net_minor=1000, tax_minor=0)
    payment = old.get_model("billing", "Payment").objects.create(
        organization=org, center=center, invoice=invoice, amount_minor=500, method="card",
        online=True, gateway="sandbox", status="processing", charge_state="charging",
        created_at=now)
    old.get_model("billing", "PaymentEvent").objects.create(payment=payment, at=now,
                                                            kind="payment_started")
    old.get_model("billing", "LineCredit").objects.create(line=line, net_minor=1, tax_minor=0)
    charge_model = old.get_model("gateways", "SandboxCharge")
    charge = charge_model.objects.create(  # its answer was lost: only its key names the payment
        reference="ch_1", idempotency_key=f"kassa-abc-payment-{payment.pk}", amount_minor=500,
        currency="USD", source="sandbox_ok")
    old.get_model("gateways", "SandboxRefund").objects.create(
        reference="re_1", idempotency_key="kassa-abc-refund-1", charge=charge, amount_minor=100,
        settle_after=now)
    charge_model.objects.create(reference="ch_2", idempotency_key="nobody's", amount_minor=1,
                                currency="USD", source="sandbox_ok")

    for _ in range(2):  # forwards, backwards, and forwards again
        new = migrate(leaves())
        for label in ("billing.InvoiceLine", "billing.PaymentEvent", "billing.LineCredit",
                      "gateways.SandboxCharge", "gateways.SandboxRefund"):
            rows = list(new.get_model(label).objects.values_list("organization_id", flat=True))
            assert rows == [org.pk], label
        assert other.pk != org.pk
        old = migrate(BEFORE)
    migrate(leaves())
