"""`kassa verify` checks of invoices, their lines and payments against their rows and
sub-ledgers."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Sum

from kassa.billing.models import (
    ChargeState,
    Invoice,
    InvoiceLine,
    LineCredit,
    Payment,
    PaymentAllocation,
    PaymentStatus,
)
from kassa.core.installation import installation_key
from kassa.gateways.models import SandboxCharge
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import check
from kassa.tenancy.models import Organization

# A payment's booking, and its reversal when the processor failed the charge after all.
PAID_KINDS = ("payment", "payment_reversed")


@check
def invoices_agree_with_ledger(org: Organization) -> Iterable[str]:
    receivable = balances_by("invoice_id", "receivable", organization=org)
    issued = balances_by("invoice_id", "receivable", organization=org,
                         entry__kind="invoice_issued")
    paid = balances_by("invoice_id", "receivable", organization=org, entry__kind__in=PAID_KINDS)
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
    """A succeeded payment is booked for its amount; any other (processing, failed, declined)
    has nothing booked at all: no posting, no allocation."""
    taken = balances_by("payment_id", "receivable", organization=org,
                        entry__kind__in=PAID_KINDS)
    allocated = set(PaymentAllocation.objects.filter(payment__organization=org)
                    .values("payment_id").annotate(net=Sum("net_minor"), tax=Sum("tax_minor"))
                    .exclude(net=0, tax=0).values_list("payment_id", flat=True))
    for payment in Payment.objects.filter(organization=org).iterator():
        booked = -taken.get(payment.pk, 0)
        if payment.status == PaymentStatus.SUCCEEDED and payment.amount_minor != booked:
            yield (f"payment {payment.pk}: amount is {payment.amount_minor}, "
                   f"the ledger says {booked}")
        if payment.status != PaymentStatus.SUCCEEDED and (booked or payment.pk in allocated):
            yield (f"payment {payment.pk} is {payment.status}, yet {booked} of it is booked"
                   + (" and allocated to lines" if payment.pk in allocated else ""))


# What the worker may still have to do about a payment's charge, by the payment's status.
CHARGE_STATES = {
    PaymentStatus.PROCESSING: {ChargeState.CHARGING, ChargeState.AWAITING, ChargeState.STUCK},
    PaymentStatus.SUCCEEDED: {ChargeState.NONE},
    PaymentStatus.FAILED: {ChargeState.NONE, ChargeState.GIVE_BACK, ChargeState.STUCK},
    PaymentStatus.DECLINED: {ChargeState.NONE, ChargeState.GIVE_BACK, ChargeState.STUCK},
}


@check
def payments_charges_agree(org: Organization) -> Iterable[str]:
    """No charge is forgotten: a processing payment has a gateway call coming (or a person's
    attention), a failed one that was charged has its give-back coming."""
    for payment in Payment.objects.filter(organization=org, online=True).iterator():
        allowed = CHARGE_STATES.get(PaymentStatus(payment.status), set())
        if payment.charge_state not in allowed:
            yield (f"payment {payment.pk} is {payment.status} with its charge "
                   f"{payment.charge_state or 'settled'}")
        elif payment.charge_state not in (ChargeState.NONE, ChargeState.STUCK) and (
                payment.next_attempt_at is None):
            yield f"payment {payment.pk}: its charge is {payment.charge_state} with no call due"
    offline = Payment.objects.filter(organization=org, online=False).exclude(
        status=PaymentStatus.SUCCEEDED, charge_state=ChargeState.NONE)
    for pk in offline.values_list("pk", flat=True):
        yield f"payment {pk} is offline, yet not simply succeeded"


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


@check
def line_credits_agree(org: Organization) -> Iterable[str]:
    """A line's credited figures are its LineCredit rows; its refunded figures those that
    give the paid money back (package refunds)."""
    credited: dict[int, tuple[int, int]] = {}
    given_back: dict[int, tuple[int, int]] = {}
    rows = (LineCredit.objects.filter(line__invoice__organization=org)
            .values("line_id", "gives_back").annotate(n=Sum("net_minor"), t=Sum("tax_minor")))
    for row in rows:
        n, t = int(row["n"] or 0), int(row["t"] or 0)
        old = credited.get(row["line_id"], (0, 0))
        credited[row["line_id"]] = (old[0] + n, old[1] + t)
        if row["gives_back"]:
            given_back[row["line_id"]] = (n, t)
    for line in InvoiceLine.objects.filter(invoice__organization=org).iterator():
        if (line.credited_net_minor, line.credited_tax_minor) != credited.get(line.pk, (0, 0)):
            yield (f"invoice line {line.pk}: credited {line.credited_net_minor}+"
                   f"{line.credited_tax_minor}, its credits {credited.get(line.pk, (0, 0))}")
        if (line.refunded_net_minor, line.refunded_tax_minor) != given_back.get(line.pk, (0, 0)):
            yield (f"invoice line {line.pk}: refunded {line.refunded_net_minor}+"
                   f"{line.refunded_tax_minor}, its credits that gave money back "
                   f"{given_back.get(line.pk, (0, 0))}")


@check
def invoices_agree_with_lines(org: Organization) -> Iterable[str]:
    """An invoice's credits are its lines' credits."""
    credits = dict(InvoiceLine.objects.filter(invoice__organization=org).values("invoice_id")
                   .annotate(s=Sum("credited_net_minor") + Sum("credited_tax_minor"))
                   .values_list("invoice_id", "s"))
    for inv in Invoice.objects.filter(organization=org).iterator():
        if inv.credits_minor != (credits.get(inv.pk) or 0):
            yield (f"invoice {inv.number}: credits is {inv.credits_minor}, its lines' credits "
                   f"add up to {credits.get(inv.pk) or 0}")


@check
def sandbox_charges_agree(org: Organization) -> Iterable[str]:
    """With the sandbox gateway Kassa can see the processor's side: every charge it keeps
    (succeeded, not given back) is a succeeded payment of ours — or one whose charge is being
    given back — and every succeeded sandbox payment is such a charge. (With Stripe, the
    reconciliation report holds the same.)"""
    payments = {p.pk: p for p in Payment.objects.filter(organization=org, gateway="sandbox",
                                                        online=True)}
    if not payments:
        return
    prefix = f"kassa-{installation_key()}-payment-"
    charges = SandboxCharge.objects.filter(
        idempotency_key__in=[f"{prefix}{pk}" for pk in payments])
    kept = {c.idempotency_key: c for c in charges if c.state == "succeeded" and not c.cancelled}
    for pk, payment in payments.items():
        charge = kept.get(f"{prefix}{pk}")
        if payment.status == PaymentStatus.SUCCEEDED and (
                charge is None or charge.reference != payment.gateway_reference):
            yield (f"payment {pk} succeeded, but the sandbox keeps no charge "
                   f"{payment.gateway_reference or '(none recorded)'} for it")
        elif (payment.status != PaymentStatus.SUCCEEDED and charge is not None
              and payment.charge_state not in (ChargeState.GIVE_BACK, ChargeState.STUCK)):
            yield (f"payment {pk} is {payment.status}, yet the sandbox keeps its charge "
                   f"{charge.reference} and nothing gives it back")
