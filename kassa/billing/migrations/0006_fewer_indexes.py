"""Fewer index writes (issue 17, part 3): drop the indexes that another index already serves.

Each dropped index's column is first in another index of its table, or it is the
varchar_pattern_ops copy that only a LIKE would read. Django's own AlterField(db_index=False)
on a foreign key drops and re-adds the constraint, which validates every row again (minutes,
under lock, on ten million postings): here only the state changes and the database drops the
index by its name (the same on SQLite and PostgreSQL). Reversible: the way back creates them.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_payment_intents'),
        ('tenancy', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='payment',
                    name='organization',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='tenancy.organization'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "billing_payment_organization_id_efd5b976"',
                    'CREATE INDEX IF NOT EXISTS "billing_payment_organization_id_efd5b976" ON "billing_payment" ("organization_id")',
                ),
            ],
        ),
    ]
