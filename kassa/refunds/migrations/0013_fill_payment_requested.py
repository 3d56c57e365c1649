"""Fill `Payment.requested_minor` (billing.0012) from the refund requests open now: what each
payment's open requests reserve of it (the figure kassa.refunds.requests derives from then on)."""

from django.db import migrations
from django.db.models import Sum


def fill(apps, schema_editor):
    Payment = apps.get_model("billing", "Payment")
    RefundRequest = apps.get_model("refunds", "RefundRequest")
    open_ = (RefundRequest.objects.filter(status="open", payment__isnull=False,
                                          package__isnull=True)
             .values("payment_id").annotate(total=Sum("amount_minor")))
    for row in open_.iterator():
        Payment.objects.filter(pk=row["payment_id"]).update(requested_minor=row["total"])


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0012_payment_requested'),
        ('refunds', '0012_refund_requests'),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
