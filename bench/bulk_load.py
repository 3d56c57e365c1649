"""What a bulk load may set aside while it writes, and proof that all of it came back.

Loading millions of rows is fastest into tables without their secondary indexes, rebuilt once
at the end from sorted data instead of maintained row by row (what pg_restore does). The
tables' triggers are disabled for the load, as `pg_restore --disable-triggers` does for a data
load: the ledger's own (the deferred balance check per posting row, the append-only guards)
and the foreign keys' checks, which would otherwise queue one deferred event per reference in
memory. The foreign key constraints themselves stay, validated; the bench proves what the
triggers would have checked — every entry balances, every reference resolves (`dangling`) —
set-based. Primary keys, unique and check constraints stay on throughout.

`set_aside` records the definitions from the catalog before changing anything and `restore`
recreates exactly those, then compares the catalog with what it recorded: the tables end as
the migrations made them, or the load fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SNAPSHOT_SQL = """
    SELECT 'index' AS what, c.relname AS tbl, i.relname AS name, pg_get_indexdef(i.oid) AS def
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid
                      AND k.conrelid = c.oid)
    UNION ALL
    SELECT 'constraint', c.relname, k.conname,
           pg_get_constraintdef(k.oid) || ' validated=' || k.convalidated::text
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger', c.relname, t.tgname,
           pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
    ORDER BY 1, 2, 3
"""

FOREIGN_KEYS_SQL = """
    SELECT c.relname,
           array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY o(n, i)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.n ORDER BY o.i),
           r.relname,
           array(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY o(n, i)
                 JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = o.n ORDER BY o.i)
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_class r ON r.oid = k.confrelid
    WHERE k.contype = 'f'
      AND c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
    ORDER BY 1, 2
"""


@dataclass
class SetAside:
    tables: list[str]
    snapshot: list[tuple[str, str, str, str]]
    indexes: list[tuple[str, str, str]] = field(default_factory=list)  # table, name, definition
    triggers: int = 0


def _snapshot(cursor: Any, tables: list[str]) -> list[tuple[str, str, str, str]]:
    cursor.execute(SNAPSHOT_SQL, {"tables": tables})
    return [tuple(row) for row in cursor.fetchall()]


def set_aside(cursor: Any, tables: list[str]) -> SetAside:
    """Drop the secondary (non-unique, non-constraint) indexes of `tables` and disable their
    triggers. Call inside the load's transaction."""
    state = SetAside(tables=tables, snapshot=_snapshot(cursor, tables))
    state.indexes = [(t, n, d) for what, t, n, d in state.snapshot if what == "index"]
    state.triggers = sum(1 for what, *_ in state.snapshot if what == "trigger")
    for _, name, _ in state.indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    for table in tables:
        cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER ALL')
    return state


def restore(cursor: Any, state: SetAside) -> None:
    """Rebuild what `set_aside` dropped, enable the triggers, and prove the catalog is as it
    was."""
    for _, _, definition in state.indexes:
        cursor.execute(definition)
    for table in state.tables:
        cursor.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER ALL')
    after = _snapshot(cursor, state.tables)
    if after != state.snapshot:
        missing = sorted(set(state.snapshot) - set(after))
        extra = sorted(set(after) - set(state.snapshot))
        raise AssertionError(f"schema not restored: missing {missing}, unexpected {extra}")


def dangling(cursor: Any, tables: list[str]) -> dict[str, int]:
    """Per foreign key of `tables`, the rows whose reference does not resolve: what the
    foreign keys' triggers would have refused during the load."""
    cursor.execute(FOREIGN_KEYS_SQL, {"tables": tables})
    found = {}
    for table, columns, target, target_columns in cursor.fetchall():
        # On PostgreSQL a tenant table's keys name (organization_id, x_id): every column of
        # the key is matched, and a key with a null column is not checked (MATCH SIMPLE).
        present = " AND ".join(f't."{column}" IS NOT NULL' for column in columns)
        match = " AND ".join(f'r."{to}" = t."{column}"'
                             for column, to in zip(columns, target_columns, strict=True))
        cursor.execute(
            f'SELECT count(*) FROM "{table}" t WHERE {present} AND NOT EXISTS '
            f'(SELECT 1 FROM "{target}" r WHERE {match})')
        found[f"{table}.{columns[-1]} → {target}"] = cursor.fetchone()[0]
    return found
