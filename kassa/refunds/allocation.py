"""What a refund does to an invoice's lines.

A refund of a payment takes its amount back out of what that payment allocated to the lines,
pro rata, like a negative payment (the same rule as `kassa.billing.allocation`). With *decrease
balance owed* it also credits the invoice by the same amount, split between net and tax in the
invoice's proportion, and taken from the lines exactly where the refund took the payment back,
so that a fully paid line is never credited past what it owed. Both are written
as rows (negative PaymentAllocation rows, RefundCredit rows) so that a failed refund can put back
exactly what it took.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal

from django.db.models import F, Sum
from django.utils import timezone

from kassa.billing.allocation import split_pro_rata
from kassa.billing.models import Invoice, InvoiceLine, LineKind, Payment, PaymentAllocation
from kassa.core.money import round_half_up_minor
from kassa.ledger.services import Line
from kassa.refunds.models import Refund, RefundCredit


def take_back_from_lines(
    payment: Payment, refund: Refund, amount_minor: int, *, tax_part: int | None = None,
) -> dict[int, tuple[int, int]]:
    """Un-allocate `amount_minor` of `payment` from the lines it paid, pro rata; return what
    was taken per line as (net, tax).

    With `tax_part` the net and tax parts are fixed first and each is spread over the lines
    apart, so that a credit of the same split fits exactly into what was taken back.
    """
    held = (
        PaymentAllocation.objects.filter(payment=payment)
        .values("line_id").annotate(net=Sum("net_minor"), tax=Sum("tax_minor")).order_by("line_id")
    )
    nets = [(row["line_id"], int(row["net"] or 0)) for row in held]
    taxes = [(row["line_id"], int(row["tax"] or 0)) for row in held]
    if tax_part is None:
        buckets = [((line_id, "net"), w) for line_id, w in nets]
        buckets += [((line_id, "tax"), w) for line_id, w in taxes]
        both = split_pro_rata(amount_minor, buckets)
        shares = {line_id: (both[(line_id, "net")], both[(line_id, "tax")]) for line_id, _ in nets}
    else:
        net_shares = split_pro_rata(amount_minor - tax_part, nets)
        tax_shares = split_pro_rata(tax_part, taxes)
        shares = {line_id: (net_shares[line_id], tax_shares[line_id]) for line_id, _ in nets}
    lines = InvoiceLine.objects.in_bulk(list(shares))
    now = timezone.now()
    rows = []
    for line_id, (net, tax) in shares.items():
        if net or tax:
            line = lines[line_id]
            line.paid_net_minor -= net
            line.paid_tax_minor -= tax
            line.save(update_fields=["paid_net_minor", "paid_tax_minor"])
            rows.append(PaymentAllocation(payment=payment, line=line, net_minor=-net,
                                          tax_minor=-tax, refund=refund, created_at=now))
    PaymentAllocation.objects.bulk_create(rows)
    return shares


def take_back_from_packages(
    shares: dict[int, tuple[int, int]], refs: Mapping[str, object], *, sign: int = -1,
) -> list[Line]:
    """The part of a payment refund taken from package lines leaves their packages (sign −1),
    or comes back to them when the refund fails (sign +1): the ledger lines for it."""
    from kassa.packages.services import pay_in

    package_lines = InvoiceLine.objects.filter(pk__in=list(shares), kind=LineKind.PACKAGE)
    lines: list[Line] = []
    for line in package_lines:
        net, tax = shares[line.pk]
        if net or tax:
            lines += pay_in(line=line, net_minor=sign * net, tax_minor=sign * tax, refs=refs)
    return lines


def credit_split(payment: Payment, invoice: Invoice, amount_minor: int) -> int:
    """The tax part of a credit of `amount_minor`: the invoice's tax proportion, rounded
    half-up, kept within what the payment holds of net and of tax."""
    held = PaymentAllocation.objects.filter(payment=payment).aggregate(
        net=Sum("net_minor"), tax=Sum("tax_minor"))
    held_net, held_tax = int(held["net"] or 0), int(held["tax"] or 0)
    tax = round_half_up_minor(Decimal(amount_minor) * invoice.tax_minor / invoice.total_minor)
    return max(amount_minor - held_net, min(tax, held_tax))


def credit_lines(refund: Refund, shares: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Credit the lines by what the refund took back from them; return the (net, tax) total."""
    lines = InvoiceLine.objects.in_bulk(list(shares))
    rows = []
    for line_id, (net, tax) in shares.items():
        if net or tax:
            line = lines[line_id]
            line.credited_net_minor += net
            line.credited_tax_minor += tax
            line.save(update_fields=["credited_net_minor", "credited_tax_minor"])
            rows.append(RefundCredit(refund=refund, line=line, net_minor=net, tax_minor=tax))
    RefundCredit.objects.bulk_create(rows)
    return sum(n for n, _ in shares.values()), sum(t for _, t in shares.values())


def fits_back(refund: Refund, invoice: Invoice) -> bool:
    """Whether a failing refund's money can go back onto the lines it was taken from.

    Always, for a refund that decreased the balance owed (its credit comes off as its money goes
    back, so what each line owes is unchanged) and for a pending one (what it re-opened is not
    payable meanwhile). Not when the balance a succeeded refund re-opened has been paid again
    since: the lines would be paid twice.
    """
    if refund.package_id or refund.decrease_balance_owed:
        return True
    if invoice.balance_due_minor < refund.total_minor:
        return False
    taken = (PaymentAllocation.objects.filter(refund=refund).values("line_id")
             .annotate(net=Sum("net_minor"), tax=Sum("tax_minor")))
    lines = InvoiceLine.objects.in_bulk([row["line_id"] for row in taken])
    return all(lines[row["line_id"]].owed_net_minor >= -(row["net"] or 0)
               and lines[row["line_id"]].owed_tax_minor >= -(row["tax"] or 0) for row in taken)


def put_back(refund: Refund) -> None:
    """Undo what the refund did to the lines (it failed): append the opposite rows."""
    now = timezone.now()
    paid: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in PaymentAllocation.objects.filter(refund=refund):
        paid[row.line_id][0] -= row.net_minor
        paid[row.line_id][1] -= row.tax_minor
    credited: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for credit in RefundCredit.objects.filter(refund=refund):
        credited[credit.line_id][0] -= credit.net_minor
        credited[credit.line_id][1] -= credit.tax_minor
    lines = InvoiceLine.objects.in_bulk(set(paid) | set(credited))
    # Credits first: the line's room for what was paid back comes from removing the credit.
    for line_id, (net, tax) in credited.items():
        if net or tax:
            line = lines[line_id]
            line.credited_net_minor += net
            line.credited_tax_minor += tax
            RefundCredit.objects.create(refund=refund, line=line, net_minor=net, tax_minor=tax)
    for line_id, (net, tax) in paid.items():
        if net or tax:
            line = lines[line_id]
            line.paid_net_minor += net
            line.paid_tax_minor += tax
            assert refund.payment_id is not None, "only a payment refund takes from lines"
            PaymentAllocation.objects.create(payment_id=refund.payment_id, line=line,
                                             net_minor=net, tax_minor=tax, refund=refund,
                                             created_at=now)
    for line in lines.values():
        line.save(update_fields=["paid_net_minor", "paid_tax_minor", "credited_net_minor",
                                 "credited_tax_minor"])
        if line.kind == LineKind.PACKAGE and line.pk in paid:
            # The money comes back into the package; the reversing journal entry that the
            # caller writes restores its liability.
            from kassa.packages.models import Package
            from kassa.packages.services import forfeit_if_closed

            net, tax = paid[line.pk]
            Package.objects.filter(line=line).update(paid_minor=F("paid_minor") + net,
                                                     tax_paid_minor=F("tax_paid_minor") + tax)
            forfeit_if_closed(Package.objects.get(line=line), refund, now)
