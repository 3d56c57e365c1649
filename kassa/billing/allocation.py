"""Invoice lines' figures: the only code that writes them.

Money reaches a line or leaves it only through the rows this module appends:
PaymentAllocation (a payment's share of a line, net and tax apart; negative when a refund of the
payment takes it back) and LineCredit (the sale reduced: a refund that decreased the balance
owed, a package refund — which also gives the paid money back — or a closed package's unpaid
remainder). After appending, the caller calls `refresh`, which derives every figure of the
invoice's lines and of the invoice itself (paid, credits, refunded, balance due, status) from
those rows, in one place, under the invoice's lock that the caller holds. Nothing else writes
them, and `kassa verify` holds each against the same rows and the ledger.

A payment is allocated to the lines pro rata to what each still owes, net and tax apart: each
line contributes two buckets (its net owed, its tax owed), and every bucket gets the same
fraction of what it owes. The rule for the cents that do not divide:

    each bucket first gets floor(amount × owed / total owed); the cents left over (fewer than
    the number of buckets) go one at a time to the buckets that owe the most, ties to the
    earlier line and to net before tax, never past what a bucket owes.

The result is exact (its sum is the amount), deterministic and never pays a bucket more than it
owes. A refund of a payment is the same split taken back out of what the payment allocated.
With *decrease balance owed* the refund also credits the invoice by the same amount, split
between net and tax in the invoice's proportion and taken from the lines exactly where the
refund took the payment back, so that a fully paid line is never credited past what it owed.
Because every change is a row, a failed refund puts back exactly what it took (`put_back`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from kassa.billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineCredit,
    Payment,
    PaymentAllocation,
)
from kassa.core import batch, rows
from kassa.core.money import round_half_up_minor

Shares = dict[int, tuple[int, int]]  # invoice line id → (net, tax)
Weights = list[tuple[tuple[int, str], int]]  # ((line id, "net" | "tax"), what it owes)

def split_pro_rata(amount: int, weights: Sequence[tuple[Hashable, int]]) -> dict[Hashable, int]:
    """Split `amount` minor units over `weights` (key, capacity ≥ 0) in proportion to capacity.

    `amount` may not exceed the total capacity. Keys keep their order for tie-breaking.
    """
    total = sum(w for _, w in weights)
    assert amount >= 0 and all(w >= 0 for _, w in weights)
    assert amount <= total, f"cannot split {amount} over a capacity of {total}"
    if amount == 0:
        return {key: 0 for key, _ in weights}
    shares = {key: amount * w // total for key, w in weights}
    left = amount - sum(shares.values())
    # Largest owed first; Python's sort is stable, so ties keep the given order.
    order = sorted(range(len(weights)), key=lambda i: -weights[i][1])
    while left:
        for i in order:
            key, w = weights[i]
            if left and shares[key] < w:
                shares[key] += 1
                left -= 1
    assert sum(shares.values()) == amount
    return shares


# --- money in -------------------------------------------------------------------------------

def owed_by_bucket(invoice: Invoice, lines: Iterable[InvoiceLine]) -> Weights:
    """What each line still owes, net and tax apart, that a new payment may cover.

    What a pending online refund re-opened is left out: that money is on its way back to the
    customer, and should the refund fail it was never owed again. (Were it payable, a failed
    refund would leave the invoice paid twice.)
    """
    reopened = {
        row["line_id"]: (-(row["net"] or 0), -(row["tax"] or 0))
        for row in PaymentAllocation.objects.filter(
            line__invoice=invoice, refund__status="pending",
            refund__decrease_balance_owed=False,
        ).values("line_id").annotate(net=Sum("net_minor"), tax=Sum("tax_minor"))
    }
    weights: Weights = []
    for line in lines:
        net, tax = reopened.get(line.pk, (0, 0))
        weights.append(((line.pk, "net"), line.owed_net_minor - net))
        weights.append(((line.pk, "tax"), line.owed_tax_minor - tax))
    return weights


def payable_minor(weights: Weights) -> int:
    return sum(w for _, w in weights)


def plan_payment(amount_minor: int, weights: Weights) -> Shares:
    """How a payment of `amount_minor` splits over the lines (nothing written)."""
    both = split_pro_rata(amount_minor, weights)
    line_ids = dict.fromkeys(line_id for (line_id, _), _ in weights)
    return {line_id: (both[(line_id, "net")], both[(line_id, "tax")]) for line_id in line_ids}


def allocate(*, payment: Payment, shares: Shares, now: dt.datetime) -> None:
    """Append the payment's share of each line."""
    rows.insert([
        PaymentAllocation(organization_id=payment.organization_id, payment=payment,
                          line_id=line_id, net_minor=net, tax_minor=tax, created_at=now)
        for line_id, (net, tax) in shares.items() if net or tax
    ], returning=False)


# --- money taken back by a refund of a payment ----------------------------------------------

@dataclass(frozen=True)
class Held:
    """What a payment holds on each line now (its allocations less what was taken back)."""

    shares: Shares
    kinds: dict[int, str]  # line id → its kind, to know which lines are packages'

    @property
    def net(self) -> int:
        return sum(n for n, _ in self.shares.values())

    @property
    def tax(self) -> int:
        return sum(t for _, t in self.shares.values())


_HELD_BY = (f"SELECT a.line_id, l.kind, SUM(a.net_minor), SUM(a.tax_minor) "  # noqa: S608
            f"FROM {PaymentAllocation._meta.db_table} a "
            f"JOIN {InvoiceLine._meta.db_table} l ON l.id = a.line_id "
            "WHERE a.payment_id = %s GROUP BY a.line_id, l.kind ORDER BY a.line_id")


def held_by(payment: Payment) -> Held:
    """What the payment holds of each line it paid (its allocations summed per line, refunds
    and returns taken off), with the lines' kinds; read on every refund of it, so written out
    (kassa.core.rows says why)."""
    # By the payment alone: with its organization too, PostgreSQL's generic plan for the
    # prepared statement ANDs in the organization's whole index (measured: one hot payment's
    # refunds 124 → 110 req/s).
    found = batch.run(_HELD_BY, [payment.pk],
                      reads=(PaymentAllocation._meta.db_table, InvoiceLine._meta.db_table))
    return Held({line_id: (int(net or 0), int(tax or 0)) for line_id, _, net, tax in found},
                {line_id: kind for line_id, kind, _, _ in found})


def credit_split(held: Held, invoice: Invoice, amount_minor: int) -> int:
    """The tax part of a credit of `amount_minor`: the invoice's tax proportion, rounded
    half-up, kept within what the payment holds of net and of tax."""
    tax = round_half_up_minor(Decimal(amount_minor) * invoice.tax_minor / invoice.total_minor)
    return max(amount_minor - held.net, min(tax, held.tax))


def plan_take_back(held: Held, amount_minor: int, *, tax_part: int | None = None) -> Shares:
    """How much of `amount_minor` comes back out of each line the payment paid, pro rata
    (nothing written).

    With `tax_part` the net and tax parts are fixed first and each is spread over the lines
    apart, so that a credit of the same split fits exactly into what was taken back.
    """
    nets = [(line_id, net) for line_id, (net, _) in held.shares.items()]
    taxes = [(line_id, tax) for line_id, (_, tax) in held.shares.items()]
    if tax_part is None:
        buckets = [((line_id, "net"), w) for line_id, w in nets]
        buckets += [((line_id, "tax"), w) for line_id, w in taxes]
        both = split_pro_rata(amount_minor, buckets)
        return {line_id: (both[(line_id, "net")], both[(line_id, "tax")]) for line_id, _ in nets}
    net_shares = split_pro_rata(amount_minor - tax_part, nets)
    tax_shares = split_pro_rata(tax_part, taxes)
    return {line_id: (net_shares[line_id], tax_shares[line_id]) for line_id, _ in nets}


def take_back(*, payment: Payment, shares: Shares, now: dt.datetime, refund_id: int | None = None,
              payment_return_id: int | None = None, dispute_id: int | None = None) -> None:
    """Append what a refund of the payment takes back from each line (negative rows); or what
    a returned payment or a re-billed lost dispute takes back: not refunded, never paid after
    all (`refresh` counts rows without a refund against `paid`)."""
    assert [refund_id, payment_return_id, dispute_id].count(None) == 2
    rows.insert([
        PaymentAllocation(organization_id=payment.organization_id, payment=payment,
                          line_id=line_id, net_minor=-net, tax_minor=-tax, refund_id=refund_id,
                          payment_return_id=payment_return_id, dispute_id=dispute_id,
                          created_at=now)
        for line_id, (net, tax) in shares.items() if net or tax
    ], returning=False)


# --- credits ----------------------------------------------------------------------------------

def credit(*, organization_id: int, shares: Shares, refund_id: int | None,
           gives_back: bool = False) -> None:
    """Take `shares` off the lines' sales; `gives_back` when the paid money goes back with it
    (a package refund). `refund_id` None for a closed package's unpaid remainder."""
    rows.insert([
        LineCredit(organization_id=organization_id, line_id=line_id, refund_id=refund_id,
                   net_minor=net, tax_minor=tax, gives_back=gives_back)
        for line_id, (net, tax) in shares.items() if net or tax
    ], returning=False)


# --- a failed refund --------------------------------------------------------------------------

def fits_back(invoice: Invoice, *, refund_id: int, total_minor: int) -> bool:
    """Whether the money a succeeded refund of a payment took from the lines can go back onto
    them: not when the balance it re-opened has been paid again since (the lines would be
    paid twice). The caller knows the refunds for which it always fits."""
    if invoice.balance_due_minor < total_minor:
        return False
    taken = (PaymentAllocation.objects.filter(refund_id=refund_id).values("line_id")
             .annotate(net=Sum("net_minor"), tax=Sum("tax_minor")))
    lines = InvoiceLine.objects.in_bulk([row["line_id"] for row in taken])
    return all(lines[row["line_id"]].owed_net_minor >= -(row["net"] or 0)
               and lines[row["line_id"]].owed_tax_minor >= -(row["tax"] or 0) for row in taken)


def put_back(*, organization_id: int, refund_id: int, now: dt.datetime) -> Shares:
    """Undo what a refund did to the lines (it failed): append the opposite of its rows.
    Returns what came back onto each line's paid money (a payment refund's take-back)."""
    paid: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    payment_of: dict[int, int] = {}
    for row in PaymentAllocation.objects.filter(refund_id=refund_id):
        paid[row.line_id][0] -= row.net_minor
        paid[row.line_id][1] -= row.tax_minor
        payment_of[row.line_id] = row.payment_id
    credited: dict[tuple[int, bool], list[int]] = defaultdict(lambda: [0, 0])
    for line_credit in LineCredit.objects.filter(refund_id=refund_id):
        key = (line_credit.line_id, line_credit.gives_back)
        credited[key][0] -= line_credit.net_minor
        credited[key][1] -= line_credit.tax_minor
    rows.insert([
        LineCredit(organization_id=organization_id, line_id=line_id, refund_id=refund_id,
                   net_minor=net, tax_minor=tax, gives_back=gives_back)
        for (line_id, gives_back), (net, tax) in credited.items() if net or tax
    ], returning=False)
    rows.insert([
        PaymentAllocation(organization_id=organization_id, payment_id=payment_of[line_id],
                          line_id=line_id, net_minor=net, tax_minor=tax, refund_id=refund_id,
                          created_at=now)
        for line_id, (net, tax) in paid.items() if net or tax
    ], returning=False)
    return {line_id: (net, tax) for line_id, (net, tax) in paid.items() if net or tax}


# --- the figures, derived ---------------------------------------------------------------------

def _derive_sql() -> str:
    """One statement that derives every line of an invoice from its rows and stores it: what
    its payments' allocations add up to (refunds' negative rows included) and its credits
    (those that give money back are its refunded figures), returning the lines with what
    refunds took back of each. Written out, not built by the ORM: it runs in every money
    transaction, and composing it cost more CPU than the rest of a refund (issue 17). Plain
    SQL that SQLite and PostgreSQL both run (row-value SET, UPDATE … RETURNING)."""
    lines = _quote(InvoiceLine._meta.db_table)
    allocations = PaymentAllocation._meta.db_table
    credits = LineCredit._meta.db_table
    columns, _ = rows.reader(InvoiceLine, lines)
    return (
        f"UPDATE {lines} SET "  # noqa: S608
        "(paid_net_minor, paid_tax_minor) = (SELECT COALESCE(SUM(a.net_minor), 0), "
        f"COALESCE(SUM(a.tax_minor), 0) FROM {allocations} a WHERE a.line_id = {lines}.id), "
        "(credited_net_minor, credited_tax_minor, refunded_net_minor, refunded_tax_minor) = "
        "(SELECT COALESCE(SUM(c.net_minor), 0), COALESCE(SUM(c.tax_minor), 0), "
        "COALESCE(SUM(CASE WHEN c.gives_back THEN c.net_minor ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN c.gives_back THEN c.tax_minor ELSE 0 END), 0) "
        f"FROM {credits} c WHERE c.line_id = {lines}.id) "
        f"WHERE invoice_id = %s RETURNING {columns}, "
        "(SELECT COALESCE(SUM(a.net_minor + a.tax_minor), 0) "
        f"FROM {allocations} a WHERE a.line_id = {lines}.id AND a.refund_id IS NOT NULL)"
    )


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


_DERIVED: dict[str, str] = {}
_DERIVED_READS = frozenset({InvoiceLine._meta.db_table, PaymentAllocation._meta.db_table,
                            LineCredit._meta.db_table})

_INVOICE_SQL = (f"UPDATE {Invoice._meta.db_table} SET credits_minor = %s, "  # noqa: S608
                "paid_minor = %s, refunded_minor = %s, balance_due_minor = %s, status = %s "
                "WHERE id = %s")


def refresh(invoice: Invoice) -> Mapping[int, InvoiceLine]:
    """Derive the figures of the invoice's lines and of the invoice from their rows and store
    them: two statements (the lines, then the invoice). Returns the lines, fresh, by id."""
    sql = _DERIVED.get(connection.vendor)
    if sql is None:
        sql = _DERIVED[connection.vendor] = _derive_sql()
    _, build = rows.reader(InvoiceLine, _quote(InvoiceLine._meta.db_table))
    found = batch.run(sql, [invoice.pk], reads=_DERIVED_READS, writes=InvoiceLine._meta.db_table,
                      changes=True)
    lines = []
    taken_back = 0
    for row in found:
        lines.append(build(row))
        taken_back += int(row[-1])
    lines.sort(key=lambda line: (line.position, line.pk))
    paid_on_lines = sum(line.paid_net_minor + line.paid_tax_minor for line in lines)
    # A payment's allocations add up to its amount, so the payments are what the lines were
    # paid before refunds took any back; the refunded money is what refunds took back of it
    # plus what package refunds gave back.
    invoice.paid_minor = paid_on_lines - taken_back
    invoice.refunded_minor = (-taken_back
                              + sum(line.refunded_net_minor + line.refunded_tax_minor
                                    for line in lines))
    invoice.credits_minor = sum(line.credited_net_minor + line.credited_tax_minor
                                for line in lines)
    invoice.balance_due_minor = (invoice.total_minor - invoice.credits_minor
                                 - invoice.paid_minor + invoice.refunded_minor)
    assert invoice.balance_due_minor >= 0, f"invoice {invoice.pk} balance due below zero"
    assert invoice.balance_due_minor == sum(line.owed_net_minor + line.owed_tax_minor
                                            for line in lines)
    invoice.status = InvoiceStatus.OPEN if invoice.balance_due_minor > 0 else InvoiceStatus.CLOSED
    batch.hold(_INVOICE_SQL, [invoice.credits_minor, invoice.paid_minor, invoice.refunded_minor,
                              invoice.balance_due_minor, str(invoice.status), invoice.pk],
               writes=Invoice._meta.db_table, changes=True)
    return {line.pk: line for line in lines}
