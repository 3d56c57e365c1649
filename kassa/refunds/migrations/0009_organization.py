"""Receipts carry their refund's organization, and the refunds app's unique keys include it
(kassa.core.tenant_keys): one pending refund per payment, one receipt per refund and kind,
each journal entry a refund's once — the same rules, since a payment, a refund and an entry
belong to one organization. Reversible: the column goes."""

import django.db.models.deletion
from django.db import migrations, models

import kassa.core.fields
from kassa.core.tenant_keys import copy_organization


class Migration(migrations.Migration):

    dependencies = [
        ("refunds", "0008_failed_refunds_by_day"),
        ("ledger", "0007_unique_per_organization"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="receipt",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RunPython(copy_organization("refunds.receipt", "refund"), migrations.RunPython.noop),
        migrations.AlterField(
            model_name="receipt",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RemoveConstraint(model_name="receipt", name="one_receipt_per_event"),
        migrations.AddConstraint(
            model_name="receipt",
            constraint=models.UniqueConstraint(fields=("organization", "refund", "kind"),
                                               name="one_receipt_per_event"),
        ),
        migrations.RemoveConstraint(model_name="refund", name="one_pending_refund_per_payment"),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "pending")),
                                               fields=("organization", "payment"),
                                               name="one_pending_refund_per_payment"),
        ),
        migrations.AlterField(
            model_name="refund",
            name="issue_entry",
            field=kassa.core.fields.TenantOneToOneField(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                to="ledger.journalentry"),
        ),
        migrations.AlterField(
            model_name="refund",
            name="settle_entry",
            field=kassa.core.fields.TenantOneToOneField(
                blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                related_name="+", to="ledger.journalentry"),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(fields=("organization", "issue_entry"),
                                               name="refund_issue_entry_unique"),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(fields=("organization", "settle_entry"),
                                               name="refund_settle_entry_unique"),
        ),
    ]
