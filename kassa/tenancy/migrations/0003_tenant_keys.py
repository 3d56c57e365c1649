"""On PostgreSQL, every tenant table is keyed on (organization_id, id) and every foreign key
between tenant tables names both columns, as Citus's guide for Django migrates them
(kassa.core.tenant_keys). Django's state is unchanged (`id` stays its primary key), and
nothing happens on SQLite. Reversible: backwards, the keys are `id` alone again."""

from django.db import migrations

from kassa.core.tenant_keys import TenantKeys

TENANT_MODELS = [
    "tenancy.Center", "tenancy.Membership", "tenancy.ApiToken",
    "core.IdempotentRequest",
    "ledger.Account", "ledger.JournalEntry", "ledger.Posting", "ledger.DailyTotal",
    "billing.Customer", "billing.Case", "billing.Invoice", "billing.InvoiceLine",
    "billing.Payment", "billing.PaymentAllocation", "billing.PaymentEvent", "billing.LineCredit",
    "gateways.SandboxCharge", "gateways.SandboxRefund",
    "packages.PackageTemplate", "packages.TemplateBenefit", "packages.Package",
    "packages.Benefit", "packages.Redemption",
    "refunds.Refund", "refunds.Receipt",
]


class Migration(migrations.Migration):

    dependencies = [
        ("tenancy", "0002_apitoken_organization"),
        ("core", "0004_idempotency_takeover"),
        ("ledger", "0007_unique_per_organization"),
        ("billing", "0007_organization"),
        ("gateways", "0004_unique_per_organization"),
        ("packages", "0004_organization"),
        ("refunds", "0009_organization"),
    ]

    operations = [TenantKeys(TENANT_MODELS)]
