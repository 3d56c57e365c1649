"""The whole schema is ready to be distributed by organization (DESIGN.md, "Scale (v2)").

Read from the migrated test database itself, every table in it: each tenant table carries a
non-null `organization_id`, and each of its unique constraints and unique indexes includes
it; on PostgreSQL each is keyed on `(organization_id, id)`, keeps a plain index on `id` for
the look-ups and row locks by id, and each foreign key between tenant tables names both
columns. A table that is not a tenant's must be listed in GLOBAL with the reason, so a new
table that forgets its organization fails here. See `kassa.core.tenant_keys`.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

ORGANIZATION = "organization_id"

# Tables that are no tenant's, each with why. Under Citus these are reference tables (copied to
# every node), except the organization itself, which is distributed by its own id.
GLOBAL: dict[str, str] = {
    "tenancy_organization": "the tenant itself: its id is every other table's organization_id",
    "core_lease": "the installation's periodic work (the sweep), done once for all tenants",
    "core_installation": "this database's one name among Kassa's copies, for gateway keys",
    "auth_user": "Django's users: one person may be a member of several organizations",
    "auth_group": "Django's auth (Kassa's roles are per membership)",
    "auth_group_permissions": "Django's auth",
    "auth_permission": "Django's auth",
    "auth_user_groups": "Django's auth",
    "auth_user_user_permissions": "Django's auth",
    "django_content_type": "Django's registry of models",
    "django_migrations": "Django's record of applied migrations",
    "django_session": "Django's sessions: a sign-in, before any organization is chosen",
    "django_admin_log": "Django's admin: the installation's staff, not a tenant's",
    "django_tasks_database_dbtaskresult": (
        "django-tasks' queue: the worker's, for every tenant; the outbox is the domain rows"),
    "axes_accessattempt": "django-axes: sign-in throttling by account and address",
    "axes_accessattemptexpiration": "django-axes",
    "axes_accessfailurelog": "django-axes",
    "axes_accesslog": "django-axes",
}


def tables() -> list[str]:
    with connection.cursor() as cursor:
        return sorted(connection.introspection.table_names(cursor))


def tenant_tables() -> list[str]:
    return [table for table in tables() if table not in GLOBAL]


def constraints(table: str) -> dict[str, dict[str, Any]]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)  # type: ignore[no-any-return]


def test_every_global_table_exists() -> None:
    """The list stays true: a table renamed or dropped leaves it."""
    assert not set(GLOBAL) - set(tables())


def test_every_tenant_table_has_a_non_null_organization() -> None:
    assert len(tenant_tables()) >= 25  # the introspection sees Kassa's tables at all
    missing, nullable = [], []
    for table in tenant_tables():
        with connection.cursor() as cursor:
            columns = {c.name: c for c in
                       connection.introspection.get_table_description(cursor, table)}
        if ORGANIZATION not in columns:
            missing.append(table)
        elif columns[ORGANIZATION].null_ok:
            nullable.append(table)
    assert not missing, f"tables without organization_id (or list them in GLOBAL): {missing}"
    assert not nullable, f"tables whose organization_id may be null: {nullable}"


def test_every_tenant_organization_points_at_the_organization() -> None:
    wrong = []
    for table in tenant_tables():
        fks = [c["foreign_key"] for c in constraints(table).values()
               if c["foreign_key"] and c["columns"] == [ORGANIZATION]]
        if fks != [("tenancy_organization", "id")]:
            wrong.append((table, fks))
    assert not wrong


def test_every_unique_constraint_includes_the_organization() -> None:
    wrong = []
    for table in tenant_tables():
        for name, info in constraints(table).items():
            if not info["unique"]:
                continue
            if info["primary_key"] and connection.vendor != "postgresql":
                continue  # Django's `id`: on PostgreSQL the next test holds the key itself
            if ORGANIZATION not in info["columns"]:
                wrong.append(f"{table}.{name} {info['columns']}")
    assert not wrong, f"unique without organization_id: {wrong}"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the keys are PostgreSQL's")
def test_every_tenant_table_is_keyed_on_organization_and_id() -> None:
    wrong = []
    for table in tenant_tables():
        keys = [c["columns"] for c in constraints(table).values() if c["primary_key"]]
        if keys != [[ORGANIZATION, "id"]]:
            wrong.append((table, keys))
    assert not wrong, "primary keys that are not (organization_id, id); a new tenant table " \
        f"wants TenantKeys in its migration (kassa.core.tenant_keys): {wrong}"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the keys are PostgreSQL's")
def test_a_look_up_by_id_alone_uses_an_index() -> None:
    """Django and the row locks find rows by `id` alone: a plain index serves them."""
    unindexed, scanned = [], []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the tables are nearly empty here
        for table in tenant_tables():
            indexes = [c for c in constraints(table).values()
                       if c["index"] and c["columns"] == ["id"]]
            if not indexes or any(c["unique"] for c in indexes):
                unindexed.append(table)  # none, or a unique one Citus would refuse
            cursor.execute(f'EXPLAIN SELECT * FROM "{table}" WHERE id = 1 FOR UPDATE')
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if "Index" not in plan:
                scanned.append((table, plan))
    assert not unindexed, f"no plain index on id alone: {unindexed}"
    assert not scanned


FOREIGN_KEYS = """
SELECT c.conname, src.relname, dst.relname,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
JOIN pg_class src ON src.oid = c.conrelid
JOIN pg_class dst ON dst.oid = c.confrelid
WHERE c.contype = 'f' AND src.relnamespace = 'public'::regnamespace
"""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the keys are PostgreSQL's")
def test_every_foreign_key_between_tenant_tables_names_the_organization() -> None:
    tenants = set(tenant_tables())
    with connection.cursor() as cursor:
        cursor.execute(FOREIGN_KEYS)
        fks = cursor.fetchall()
    assert len(fks) > 40  # the query sees the schema's foreign keys at all
    wrong = []
    for name, source, target, columns, target_columns in fks:
        if source in tenants and target in tenants:
            if (len(columns) != 2 or columns[0] != ORGANIZATION
                    or target_columns != [ORGANIZATION, "id"]):
                wrong.append(f"{source}.{name} {columns} -> {target} {target_columns}")
        elif source not in tenants and target in tenants:
            wrong.append(f"global {source} points at tenant table {target} ({name})")
        elif source in tenants and target == "tenancy_organization":
            if columns != [ORGANIZATION]:
                wrong.append(f"{source}.{name}: the organization by another column {columns}")
    assert not wrong, f"foreign keys that do not name organization_id: {wrong}"
