"""`kassa verify` checks of refunds and the payments' refunded figures."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, Sum

from kassa.billing.models import Invoice, InvoiceLine, Payment
from kassa.ledger.models import TENDER_CODES
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import check
from kassa.refunds.models import Refund, RefundCredit, RefundStatus
from kassa.tenancy.models import Organization

LIVE = ~Q(status=RefundStatus.FAILED)


@check
def payments_refunded_agree(org: Organization) -> Iterable[str]:
    refunded = dict(
        Refund.objects.filter(LIVE, organization=org, payment__isnull=False)
        .values("payment_id").annotate(s=Sum("amount_minor") + Sum("tax_minor"))
        .values_list("payment_id", "s"))
    pending = set(Refund.objects.filter(organization=org, status=RefundStatus.PENDING)
                  .values_list("payment_id", flat=True))
    for p in Payment.objects.filter(organization=org).iterator():
        if p.refunded_minor != (refunded.get(p.pk) or 0):
            yield (f"payment {p.pk}: refunded is {p.refunded_minor}, its refunds that did not "
                   f"fail add up to {refunded.get(p.pk) or 0}")
        if p.refund_pending != (p.pk in pending):
            yield f"payment {p.pk}: refund_pending is {p.refund_pending}, its refunds disagree"


def _sums(group: str, org: Organization, *, apart: bool = False) -> dict:
    """Credits per invoice or line: refunds' credits plus closed packages' cancelled remainders,
    as a total or (apart) as (net, tax)."""
    from kassa.packages.models import PackageCancellation

    out: dict = {}
    for model, scope in ((RefundCredit, {"refund__organization": org}),
                         (PackageCancellation, {"package__organization": org})):
        rows = model.objects.filter(**scope).values(group).annotate(
            n=Sum("net_minor"), t=Sum("tax_minor"))
        for row in rows:
            n, t = row["n"] or 0, row["t"] or 0
            if apart:
                old = out.get(row[group], (0, 0))
                out[row[group]] = (old[0] + n, old[1] + t)
            else:
                out[row[group]] = out.get(row[group], 0) + n + t
    return out


@check
def invoices_refunded_and_credits_agree(org: Organization) -> Iterable[str]:
    refunded = dict(
        Refund.objects.filter(LIVE, organization=org).values("invoice_id")
        .annotate(s=Sum("amount_minor") + Sum("tax_minor")).values_list("invoice_id", "s"))
    credits = _sums("line__invoice_id", org)
    for inv in Invoice.objects.filter(organization=org).iterator():
        if inv.refunded_minor != (refunded.get(inv.pk) or 0):
            yield (f"invoice {inv.number}: refunded is {inv.refunded_minor}, its refunds add up "
                   f"to {refunded.get(inv.pk) or 0}")
        if inv.credits_minor != (credits.get(inv.pk) or 0):
            yield (f"invoice {inv.number}: credits is {inv.credits_minor}, its line credits add "
                   f"up to {credits.get(inv.pk) or 0}")


@check
def line_credits_agree(org: Organization) -> Iterable[str]:
    sums = _sums("line_id", org, apart=True)
    for line in InvoiceLine.objects.filter(invoice__organization=org).iterator():
        if (line.credited_net_minor, line.credited_tax_minor) != sums.get(line.pk, (0, 0)):
            yield (f"invoice line {line.pk}: credited {line.credited_net_minor}+"
                   f"{line.credited_tax_minor}, its refund credits {sums.get(line.pk, (0, 0))}")


@check
def refunds_agree_with_ledger(org: Organization) -> Iterable[str]:
    in_transit = balances_by("refund_id", "refunds_in_transit", organization=org)
    tendered: dict[int, int] = {}
    for code in TENDER_CODES:
        for refund_id, total in balances_by("refund_id", code, organization=org).items():
            tendered[refund_id] = tendered.get(refund_id, 0) + total
    for refund in Refund.objects.filter(organization=org).iterator():
        transit = in_transit.get(refund.pk, 0)
        paid_out = -tendered.get(refund.pk, 0)
        expected_transit = -refund.total_minor if refund.status == RefundStatus.PENDING else 0
        expected_out = (refund.total_minor if refund.status in (RefundStatus.SUCCEEDED,
                                                                RefundStatus.RECORDED) else 0)
        if transit != expected_transit:
            yield (f"refund {refund.pk} ({refund.status}): refunds in transit holds {-transit}, "
                   f"expected {-expected_transit}")
        if paid_out != expected_out:
            yield (f"refund {refund.pk} ({refund.status}): the tenders paid out {paid_out}, "
                   f"expected {expected_out}")
