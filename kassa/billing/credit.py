"""A customer's credit: money Kassa holds for them on no invoice. The only writer of it.

Every movement is a CreditEntry (signed: + into credit, − out of it), appended here in the
money transaction that posts it to the `customer_credit` account, with the customer on the
posting; the customer's `credit_minor` is derived from their entries (`_refresh`) and nowhere
else. `kassa verify` holds it against the entries and the sub-ledger.

Credit is held in lots (DESIGN.md, "The customer's account"):
- every entry that brings new money in (a deposit, an overpayment, a refund to credit, a failed
  refund kept as credit) is a lot of its own, at the center where it was taken; a lot of card
  money names its online payment (`card_payment`);
- money leaves oldest lot first; card money goes back only to its own card (`Source`);
- money that comes back (a refund out of credit that failed, a refund to credit of a payment
  made from credit) goes back into the lots it left, so card money stays card money.

Each entry's CreditDraw rows say what it moved of which lot. A lot at another center than the
entry's is cleared through `intercenter`: the entry's own center posts the intercenter leg, and
the lot's center posts an entry of the same kind that moves its customer_credit against its
intercenter, so each center's entries balance and intercenter sums to zero over the
organization.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Sum

from kassa.billing import webhook_events
from kassa.billing.models import CreditDraw, CreditEntry, CreditKind, Customer, Payment
from kassa.core.errors import CardRefundMustGoToCard, CreditInsufficient
from kassa.core.money import display
from kassa.ledger.services import Line, post
from kassa.tenancy.models import Center, Organization

IN_KINDS = (CreditKind.DEPOSIT, CreditKind.OVERPAYMENT, CreditKind.REFUND_TO_CREDIT,
            CreditKind.REFUND_FAILED_TO_CREDIT, CreditKind.REFUND_OUT_FAILED)


@dataclass(frozen=True)
class Lot:
    id: int
    center_id: int
    card_payment_id: int | None
    left_minor: int


@dataclass(frozen=True)
class Source:
    """Which lots a movement out of credit may take, oldest first.

    `any`: every lot (paying an invoice, a write-off, an admin's override);
    `offline`: the lots of money not taken by card (a refund out in cash or by check);
    `card`: the lots of that card payment, then those not taken by card (a refund out
    to that payment, online) — never another card's money;
    `own`: the lots of that card payment only (its charge failed after all)."""

    kind: str  # "any" | "offline" | "card" | "own"
    card_payment_id: int | None = None

    def admits(self, lot: Lot) -> bool:
        if self.kind == "any":
            return True
        if self.kind == "offline":
            return lot.card_payment_id is None
        if self.kind == "own":
            return lot.card_payment_id == self.card_payment_id
        return lot.card_payment_id in (None, self.card_payment_id)

    def order(self, lot: Lot) -> tuple[int, int]:
        # A card's own money first, then the oldest.
        own = 0 if self.kind == "card" and lot.card_payment_id == self.card_payment_id else 1
        return (own, lot.id)


ANY = Source("any")
OFFLINE = Source("offline")


def card(payment_id: int) -> Source:
    return Source("card", payment_id)


def own(payment_id: int) -> Source:
    return Source("own", payment_id)


def lots(customer: Customer) -> list[Lot]:
    """The customer's lots that still hold money, oldest first (read under their lock)."""
    rows = (CreditDraw.objects.filter(lot__customer=customer)
            .values("lot_id", "lot__center_id", "lot__card_payment_id")
            .annotate(left=Sum("amount_minor")).order_by("lot_id"))
    return [Lot(r["lot_id"], r["lot__center_id"], r["lot__card_payment_id"], int(r["left"]))
            for r in rows if r["left"]]


def home_center(customer: Customer) -> Center:
    """Where a movement of the customer's credit that belongs to no invoice (a write-off, a
    refund out that names no center) is made: where their oldest credit still held was taken,
    else the organization's first center."""
    held = lots(customer)
    found = (Center.objects.get(pk=held[0].center_id) if held
             else Center.objects.filter(organization_id=customer.organization_id)
             .order_by("pk").first())
    assert found is not None
    return found


def available_minor(customer: Customer, source: Source) -> int:
    return sum(lot.left_minor for lot in lots(customer) if source.admits(lot))


@dataclass
class Moved:
    """A movement of credit written: its entry, and what it moved at each center (signed, +
    into credit), for the ledger."""

    entry: CreditEntry
    by_center: dict[int, int]

    def lines(self, here: Center, **refs: Any) -> list[Line]:
        """The customer_credit and intercenter legs of the entry posted at `here` (the other
        side is the caller's); the legs at other centers are `post_elsewhere`'s."""
        customer_id = self.entry.customer_id
        local = self.by_center.get(here.pk, 0)
        away = sum(m for c, m in self.by_center.items() if c != here.pk)
        out = []
        if local:
            out.append(Line("customer_credit", -local, {**refs, "customer_id": customer_id}))
        if away:
            out.append(Line("intercenter", -away, refs))
        return out

    def post_elsewhere(self, *, organization: Organization, here: Center, kind: str,
                       at: dt.datetime, by: Any, memo: str, **refs: Any) -> None:
        """Each other center's entry: its customer_credit against its intercenter."""
        for center_id, moved in sorted(self.by_center.items()):
            if center_id == here.pk or not moved:
                continue
            post(organization=organization, center=Center.objects.get(pk=center_id),
                 kind=kind, at=at, created_by=by, memo=f"{memo} (credit held here)",
                 lines=[Line("customer_credit", -moved,
                             {**refs, "customer_id": self.entry.customer_id}),
                        Line("intercenter", moved, refs)])


def _money(minor: int, organization: Organization) -> str:
    return display(minor, organization.currency, organization.locale)


def _entry(customer: Customer, *, kind: str, amount_minor: int, center: Center,
           at: dt.datetime, by: Any, note: str, payment: Payment | None, invoice_id: int | None,
           refund_id: int | None, card_payment: Payment | None = None) -> CreditEntry:
    entry = CreditEntry.objects.create(
        organization_id=customer.organization_id, customer=customer, center=center, kind=kind,
        amount_minor=amount_minor, balance_after_minor=customer.credit_minor + amount_minor,
        at=at, by=by, note=note[:500], payment=payment, invoice_id=invoice_id,
        refund_id=refund_id, card_payment=card_payment)
    webhook_events.announce_credit(customer, entry)
    return entry


def take_in(customer: Customer, *, kind: str, amount_minor: int, center: Center,
            at: dt.datetime, by: Any, note: str = "", payment: Payment | None = None,
            invoice_id: int | None = None, refund_id: int | None = None) -> Moved:
    """New money into credit, a lot of its own at `center` (the customer locked). A lot
    from an online payment is card money: it goes back only to that payment."""
    assert amount_minor > 0 and kind in IN_KINDS
    card_payment = payment if payment is not None and payment.online else None
    entry = _entry(customer, kind=kind, amount_minor=amount_minor, center=center, at=at, by=by,
                   note=note, payment=payment, invoice_id=invoice_id, refund_id=refund_id,
                   card_payment=card_payment)
    CreditDraw.objects.create(organization_id=customer.organization_id, entry=entry, lot=entry,
                              amount_minor=amount_minor)
    _refresh(customer)
    return Moved(entry, {center.pk: amount_minor})


def take_out(customer: Customer, *, kind: str, amount_minor: int, center: Center,
             at: dt.datetime, by: Any, source: Source, organization: Organization,
             note: str = "", payment: Payment | None = None, invoice_id: int | None = None,
             refund_id: int | None = None, field: str = "amount") -> Moved:
    """Money out of credit, oldest lot first among those `source` admits (the customer
    locked): refused, naming `field`, when the credit or the part of it that may go this way
    is less than the amount."""
    assert amount_minor > 0
    held = lots(customer)
    total = sum(lot.left_minor for lot in held)
    if amount_minor > total:
        raise CreditInsufficient(
            f"{customer.name} has {_money(total, organization)} of credit; "
            f"{_money(amount_minor, organization)} is more than that", field=field)
    admitted = sorted((lot for lot in held if source.admits(lot)), key=source.order)
    may = sum(lot.left_minor for lot in admitted)
    if amount_minor > may:
        raise CardRefundMustGoToCard(
            f"{_money(total - may, organization)} of this credit came from card payments and "
            f"goes back to its card: at most {_money(may, organization)} can be refunded this "
            "way. Refund the rest online to its payment", field=field)
    draws: list[tuple[Lot, int]] = []
    left = amount_minor
    for lot in admitted:
        if not left:
            break
        take = min(left, lot.left_minor)
        draws.append((lot, take))
        left -= take
    entry = _entry(customer, kind=kind, amount_minor=-amount_minor, center=center, at=at,
                   by=by, note=note, payment=payment, invoice_id=invoice_id,
                   refund_id=refund_id)
    return _drawn(customer, entry, [(lot.id, lot.center_id, -take) for lot, take in draws])


def put_back(customer: Customer, *, of_entries: list[CreditEntry], amount_minor: int,
             kind: str, center: Center, at: dt.datetime, by: Any, note: str = "",
             payment: Payment | None = None, invoice_id: int | None = None,
             refund_id: int | None = None) -> Moved:
    """Money that comes back into the lots `of_entries` took it from, newest draw first,
    up to what they took and did not get back (a failed refund out; a refund to credit of a
    payment made from credit)."""
    assert amount_minor > 0
    taken: dict[int, int] = defaultdict(int)
    centers: dict[int, int] = {}
    for draw in (CreditDraw.objects.filter(entry__in=of_entries)
                 .select_related("lot").order_by("-id")):
        taken[draw.lot_id] -= draw.amount_minor
        centers[draw.lot_id] = draw.lot.center_id
    back_rows: list[tuple[int, int, int]] = []
    left = amount_minor
    for lot_id in sorted(taken, reverse=True):  # the newest lot first
        give = min(left, taken[lot_id])
        if give > 0:
            back_rows.append((lot_id, centers[lot_id], give))
            left -= give
    assert left == 0, f"{amount_minor} cannot go back into lots that gave {amount_minor - left}"
    entry = _entry(customer, kind=kind, amount_minor=amount_minor, center=center, at=at, by=by,
                   note=note, payment=payment, invoice_id=invoice_id, refund_id=refund_id)
    return _drawn(customer, entry, back_rows)


def _drawn(customer: Customer, entry: CreditEntry, rows: list[tuple[int, int, int]]) -> Moved:
    CreditDraw.objects.bulk_create([
        CreditDraw(organization_id=customer.organization_id, entry=entry, lot_id=lot_id,
                   amount_minor=amount) for lot_id, _, amount in rows])
    by_center: dict[int, int] = defaultdict(int)
    for _, center_id, amount in rows:
        by_center[center_id] += amount
    _refresh(customer)
    return Moved(entry, dict(by_center))


def _refresh(customer: Customer) -> None:
    """The customer's credit, derived from their entries: one statement that derives, stores
    and returns it."""
    entries = CreditEntry._meta.db_table  # our own tables' names; every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Customer._meta.db_table} SET credit_minor = ("  # noqa: S608
            f"SELECT COALESCE(SUM(e.amount_minor), 0) FROM {entries} e "
            "WHERE e.customer_id = %s) WHERE id = %s RETURNING credit_minor",
            [customer.pk, customer.pk])
        (customer.credit_minor,) = cursor.fetchone()
    assert customer.credit_minor >= 0, f"customer {customer.pk}: credit below zero"


def entries_of(*, refund_id: int) -> list[CreditEntry]:
    return list(CreditEntry.objects.filter(refund_id=refund_id).order_by("id"))


def entries_of_payment(payment: Payment) -> list[CreditEntry]:
    return list(CreditEntry.objects.filter(payment=payment).order_by("id"))
