"""The audit log: the chain heads and the entries, tenant tables keyed on (organization_id, id)
on PostgreSQL like every other (kassa.core.tenant_keys)."""

import django.db.models.deletion
from django.db import migrations, models

from kassa.core.tenant_keys import TenantKeys


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenancy', '0003_tenant_keys'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditChain',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.BigIntegerField(default=0)),
                ('hash', models.CharField(default='0000000000000000000000000000000000000000000000000000000000000000', max_length=64)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization',), name='audit_chain_one')],
            },
        ),
        migrations.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.BigIntegerField()),
                ('at', models.DateTimeField()),
                ('actor_id', models.BigIntegerField(null=True)),
                ('action', models.CharField(max_length=64)),
                ('object', models.CharField(max_length=64)),
                ('detail', models.JSONField(default=dict)),
                ('hash', models.CharField(max_length=64)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization')),
            ],
            options={
                'indexes': [models.Index(fields=['organization', 'object'], name='audit_by_object'), models.Index(fields=['organization', 'actor_id'], name='audit_by_actor')],
                'constraints': [models.UniqueConstraint(fields=('organization', 'seq'), name='audit_entry_seq')],
            },
        ),
        TenantKeys(["audit.AuditChain", "audit.AuditEntry"]),
    ]
