"""Django's own schema changes keep working on tables keyed on (organization_id, id): a new
tenant table's foreign keys name both columns, and altering, adding and removing a foreign key
find and make the two-column constraint (kassa.core.postgresql)."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models
from django.test.utils import isolate_apps

from kassa.billing.models import Invoice, Payment
from kassa.core.tenant_keys import TenantKeys
from kassa.tenancy.models import Organization

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the keys are PostgreSQL's"),
]


def foreign_keys(table: str) -> dict[str, tuple[list[str], str]]:
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT c.conname,
                   array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                         ORDER BY k.i),
                   c.confrelid::regclass::text
            FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = %s::regclass""", [table])
        return {name: (columns, target) for name, columns, target in cursor.fetchall()}


def columns_to(table: str, target: str) -> list[list[str]]:
    return sorted(cols for cols, to in foreign_keys(table).values() if to == target)


@isolate_apps("kassa.billing")
def test_a_new_tenant_table_and_later_alterations_keep_both_columns() -> None:
    class Note(models.Model):
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                         related_name="+")
        invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="+")

        class Meta:
            app_label = "billing"

    table = Note._meta.db_table
    try:
        with connection.schema_editor() as editor:
            editor.create_model(Note)
        assert columns_to(table, "billing_invoice") == [["organization_id", "invoice_id"]]
        assert columns_to(table, "tenancy_organization") == [["organization_id"]]

        with connection.schema_editor() as editor:
            TenantKeys._rekey(editor, apps, Note, tenant=True)
            assert editor.tenant_keyed(table)

        old: Any = Note._meta.get_field("invoice")
        unconstrained: Any = models.ForeignKey(Invoice, on_delete=models.CASCADE,
                                               related_name="+", db_constraint=False)
        unconstrained.set_attributes_from_name("invoice")
        unconstrained.model = Note
        with connection.schema_editor() as editor:  # Django must find the two-column key
            editor.alter_field(Note, old, unconstrained, strict=True)
        assert columns_to(table, "billing_invoice") == []
        with connection.schema_editor() as editor:
            editor.alter_field(Note, unconstrained, old, strict=True)
        assert columns_to(table, "billing_invoice") == [["organization_id", "invoice_id"]]

        payment: Any = models.ForeignKey(Payment, null=True, on_delete=models.CASCADE,
                                         related_name="+")
        payment.set_attributes_from_name("payment")
        payment.model = Note
        with connection.schema_editor() as editor:
            editor.add_field(Note, payment)
        assert columns_to(table, "billing_payment") == [["organization_id", "payment_id"]]
        with connection.schema_editor() as editor:
            editor.remove_field(Note, payment)
        assert columns_to(table, "billing_payment") == []

        with connection.schema_editor() as editor:
            TenantKeys._rekey(editor, apps, Note, tenant=False)
            assert not editor.tenant_keyed(table)
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Note)
