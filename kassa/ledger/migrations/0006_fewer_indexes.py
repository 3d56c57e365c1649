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
        ('ledger', '0005_daily_totals'),
        ('packages', '0003_figures_from_the_line'),
        ('tenancy', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='journalentry',
                    name='organization',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='tenancy.organization'),
                ),
                migrations.AlterField(
                    model_name='posting',
                    name='center',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='tenancy.center'),
                ),
                migrations.AlterField(
                    model_name='posting',
                    name='organization',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='tenancy.organization'),
                ),
                migrations.AlterField(
                    model_name='posting',
                    name='package',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='packages.package'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "ledger_journalentry_organization_id_a5dd9e2e"',
                    'CREATE INDEX IF NOT EXISTS "ledger_journalentry_organization_id_a5dd9e2e" ON "ledger_journalentry" ("organization_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "ledger_posting_center_id_c2acb1b6"',
                    'CREATE INDEX IF NOT EXISTS "ledger_posting_center_id_c2acb1b6" ON "ledger_posting" ("center_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "ledger_posting_organization_id_8348495a"',
                    'CREATE INDEX IF NOT EXISTS "ledger_posting_organization_id_8348495a" ON "ledger_posting" ("organization_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "ledger_posting_package_id_2024b51e"',
                    'CREATE INDEX IF NOT EXISTS "ledger_posting_package_id_2024b51e" ON "ledger_posting" ("package_id")',
                ),
            ],
        ),
    ]
