"""Line credits become billing's own rows: the refunds app's RefundCredit table moves here as
LineCredit (its rows kept), with `gives_back` marking a package refund's credit, which also
gives the paid money back (the line's `refunded_*`). The move is a state change; the database
only renames the table and lets `refund` be null (a closed package's credit has none)."""

import django.db.models.deletion
from django.db import migrations, models


def mark_package_refund_credits(apps, schema_editor):
    LineCredit = apps.get_model("billing", "LineCredit")
    Refund = apps.get_model("refunds", "Refund")
    package_refunds = Refund.objects.filter(package__isnull=False).values("id")
    LineCredit.objects.filter(refund_id__in=package_refunds).update(gives_back=True)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0003_invoiceline_refunded"),
        ("refunds", "0002_refund_close_package_refund_package"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="LineCredit",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name="ID")),
                        ("net_minor", models.BigIntegerField()),
                        ("tax_minor", models.BigIntegerField()),
                        ("line", models.ForeignKey(
                            on_delete=django.db.models.deletion.PROTECT,
                            related_name="credits", to="billing.invoiceline")),
                        ("refund", models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE, related_name="+",
                            to="refunds.refund")),
                    ],
                    options={"db_table": "refunds_refundcredit"},
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterField(
            model_name="linecredit",
            name="refund",
            field=models.ForeignKey(blank=True, null=True,
                                    on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to="refunds.refund"),
        ),
        migrations.AddField(
            model_name="linecredit",
            name="gives_back",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_package_refund_credits, migrations.RunPython.noop),
        migrations.AlterModelTable(name="linecredit", table=None),
        migrations.AddConstraint(
            model_name="invoiceline",
            constraint=models.CheckConstraint(
                condition=models.Q(("refunded_tax_minor__lte", models.F("paid_tax_minor"))),
                name="line_tax_back_within_tax_in"),
        ),
    ]
