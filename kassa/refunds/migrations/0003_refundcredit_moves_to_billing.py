"""RefundCredit is now billing's LineCredit (billing 0004 took over its table)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("refunds", "0002_refund_close_package_refund_package"),
        ("billing", "0004_linecredit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="RefundCredit")],
            database_operations=[],
        ),
    ]
