"""On PostgreSQL the database refuses to change the audit log: a trigger refuses UPDATE and
DELETE of an entry (TRUNCATE, used only to wipe a test database, is not a row event). SQLite
has no such guard; there `kassa verify` recomputing the chain is what finds an edit."""

from django.db import migrations

GUARD_SQL = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_append_only();
"""


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # A plain cursor: the SQL holds % signs that are PL/pgSQL's, not query placeholders.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(GUARD_SQL)


def unguard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP_SQL)


class Migration(migrations.Migration):

    dependencies = [("audit", "0001_chain_and_entries")]

    operations = [migrations.RunPython(guard, unguard)]
