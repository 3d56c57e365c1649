"""Invoice lines, allocations, payment events and line credits carry their organization, copied
from the row they belong to (kassa.core.tenant_keys). Reversible: the column goes."""

import django.db.models.deletion
from django.db import migrations, models

from kassa.core.tenant_keys import copy_organization


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0006_fewer_indexes"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="invoiceline",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="paymentallocation",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="paymentevent",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="linecredit",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RunPython(copy_organization("billing.invoiceline", "invoice"), migrations.RunPython.noop),
        migrations.RunPython(copy_organization("billing.paymentallocation", "payment"), migrations.RunPython.noop),
        migrations.RunPython(copy_organization("billing.paymentevent", "payment"), migrations.RunPython.noop),
        migrations.RunPython(copy_organization("billing.linecredit", "line"), migrations.RunPython.noop),
        migrations.AlterField(
            model_name="invoiceline",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="paymentallocation",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="paymentevent",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="linecredit",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
    ]
