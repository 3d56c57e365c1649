"""The sandbox's charges and refunds carry the organization whose processor account they stand
for, and their unique keys include it (kassa.core.tenant_keys).

A charge's organization is its payment's: the payment that names its reference, or the one its
idempotency key names (`kassa-…-payment-<id>`, a charge whose answer was lost); a refund's is
its charge's; 0004 makes the column non-null. A charge no payment of this database names is
test-mode state nothing can reach (no payment to resume, settle or refund it): it is dropped with its refunds, since it has no
organization to carry. Reversible (the column goes; dropped rows stay dropped).
"""

import re

import django.db.models.deletion
from django.db import migrations, models

from kassa.core.tenant_keys import copy_organization

PAYMENT_KEY = re.compile(r"payment-([0-9]{1,18})$")


def charges_from_payments(apps, schema_editor):
    SandboxCharge = apps.get_model("gateways", "SandboxCharge")
    Payment = apps.get_model("billing", "Payment")
    charges = list(SandboxCharge.objects.filter(organization__isnull=True))
    by_reference = dict(Payment.objects.filter(
        gateway="sandbox", gateway_reference__in=[c.reference for c in charges]
    ).values_list("gateway_reference", "organization_id"))
    keyed = {c.pk: int(m.group(1)) for c in charges
             if (m := PAYMENT_KEY.search(c.idempotency_key))}
    by_payment = dict(Payment.objects.filter(pk__in=set(keyed.values()))
                      .values_list("pk", "organization_id"))
    orphans = []
    for charge in charges:
        organization_id = by_reference.get(charge.reference) or by_payment.get(keyed.get(charge.pk))
        if organization_id is None:
            orphans.append(charge.pk)
            continue
        SandboxCharge.objects.filter(pk=charge.pk).update(organization_id=organization_id)
    SandboxCharge.objects.filter(pk__in=orphans).delete()
    if schema_editor.connection.vendor == "postgresql":
        # The deletion left deferred foreign-key checks pending, and PostgreSQL alters no table
        # (nor indexes it) while they are: run them now.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ("gateways", "0002_sandbox_charge_state"),
        ("billing", "0005_payment_intents"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandboxcharge",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.AddField(
            model_name="sandboxrefund",
            name="organization",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenancy.organization'),
        ),
        migrations.RunPython(charges_from_payments, migrations.RunPython.noop),
        migrations.RunPython(copy_organization("gateways.SandboxRefund", "charge"),
                             migrations.RunPython.noop),
    ]
