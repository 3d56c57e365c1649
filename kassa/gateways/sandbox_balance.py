"""The sandbox merchant's balance, line by line, as a processor keeps it.

Every sandbox action that moves money at the processor writes its line here in the same
transaction: a charge (+), a refund made by Kassa or in the "dashboard" (−), a refund that
failed (+ back), a dispute (− the disputed amount, − the processor's dispute fee), a won
dispute (+ the amount back; the fee is kept, as processors do), a charge given back (−), and a
payout (− what the balance held, `kassa sandbox payout`). Reconciliation reads these lines
through `SandboxGateway.balance_lines`, as it reads Stripe's balance transactions.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import transaction
from django.db.models import Sum

from kassa.core.money import exponent
from kassa.gateways.base import BalanceLine, LineType
from kassa.gateways.models import SandboxBalanceTransaction, SandboxCharge, SandboxRefund

# What the sandbox processor charges for a dispute: 15 of the charge's currency ($15.00, as
# card processors commonly do).
DISPUTE_FEE = 15
# What kind of object each line's source is.
SOURCE_OF = {LineType.CHARGE: "charge", LineType.REFUND: "refund",
             LineType.REFUND_FAILURE: "refund", LineType.DISPUTE: "dispute",
             LineType.DISPUTE_REVERSAL: "dispute", LineType.FEE: "dispute",
             LineType.PAYOUT: "payout"}


def dispute_fee_minor(currency: str) -> int:
    return DISPUTE_FEE * 10 ** exponent(currency)


def _reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def record(*, organization_id: int, type: LineType, amount_minor: int, currency: str,
           source: str, charge_reference: str) -> SandboxBalanceTransaction:
    return SandboxBalanceTransaction.objects.create(
        organization_id=organization_id, reference=_reference("txn"), type=type,
        amount_minor=amount_minor, currency=currency, source=source,
        charge_reference=charge_reference)


def charged(charge: SandboxCharge) -> None:
    record(organization_id=charge.organization_id, type=LineType.CHARGE,
           amount_minor=charge.amount_minor, currency=charge.currency, source=charge.reference,
           charge_reference=charge.reference)


def refunded(refund: SandboxRefund) -> None:
    """A refund leaves the balance when it is made (pending or not), as at a processor."""
    record(organization_id=refund.organization_id, type=LineType.REFUND,
           amount_minor=-refund.amount_minor, currency=refund.charge.currency,
           source=refund.reference, charge_reference=refund.charge.reference)


def payout(organization_id: int) -> SandboxBalanceTransaction | None:
    """Pay out what the balance holds: one payout line of minus the net of every line not paid
    out yet, each of which then names it. Nothing when the balance holds nothing (a negative
    balance waits for the next charges, as a processor's would)."""
    with transaction.atomic():
        unpaid = SandboxBalanceTransaction.objects.select_for_update().filter(
            organization_id=organization_id, payout_reference="").exclude(type=LineType.PAYOUT)
        rows = list(unpaid.order_by("pk").values_list("pk", "amount_minor", "currency"))
        net = sum(amount for _, amount, _ in rows)
        if not rows or net <= 0:
            return None
        reference = _reference("po")
        line = record(organization_id=organization_id, type=LineType.PAYOUT, amount_minor=-net,
                      currency=rows[0][2], source=reference, charge_reference="")
        SandboxBalanceTransaction.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
            payout_reference=reference)
        SandboxBalanceTransaction.objects.filter(pk=line.pk).update(payout_reference=reference)
    return line


def balance_minor(organization_id: int) -> int:
    total = SandboxBalanceTransaction.objects.filter(
        organization_id=organization_id).aggregate(total=Sum("amount_minor"))["total"]
    return int(total or 0)


def lines(*, organization_id: int, start: dt.datetime, end: dt.datetime) -> list[BalanceLine]:
    return _as_lines(organization_id, SandboxBalanceTransaction.objects.filter(
        organization_id=organization_id, created_at__gte=start, created_at__lt=end))


def lines_of(*, organization_id: int, references: list[str]) -> list[BalanceLine]:
    return _as_lines(organization_id, SandboxBalanceTransaction.objects.filter(
        organization_id=organization_id, source__in=references))


def _as_lines(organization_id: int, rows: Any) -> list[BalanceLine]:
    found = list(rows.order_by("created_at", "pk"))
    payouts = [line.source for line in found if line.type == LineType.PAYOUT]
    paid_out = dict(SandboxBalanceTransaction.objects.filter(
        organization_id=organization_id, payout_reference__in=payouts,
    ).exclude(type=LineType.PAYOUT).values("payout_reference").annotate(
        net=Sum("amount_minor")).values_list("payout_reference", "net")) if payouts else {}
    return [BalanceLine(gateway_id=line.reference, type=LineType(line.type),
                        amount_minor=line.amount_minor, currency=line.currency,
                        source=line.source, charge=line.charge_reference,
                        created=line.created_at,
                        pays_out_minor=int(paid_out.get(line.source, 0))
                        if line.type == LineType.PAYOUT else 0,
                        of=SOURCE_OF[LineType(line.type)], category=line.type)
            for line in found]
