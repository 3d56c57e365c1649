"""The sandbox's organization is never null, and its unique keys include it (0003 filled it)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("gateways", "0003_organization"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sandboxcharge",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+",
                                    to="tenancy.organization"),
        ),
        migrations.AlterField(
            model_name="sandboxrefund",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+",
                                    to="tenancy.organization"),
        ),
        migrations.AlterField(
            model_name="sandboxcharge",
            name="reference",
            field=models.CharField(max_length=40),
        ),
        migrations.AlterField(
            model_name="sandboxcharge",
            name="idempotency_key",
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name="sandboxrefund",
            name="reference",
            field=models.CharField(max_length=40),
        ),
        migrations.AlterField(
            model_name="sandboxrefund",
            name="idempotency_key",
            field=models.CharField(max_length=200),
        ),
        migrations.AddConstraint(
            model_name="sandboxcharge",
            constraint=models.UniqueConstraint(fields=("reference", "organization"),
                                               name="sandbox_charge_reference_unique"),
        ),
        migrations.AddConstraint(
            model_name="sandboxcharge",
            constraint=models.UniqueConstraint(fields=("idempotency_key", "organization"),
                                               name="sandbox_charge_key_unique"),
        ),
        migrations.AddConstraint(
            model_name="sandboxrefund",
            constraint=models.UniqueConstraint(fields=("reference", "organization"),
                                               name="sandbox_refund_reference_unique"),
        ),
        migrations.AddConstraint(
            model_name="sandboxrefund",
            constraint=models.UniqueConstraint(fields=("idempotency_key", "organization"),
                                               name="sandbox_refund_key_unique"),
        ),
    ]
