"""No redundant index on the tables every money change writes (issue 17, part 3).

Each index costs a write per row, and a posting is written ten million times. An index whose
columns begin another full index of its table serves nothing that one does not, and a
varchar_pattern_ops copy (Django's `_like` twin of a db_index CharField) serves only LIKE,
which no query here runs. Unique and partial indexes are constraints, never redundant here.
Whether the reports' queries still run on an index is asserted by the bench (`python -m bench
--explain`), over realistic statistics: a plan on a test's ten rows says nothing.
"""

from __future__ import annotations

import pytest
from django.db import connection

from conftest import is_postgres

TABLES = ("ledger_posting", "ledger_journalentry", "refunds_refund", "billing_payment")


def _indexes(table: str) -> dict[str, tuple[tuple[str, ...], bool, bool]]:
    """name → (columns, unique or primary key, partial)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
        if is_postgres():
            cursor.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = "
                           "i.indexrelid WHERE i.indrelid = %s::regclass AND i.indpred "
                           "IS NOT NULL", [table])
            partial = {row[0] for row in cursor.fetchall()}
        else:
            cursor.execute(f"PRAGMA index_list({table})")
            partial = {row[1] for row in cursor.fetchall() if row[4]}
    return {name: (tuple(c["columns"]), bool(c["unique"] or c["primary_key"]), name in partial)
            for name, c in found.items() if c["index"] or c["primary_key"]}


@pytest.mark.django_db
@pytest.mark.parametrize("table", TABLES)
def test_no_index_is_a_prefix_of_another(table):
    indexes = _indexes(table)
    redundant = [
        f"{name} {columns} begins {other} {other_columns}"
        for name, (columns, unique, partial) in indexes.items() if not unique and not partial
        for other, (other_columns, _, other_partial) in indexes.items()
        if other != name and not other_partial
        and other_columns[:len(columns)] == columns and (len(other_columns) > len(columns)
                                                         or other < name)]
    assert redundant == [], redundant


@pytest.mark.django_db
@pytest.mark.skipif(not is_postgres(), reason="operator classes are PostgreSQL's")
def test_no_pattern_ops_copy_of_an_index():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) "
                       "AND indexdef ~ '_pattern_ops'", [list(TABLES)])
        assert cursor.fetchall() == []
