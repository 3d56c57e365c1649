"""Django's PostgreSQL schema editor, taught the two-column tenant keys.

A foreign key from a table that carries `organization_id` to a table keyed on
`(organization_id, id)` is made as `(organization_id, x_id) REFERENCES t (organization_id, id)`;
any other is Django's own. Whether the target is so keyed is read from the database when the
key is made, so the same migrations build a fresh database (whose tables are created with
Django's keys and re-keyed by `TenantKeys` later) and change an old one. Looking for a
field's foreign key to drop it (AlterField, RemoveField) also finds the two-column one.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.ddl_references import Columns, Statement, Table
from django.db.backends.postgresql import schema
from django.db.models import Model

ORGANIZATION = "organization_id"


def has_organization(model: type[Model]) -> bool:
    return any(f.column == ORGANIZATION for f in model._meta.local_concrete_fields)


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _django(self) -> Any:
        """Django's own methods (private ones, which django-stubs does not declare)."""
        return super()

    def primary_key_columns(self, table: str) -> list[str]:
        with self.connection.cursor() as cursor:
            constraints = self.connection.introspection.get_constraints(cursor, table)
        for info in constraints.values():
            if info["primary_key"]:
                return list(info["columns"])
        return []

    def tenant_keyed(self, table: str) -> bool:
        return self.primary_key_columns(table) == [ORGANIZATION, "id"]

    def composite_fk(self, model: type[Model], field: Any) -> bool:
        """Whether `field`'s foreign key must name the organization too."""
        if field.remote_field is None or not field.db_constraint or field.column == ORGANIZATION:
            return False
        target = field.target_field  # type: ignore[attr-defined]
        return (has_organization(model) and target.column == "id"
                and self.tenant_keyed(target.model._meta.db_table))

    def _create_fk_sql(self, model: type[Model], field: Any, suffix: str) -> Any:
        if not self.composite_fk(model, field):
            return self._django()._create_fk_sql(model, field, suffix)
        to_table = field.target_field.model._meta.db_table  # type: ignore[attr-defined]
        return Statement(
            self.sql_create_fk,
            table=Table(model._meta.db_table, self.quote_name),
            name=self._django()._fk_constraint_name(model, field, suffix),
            column=Columns(model._meta.db_table, [ORGANIZATION, field.column], self.quote_name),
            to_table=Table(to_table, self.quote_name),
            to_column=Columns(to_table, [ORGANIZATION, "id"], self.quote_name),
            deferrable=self.connection.ops.deferrable_sql(),
        )

    def add_field(self, model: type[Model], field: Any) -> None:
        if not self.composite_fk(model, field):
            return super().add_field(model, field)
        # Django adds a new column's foreign key inline, on the column alone: defer it to
        # `_create_fk_sql` instead, which names both columns.
        self.sql_create_column_inline_fk = None  # type: ignore[assignment]
        try:
            super().add_field(model, field)
        finally:
            del self.sql_create_column_inline_fk

    def _constraint_names(self, model: type[Model], column_names: list[str] | None = None,
                          *args: Any, **kwargs: Any) -> list[str]:
        django = self._django()
        names: list[str] = django._constraint_names(model, column_names, *args, **kwargs)
        if (kwargs.get("foreign_key") and column_names is not None and len(column_names) == 1
                and column_names[0] != ORGANIZATION):
            names += django._constraint_names(model, [ORGANIZATION, column_names[0]],
                                              *args, **kwargs)
        return names
