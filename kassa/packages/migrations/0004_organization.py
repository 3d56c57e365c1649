"""Template benefits, benefits and redemptions carry their organization, copied from their
template or package, and a package's one line is unique per organization
(kassa.core.tenant_keys). Reversible: the column goes."""

import django.db.models.deletion
from django.db import migrations, models

import kassa.core.fields
from kassa.core.tenant_keys import copy_organization


class Migration(migrations.Migration):

    dependencies = [
        ("packages", "0003_figures_from_the_line"),
        ("billing", "0007_organization"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="templatebenefit",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="benefit",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="redemption",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RunPython(copy_organization("packages.templatebenefit", "template"), migrations.RunPython.noop),
        migrations.RunPython(copy_organization("packages.benefit", "package"), migrations.RunPython.noop),
        migrations.RunPython(copy_organization("packages.redemption", "package"), migrations.RunPython.noop),
        migrations.AlterField(
            model_name="templatebenefit",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="benefit",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="redemption",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="package",
            name="line",
            field=kassa.core.fields.TenantOneToOneField(
                on_delete=django.db.models.deletion.PROTECT, related_name="package",
                to="billing.invoiceline"),
        ),
        migrations.AddConstraint(
            model_name="package",
            constraint=models.UniqueConstraint(fields=("organization", "line"),
                                               name="one_package_per_line"),
        ),
    ]
