"""A package's paid and refunded figures are its invoice line's: the four copies go, and a
closed package's cancelled remainder becomes a line credit of billing's (LineCredit with no
refund) instead of a row of its own. Reversible: the copies are filled again from the lines."""

import django.db.models.deletion
from django.db import migrations, models


def cancellations_to_line_credits(apps, schema_editor):
    PackageCancellation = apps.get_model("packages", "PackageCancellation")
    LineCredit = apps.get_model("billing", "LineCredit")
    LineCredit.objects.bulk_create([
        LineCredit(line_id=c.line_id, refund=None, net_minor=c.net_minor, tax_minor=c.tax_minor,
                   gives_back=False)
        for c in PackageCancellation.objects.all()
    ])


def line_credits_to_cancellations(apps, schema_editor):
    PackageCancellation = apps.get_model("packages", "PackageCancellation")
    Package = apps.get_model("packages", "Package")
    LineCredit = apps.get_model("billing", "LineCredit")
    credits = list(LineCredit.objects.filter(refund__isnull=True))
    packages = {p.line_id: p for p in Package.objects.filter(
        line_id__in=[credit.line_id for credit in credits])}
    for credit in credits:
        package = packages[credit.line_id]
        # By id: the historical Package of this state and the one the relation names differ.
        # A line credit keeps no time; the package's closing is when its remainder was credited.
        PackageCancellation.objects.create(
            package_id=package.pk, line_id=credit.line_id, net_minor=credit.net_minor,
            tax_minor=credit.tax_minor, created_at=package.closed_at or package.created_at)
        credit.delete()


def copy_figures_back_from_lines(apps, schema_editor):
    Package = apps.get_model("packages", "Package")
    for package in Package.objects.select_related("line"):
        package.paid_minor = package.line.paid_net_minor
        package.tax_paid_minor = package.line.paid_tax_minor
        package.refunded_minor = package.line.refunded_net_minor
        package.tax_refunded_minor = package.line.refunded_tax_minor
        package.save()


class Migration(migrations.Migration):

    dependencies = [
        ("packages", "0002_package_cancellation"),
        ("billing", "0004_linecredit"),
    ]

    operations = [
        migrations.RunPython(cancellations_to_line_credits, line_credits_to_cancellations),
        migrations.DeleteModel(name="PackageCancellation"),
        migrations.RemoveConstraint(model_name="package", name="package_tax_back_within_tax_in"),
        migrations.RemoveConstraint(model_name="package", name="package_figures_not_negative"),
        migrations.RunPython(migrations.RunPython.noop, copy_figures_back_from_lines),
        migrations.RemoveField(model_name="package", name="paid_minor"),
        migrations.RemoveField(model_name="package", name="refunded_minor"),
        migrations.RemoveField(model_name="package", name="tax_paid_minor"),
        migrations.RemoveField(model_name="package", name="tax_refunded_minor"),
        migrations.AddConstraint(
            model_name="package",
            constraint=models.CheckConstraint(
                condition=models.Q(("forfeited_minor__gte", 0), ("redeemed_minor__gte", 0)),
                name="package_figures_not_negative"),
        ),
    ]
