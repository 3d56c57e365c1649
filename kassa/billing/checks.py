"""`kassa verify` checks of invoices and payments against their sub-ledgers."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Sum

from kassa.billing.models import Invoice, InvoiceLine, PaymentAllocation
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import check
from kassa.tenancy.models import Organization


@check
def invoices_agree_with_ledger(org: Organization) -> Iterable[str]:
    receivable = balances_by("invoice_id", "receivable", organization=org)
    issued = balances_by("invoice_id", "receivable", organization=org,
                         entry__kind="invoice_issued")
    paid = balances_by("invoice_id", "receivable", organization=org, entry__kind="payment")
    for inv in Invoice.objects.filter(organization=org).iterator():
        name = f"invoice {inv.number} (id {inv.pk})"
        if inv.balance_due_minor != receivable.get(inv.pk, 0):
            yield (f"{name}: balance_due is {inv.balance_due_minor}, "
                   f"the receivable sub-ledger says {receivable.get(inv.pk, 0)}")
        if inv.total_minor != issued.get(inv.pk, 0):
            yield f"{name}: total is {inv.total_minor}, issued {issued.get(inv.pk, 0)}"
        if inv.paid_minor != -paid.get(inv.pk, 0):
            yield f"{name}: paid is {inv.paid_minor}, the ledger says {-paid.get(inv.pk, 0)}"
        expected = inv.total_minor - inv.credits_minor - inv.paid_minor + inv.refunded_minor
        if inv.balance_due_minor != expected:
            yield f"{name}: balance_due {inv.balance_due_minor} ≠ total − credits − paid + refunded"
        status = "open" if inv.balance_due_minor > 0 else "closed"
        if inv.status != status:
            yield f"{name}: status is {inv.status}, its balance due says {status}"


@check
def payments_agree_with_ledger(org: Organization) -> Iterable[str]:
    from kassa.billing.models import Payment

    taken = balances_by("payment_id", "receivable", organization=org, entry__kind="payment")
    for payment in Payment.objects.filter(organization=org).iterator():
        if payment.amount_minor != -taken.get(payment.pk, 0):
            yield (f"payment {payment.pk}: amount is {payment.amount_minor}, "
                   f"the ledger says {-taken.get(payment.pk, 0)}")


@check
def allocations_agree_with_lines(org: Organization) -> Iterable[str]:
    sums = {
        row["line_id"]: (row["net"], row["tax"])
        for row in PaymentAllocation.objects.filter(payment__organization=org)
        .values("line_id").annotate(net=Sum("net_minor"), tax=Sum("tax_minor"))
    }
    lines = InvoiceLine.objects.filter(invoice__organization=org).iterator()
    for line in lines:
        net, tax = sums.get(line.pk, (0, 0))
        if (line.paid_net_minor, line.paid_tax_minor) != (net or 0, tax or 0):
            yield (f"invoice line {line.pk}: paid {line.paid_net_minor}+{line.paid_tax_minor}, "
                   f"its allocations {net}+{tax}")
