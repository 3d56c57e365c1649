"""Tenant keys: every tenant table carries `organization_id`, and on PostgreSQL is keyed on it.

DESIGN.md, "Scale (v2)": so that the tables can be distributed by organization (Citus) without
changing the schema, every tenant table has a non-null `organization_id`, every unique
constraint includes it and, on PostgreSQL, every primary key is `(organization_id, id)` and
every foreign key between tenant tables names both columns. Django keeps `id` as its primary
key: it never needs the database's key to be `id` alone, and a plain (non-unique) index on `id`
keeps every look-up and row lock by id an index scan. Citus allows no unique index without the
distribution column, so that index is not unique; `id` comes from the table's identity
sequence and is unique anyway.

`TenantKeys` is the migration operation that re-keys tables (a no-op on SQLite);
`kassa.core.postgresql` is the schema editor that keeps the foreign keys right in every later
migration; `kassa/tests/test_tenant_schema.py` holds the whole schema to all of it. A new tenant
model: an `organization` foreign key, its unique constraints with `organization`, and
`TenantKeys(["app.Model"])` in the migration after its `CreateModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import StateApps

FK_SUFFIX = "_fk_%(to_table)s_%(to_column)s"  # Django's own, so that names stay Django's

Backfill = Callable[[StateApps, Any], None]


def copy_organization(label: str, parent: str) -> Backfill:
    """A RunPython step: fill `label`'s new organization_id from its `parent` row's."""

    def run(apps: StateApps, schema_editor: Any) -> None:
        model = apps.get_model(label)
        field = model._meta.get_field(parent)
        parents = field.related_model._default_manager.filter(  # type: ignore[union-attr]
            pk=models.OuterRef(field.attname)).values("organization_id")[:1]
        model._default_manager.filter(organization_id__isnull=True).update(
            organization_id=models.Subquery(parents))

    return run


class TenantKeys(Operation):
    """On PostgreSQL, key each named table on (organization_id, id), index `id` alone, and make
    every foreign key to it name both columns; backwards, the other way. Nothing on SQLite (it
    cannot alter a primary key in place, and nothing distributes it)."""

    reversible = True
    reduces_to_sql = False

    def __init__(self, models: list[str]) -> None:
        self.models = list(models)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__qualname__, [], {"models": self.models})

    def describe(self) -> str:
        return f"Key {', '.join(self.models)} on (organization_id, id) on PostgreSQL"

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # Django's state is unchanged: `id` stays its primary key

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any,
                          to_state: Any) -> None:
        if self._editor(schema_editor):
            for label in self.models:
                self._rekey(schema_editor, to_state.apps, to_state.apps.get_model(label),
                            tenant=True)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any,
                           to_state: Any) -> None:
        if self._editor(schema_editor):
            for label in reversed(self.models):
                self._rekey(schema_editor, to_state.apps, to_state.apps.get_model(label),
                            tenant=False)

    @staticmethod
    def _editor(schema_editor: Any) -> bool:
        if schema_editor.connection.vendor != "postgresql":
            return False
        from kassa.core.postgresql.schema import DatabaseSchemaEditor

        assert isinstance(schema_editor, DatabaseSchemaEditor), (
            "tenant keys need the kassa.core.postgresql backend (settings.database())")
        # Foreign keys that earlier operations of this migration left for its end must exist
        # before the keys they point at change.
        for sql in schema_editor.deferred_sql:
            schema_editor.execute(sql)
        schema_editor.deferred_sql.clear()
        return True

    @staticmethod
    def _rekey(schema_editor: Any, apps: StateApps, model: type[models.Model], *,
               tenant: bool) -> None:
        from kassa.core.postgresql.schema import ORGANIZATION, has_organization

        table = model._meta.db_table
        assert has_organization(model), f"{table} has no organization_id to be keyed on"
        if schema_editor.tenant_keyed(table) == tenant:
            return  # already so: nothing to do
        incoming = [
            (source, field) for source in apps.get_models(include_auto_created=True)
            if source._meta.managed for field in source._meta.local_concrete_fields
            if field.remote_field is not None and getattr(field, "db_constraint", False)
            and field.remote_field.model._meta.db_table == table
        ]
        for source, field in incoming:
            assert has_organization(source), (
                f"{source._meta.db_table}.{field.column} points at tenant table {table} "
                "but has no organization_id")
            for name in schema_editor._constraint_names(source, [field.column],
                                                        foreign_key=True):
                schema_editor.execute(schema_editor._delete_fk_sql(source, name))
        for name in schema_editor._constraint_names(model, primary_key=True):
            schema_editor.execute(schema_editor._delete_primary_key_sql(model, name))
        quote = schema_editor.quote_name
        by_id = quote(schema_editor._create_index_name(table, ["id"], suffix="_by_id"))
        if tenant:
            schema_editor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT "
                                  f"{quote(table + '_pkey')} PRIMARY KEY ({ORGANIZATION}, id)")
            schema_editor.execute(f"CREATE INDEX {by_id} ON {quote(table)} (id)")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {by_id}")
            schema_editor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT "
                                  f"{quote(table + '_pkey')} PRIMARY KEY (id)")
        for source, field in incoming:
            # The schema editor names both columns now that the target is keyed on both.
            schema_editor.execute(schema_editor._create_fk_sql(source, field, FK_SUFFIX))
