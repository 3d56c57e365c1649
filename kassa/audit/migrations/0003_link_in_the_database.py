"""On PostgreSQL the chain's links are made by the database, in the statement that writes the
entries (kassa.audit.services.append): `kassa_audit_link(org, bodies)` locks the organization's
chain head (making it first if there is none), computes each entry's `seq` and hash from the
previous hash and the entry's canonical JSON (`bodies`: each entry's text up to its `seq`,
built by kassa.audit.chain.body), moves the head and returns the links in order. So a money
transaction holds its organization's chain from that statement to its commit, with no round
trip to the client between (issue 17). The hash is the one kassa.audit.chain.digest computes
(SHA-256, hex, of previous + newline + canonical JSON): `kassa verify` recomputes every link
with it, and the suite runs on PostgreSQL."""

from django.db import migrations

LINK_SQL = """
CREATE OR REPLACE FUNCTION kassa_audit_link(org bigint, bodies text[])
RETURNS TABLE (link_seq bigint, link_hash text) AS $$
DECLARE
    head_id bigint;
    s bigint;
    h text;
    b text;
BEGIN
    SELECT c.id, c.seq, c.hash INTO head_id, s, h FROM audit_auditchain c
        WHERE c.organization_id = org ORDER BY c.id LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN  -- the organization's first entry: its head, then its lock
        INSERT INTO audit_auditchain (organization_id, seq, hash)
            VALUES (org, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;
        SELECT c.id, c.seq, c.hash INTO head_id, s, h FROM audit_auditchain c
            WHERE c.organization_id = org ORDER BY c.id LIMIT 1 FOR UPDATE;
    END IF;
    h := COALESCE(NULLIF(h, ''), repeat('0', 64));
    FOREACH b IN ARRAY bodies LOOP
        s := s + 1;
        h := encode(sha256(convert_to(h || E'\\n' || b || s::text || '}', 'UTF8')), 'hex');
        link_seq := s;
        link_hash := h;
        RETURN NEXT;
    END LOOP;
    UPDATE audit_auditchain SET seq = s, hash = h WHERE id = head_id;
END $$ LANGUAGE plpgsql;
"""

DROP_SQL = "DROP FUNCTION IF EXISTS kassa_audit_link(bigint, text[]);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(LINK_SQL)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP_SQL)


class Migration(migrations.Migration):

    dependencies = [("audit", "0002_append_only")]

    operations = [migrations.RunPython(create, drop)]
