"""`kassa verify` checks of refunds and the payments' refunded figures."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, Sum

from kassa.billing.models import Invoice, InvoiceLine, LineKind, Payment
from kassa.ledger.models import TENDER_CODES
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import check
from kassa.refunds.models import Refund, RefundStatus
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


@check
def invoices_refunded_agree(org: Organization) -> Iterable[str]:
    refunded = dict(
        Refund.objects.filter(LIVE, organization=org).values("invoice_id")
        .annotate(s=Sum("amount_minor") + Sum("tax_minor")).values_list("invoice_id", "s"))
    for inv in Invoice.objects.filter(organization=org).iterator():
        if inv.refunded_minor != (refunded.get(inv.pk) or 0):
            yield (f"invoice {inv.number}: refunded is {inv.refunded_minor}, its refunds add up "
                   f"to {refunded.get(inv.pk) or 0}")


@check
def package_refunds_agree_with_lines(org: Organization) -> Iterable[str]:
    """What package refunds that did not fail gave back is their package line's refunded."""
    refunded = {
        row["package__line_id"]: (int(row["n"] or 0), int(row["t"] or 0))
        for row in Refund.objects.filter(LIVE, organization=org, package__isnull=False)
        .values("package__line_id").annotate(n=Sum("amount_minor"), t=Sum("tax_minor"))}
    lines = InvoiceLine.objects.filter(invoice__organization=org, kind=LineKind.PACKAGE)
    for line in lines.iterator():
        figure = (line.refunded_net_minor, line.refunded_tax_minor)
        if figure != refunded.get(line.pk, (0, 0)):
            yield (f"invoice line {line.pk}: refunded {figure[0]}+{figure[1]}, the refunds of "
                   f"its package {refunded.get(line.pk, (0, 0))}")


@check
def refund_credits_agree_with_ledger(org: Organization) -> Iterable[str]:
    """A payment refund's credit (decrease balance owed) is what its issuing entry posted to
    sales credits and tax payable."""
    posted: dict[int, dict[str, int]] = {}
    for code in ("sales_credits", "tax_payable"):
        for refund_id, total in balances_by(
                "refund_id", code, organization=org,
                entry__kind__in=["refund_issued", "refund_recorded"]).items():
            posted.setdefault(refund_id, {})[code] = total
    for refund in Refund.objects.filter(organization=org, package__isnull=True).iterator():
        booked = posted.get(refund.pk, {})
        expected = (booked.get("sales_credits", 0), booked.get("tax_payable", 0))
        if (refund.credit_net_minor, refund.credit_tax_minor) != expected:
            yield (f"refund {refund.pk}: credit {refund.credit_net_minor}+"
                   f"{refund.credit_tax_minor}, its entry posted {expected[0]}+{expected[1]}")


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
