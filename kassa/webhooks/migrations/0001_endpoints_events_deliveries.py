"""Outgoing webhooks: endpoints, events, deliveries; three tenant tables, keyed on
(organization_id, id) on PostgreSQL like every other (kassa.core.tenant_keys)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from kassa.core.tenant_keys import TenantKeys


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenancy', '0003_tenant_keys'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.CharField(max_length=2000)),
                ('events', models.JSONField(default=list)),
                ('secret_encrypted', models.TextField()),
                ('created_at', models.DateTimeField()),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization')),
            ],
        ),
        migrations.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.CharField(max_length=40)),
                ('type', models.CharField(choices=[('payment.succeeded', 'Payment Succeeded'), ('payment.failed', 'Payment Failed'), ('refund.created', 'Refund Created'), ('refund.succeeded', 'Refund Succeeded'), ('refund.failed', 'Refund Failed'), ('package.refunded', 'Package Refunded'), ('dispute.created', 'Dispute Created'), ('dispute.closed', 'Dispute Closed'), ('credit.changed', 'Credit Changed'), ('refund_request.created', 'Refund Request Created'), ('refund_request.decided', 'Refund Request Decided')], max_length=40)),
                ('created_at', models.DateTimeField()),
                ('body', models.TextField()),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization')),
            ],
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('pending', 'Waiting to be delivered'), ('sending', 'Being delivered'), ('delivered', 'Delivered'), ('gave_up', 'Gave up after three days')], default='pending', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('last_status_code', models.PositiveIntegerField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField()),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization')),
                ('endpoint', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='webhooks.webhookendpoint')),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='webhooks.webhookevent')),
            ],
        ),
        migrations.AddConstraint(
            model_name='webhookevent',
            constraint=models.UniqueConstraint(fields=('uid', 'organization'), name='webhook_event_uid'),
        ),
        migrations.AddIndex(
            model_name='webhookevent',
            index=models.Index(fields=['created_at'], name='webhook_events_by_age'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['status', 'next_attempt_at'], name='webhook_deliveries_due'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['endpoint', '-id'], name='webhook_deliveries_listed'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(fields=('organization', 'event', 'endpoint'), name='one_delivery_per_event_and_endpoint'),
        ),
        TenantKeys(["webhooks.WebhookEndpoint", "webhooks.WebhookEvent",
                    "webhooks.WebhookDelivery"]),
    ]
