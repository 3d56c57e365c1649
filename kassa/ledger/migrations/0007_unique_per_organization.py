"""The ledger's unique keys include the organization (kassa.core.tenant_keys): an account per
center and code, a day's total per center, day, code and kind, and an entry reversed once —
each the same rule as before, since a center and an entry belong to one organization."""

import django.db.models.deletion
from django.db import migrations, models

import kassa.core.fields


class Migration(migrations.Migration):

    dependencies = [
        ("ledger", "0006_fewer_indexes"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="account", name="account_per_center_unique"),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(fields=("organization", "center", "code"),
                                               name="account_per_center_unique"),
        ),
        migrations.RemoveConstraint(model_name="dailytotal", name="daily_total_unique"),
        migrations.AddConstraint(
            model_name="dailytotal",
            constraint=models.UniqueConstraint(
                fields=("organization", "center", "business_date", "code", "kind"),
                name="daily_total_unique"),
        ),
        migrations.AlterField(
            model_name="journalentry",
            name="reverses",
            field=kassa.core.fields.TenantOneToOneField(
                blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                related_name="reversed_by", to="ledger.journalentry"),
        ),
        migrations.AddConstraint(
            model_name="journalentry",
            constraint=models.UniqueConstraint(fields=("organization", "reverses"),
                                               name="entry_reversed_once"),
        ),
    ]
