"""Fewer index writes (issue 17, part 3), on refunds.

The gateway reference is looked up by equality only: one plain index instead of Django's
db_index pair (a btree and its varchar_pattern_ops copy for LIKE, which nothing runs). The
organization's own index gives way to (organization, created_at), which the daily report's
refund count reads; it serves every look-up by organization too. The foreign key stays as it
is: only its index is dropped, by name (the same on SQLite and PostgreSQL), so that no
constraint is validated again. Reversible.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('refunds', '0006_refund_request_key'),
        ('tenancy', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='refund',
            name='gateway_reference',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='refund',
                    name='organization',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='tenancy.organization'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "refunds_refund_organization_id_dff810c6"',
                    'CREATE INDEX IF NOT EXISTS "refunds_refund_organization_id_dff810c6" '
                    'ON "refunds_refund" ("organization_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='refund',
            index=models.Index(fields=['organization', 'created_at'], name='refund_org_created_idx'),
        ),
        migrations.AddIndex(
            model_name='refund',
            index=models.Index(fields=['gateway_reference'], name='refund_gateway_ref_idx'),
        ),
    ]
