"""API tokens carry their organization (from their membership), and the digest's uniqueness
includes it, so that the table can be distributed by organization (kassa.core.tenant_keys)."""

import django.db.models.deletion
from django.db import migrations, models

from kassa.core.tenant_keys import copy_organization


class Migration(migrations.Migration):

    dependencies = [
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RunPython(copy_organization("tenancy.ApiToken", "membership"),
                             migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="organization",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="digest",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="apitoken",
            constraint=models.UniqueConstraint(fields=("digest", "organization"),
                                               name="api_token_digest_unique"),
        ),
    ]
