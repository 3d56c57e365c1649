"""Reconciliation: the processor's balance lines of a business day, each matched to Kassa's
payment, refund or dispute, and Kassa's online money of that day that the processor does not
list.

A line is `matched` when Kassa has its object with the same signed amount (and currency),
`amount_mismatch` when they differ, `missing_in_kassa` when Kassa has no such money (a refund
made at the processor that did not fit the payment's refundable, a charge never booked or not
given back yet, a dispute or a failed refund Kassa has not heard of, a line of a kind Kassa
does not move). Kassa's online payments, refunds, failed refunds, withdrawn disputes and
reversed ones of the day that the processor does not list — on that day, either side of it, or
whenever, looked up by their reference — are `missing_at_gateway`. A fee is matched when it
belongs to a charge or dispute Kassa knows (Kassa does not book the processor's fees: they are
the merchant's cost, not the customer's money); a payout when it equals the net of the lines
it paid out (or when the processor cannot say what it paid out: a manual payout).

The gateway is asked outside every transaction (its lines may come over the network), once
per reconciliation; Kassa's side is read afterwards by the references the lines name. With an
account that serves the whole installation (Stripe), an organization's report holds the lines
that trace to its own payments; the account's other lines (payouts, what traces to no
payment) are the operator's, named by `kassa verify --gateway` without `--org`
(`reconcile_account`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kassa.billing.models import Payment, PaymentEvent, PaymentStatus
from kassa.core.errors import ValidationFailed
from kassa.core.locks import assert_outside_transaction
from kassa.core.money import format_decimal_string
from kassa.gateways.base import BalanceLine, Gateway, GatewayError, LineType
from kassa.gateways.registry import current_gateway
from kassa.refunds.models import (
    Dispute,
    DisputeStatus,
    Refund,
    RefundStatus,
    RefundType,
)
from kassa.tenancy.models import Organization

MATCHED = "matched"
MISSING_IN_KASSA = "missing_in_kassa"
MISSING_AT_GATEWAY = "missing_at_gateway"
AMOUNT_MISMATCH = "amount_mismatch"
STATUSES = (MATCHED, MISSING_IN_KASSA, MISSING_AT_GATEWAY, AMOUNT_MISMATCH)
EDGE = dt.timedelta(days=1)  # the lines either side of the day, listed with it
# A processor's balance history starts with the Unix epoch; the day either side must exist.
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 2), dt.date(9999, 12, 29)
KNOWN_CATEGORIES = {str(t) for t in LineType}
GIVEN_BACK = "charge_given_back"  # the payment's history entry once its charge went back


@dataclass(frozen=True)
class Kassa:
    """Kassa's side of a line: the object and, where amounts are compared, its signed amount."""

    object: str  # payment | refund | dispute
    id: int
    organization_id: int
    amount_minor: int | None = None
    payment_id: int | None = None  # the payment it belongs to (for the pages' links)


@dataclass(frozen=True)
class Line:
    gateway_id: str | None
    type: LineType
    amount_minor: int
    kassa: Kassa | None
    status: str
    source: str = ""
    currency: str = ""


@dataclass
class Known:
    """Kassa's payments, refunds and disputes the lines name, by gateway reference."""

    payments: dict[str, Payment]
    refunds: dict[str, Refund]
    disputes: dict[str, Dispute]
    given_back: set[int]  # the failed payments whose charge has gone back


def today_of(organization: Organization) -> dt.date:
    return dt.datetime.now(ZoneInfo(organization.timezone)).date()


def day_bounds(organization: Organization, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(organization.timezone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)


def check_day(day: dt.date) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed("date", f"must be a day from {FIRST_DAY.isoformat()} to "
                               f"{LAST_DAY.isoformat()}")


def _known(gateway: Gateway, lines: Iterable[BalanceLine],
           organization: Organization | None) -> Known:
    def scoped(model: Any) -> Any:
        found = model.objects.filter(gateway=gateway.name)
        return found.filter(organization=organization) if organization is not None else found

    lines = list(lines)
    charges = {line.charge for line in lines if line.charge}
    sources = {line.source for line in lines if line.source}
    payments = {p.gateway_reference: p
                for p in scoped(Payment).filter(gateway_reference__in=charges)}
    failed = [p.pk for p in payments.values() if p.status == PaymentStatus.FAILED]
    return Known(
        payments=payments,
        refunds={r.gateway_reference: r
                 for r in scoped(Refund).filter(gateway_reference__in=sources)},
        disputes={d.gateway_reference: d
                  for d in scoped(Dispute).filter(gateway_reference__in=sources)},
        given_back=set(PaymentEvent.objects.filter(
            payment_id__in=failed, kind=GIVEN_BACK).values_list("payment_id", flat=True))
        if failed else set(),
    )


def _booked(payment: Payment | None, known: Known) -> bool:
    """Kassa holds the charge: booked, or failed and given back (both its lines match)."""
    return payment is not None and (payment.status == PaymentStatus.SUCCEEDED
                                    or payment.pk in known.given_back)


def _withdrew(dispute: Dispute | None) -> bool:
    """Kassa booked the funds withdrawn (an inquiry withdraws nothing)."""
    return dispute is not None and dispute.withdraw_entry_id is not None


def _not_to_the_card(refund: Refund) -> bool:
    """Kassa does not hold the refund as gone to the card: it failed, or it was paid another
    way after the gateway would not take it."""
    return refund.status == RefundStatus.FAILED or refund.type == RefundType.OFFLINE


def _of_payment(payment: Payment, amount_minor: int | None = None) -> Kassa:
    return Kassa("payment", payment.pk, payment.organization_id, amount_minor, payment.pk)


def _of_refund(refund: Refund, amount_minor: int) -> Kassa:
    return Kassa("refund", refund.pk, refund.organization_id, amount_minor, refund.payment_id)


def _of_dispute(dispute: Dispute, amount_minor: int | None = None) -> Kassa:
    return Kassa("dispute", dispute.pk, dispute.organization_id, amount_minor,
                 dispute.payment_id)


def _kassa_of(line: BalanceLine, known: Known) -> Kassa | None:
    """Kassa's object for a line (with the amount to compare, where there is one)."""
    payment = known.payments.get(line.charge)
    refund = known.refunds.get(line.source)
    dispute = known.disputes.get(line.source)
    if line.category and line.category not in KNOWN_CATEGORIES:
        return None  # a kind of money Kassa never moves
    if line.type == LineType.CHARGE and payment is not None and _booked(payment, known):
        return _of_payment(payment, payment.amount_minor)
    if line.type == LineType.REFUND:
        if refund is not None:  # what went to the card: its amount and its tax
            return _of_refund(refund, -refund.total_minor)
        if payment is not None and payment.pk in known.given_back:
            return _of_payment(payment, -payment.amount_minor)
    if (line.type == LineType.REFUND_FAILURE and refund is not None
            and _not_to_the_card(refund)):
        return _of_refund(refund, refund.total_minor)
    if line.type == LineType.DISPUTE and _withdrew(dispute):
        assert dispute is not None
        return _of_dispute(dispute, -dispute.amount_minor)
    if (line.type == LineType.DISPUTE_REVERSAL and _withdrew(dispute)
            and dispute is not None and dispute.status == DisputeStatus.WON):
        return _of_dispute(dispute, dispute.amount_minor)
    if line.type == LineType.FEE:  # the status of what it is the fee of
        if line.of == "dispute":
            return _of_dispute(dispute) if _withdrew(dispute) and dispute else None
        if line.of == "charge" and payment is not None and _booked(payment, known):
            return _of_payment(payment)
    return None


def _owner(line: BalanceLine, known: Known) -> int | None:
    """The organization a line traces to, whatever its match: its charge's payment's."""
    for found in (known.refunds.get(line.source), known.disputes.get(line.source),
                  known.payments.get(line.charge)):
        if found is not None:
            return int(found.organization_id)
    return None


def match(line: BalanceLine, known: Known, currency: str = "") -> Line:
    """`currency`: the organization's; a line in another is never matched on its amount."""
    if line.type == LineType.PAYOUT:
        status = MATCHED if line.pays_out_minor in (None, -line.amount_minor) else AMOUNT_MISMATCH
        return Line(line.gateway_id, line.type, line.amount_minor, None, status, line.source,
                    line.currency)
    kassa = _kassa_of(line, known)
    if kassa is None:
        status = MISSING_IN_KASSA
    elif kassa.amount_minor is not None and (
            kassa.amount_minor != line.amount_minor
            or (currency and line.currency and line.currency != currency)):
        status = AMOUNT_MISMATCH
    else:
        status = MATCHED
    return Line(line.gateway_id, line.type, line.amount_minor, kassa, status, line.source,
                line.currency)


def _expected(gateway: Gateway, organization: Organization, start: dt.datetime,
              end: dt.datetime) -> list[tuple[LineType, str, Kassa]]:
    """Kassa's online money of the day, as the lines the processor must have for it."""
    org = {"organization": organization, "gateway": gateway.name}
    day = {"created_at__gte": start, "created_at__lt": end}
    expected: list[tuple[LineType, str, Kassa]] = []
    for p in Payment.objects.filter(**org, **day, online=True, status=PaymentStatus.SUCCEEDED
                                    ).exclude(gateway_reference="").order_by("pk"):
        expected.append((LineType.CHARGE, p.gateway_reference, _of_payment(p, p.amount_minor)))
    for r in Refund.objects.filter(**org, **day).exclude(gateway_reference="").order_by("pk"):
        expected.append((LineType.REFUND, r.gateway_reference, _of_refund(r, -r.total_minor)))
    for r in Refund.objects.filter(**org, status=RefundStatus.FAILED, settled_at__gte=start,
                                   settled_at__lt=end).exclude(gateway_reference="").order_by("pk"):
        expected.append((LineType.REFUND_FAILURE, r.gateway_reference,
                         _of_refund(r, r.total_minor)))
    for d in Dispute.objects.filter(**org, **day, withdraw_entry__isnull=False).order_by("pk"):
        expected.append((LineType.DISPUTE, d.gateway_reference, _of_dispute(d, -d.amount_minor)))
    for d in Dispute.objects.filter(**org, status=DisputeStatus.WON, closed_at__gte=start,
                                    closed_at__lt=end, withdraw_entry__isnull=False
                                    ).order_by("pk"):
        expected.append((LineType.DISPUTE_REVERSAL, d.gateway_reference,
                         _of_dispute(d, d.amount_minor)))
    return expected


def _key(line: BalanceLine) -> tuple[LineType, str]:
    return line.type, line.charge if line.type == LineType.CHARGE else line.source


def _missing_at_gateway(gateway: Gateway, organization: Organization, start: dt.datetime,
                        end: dt.datetime, listed: list[BalanceLine]) -> list[Line]:
    """What Kassa has of the day that the processor lists neither near it nor ever."""
    seen = {_key(line) for line in listed}
    unseen = [(type, reference, kassa) for type, reference, kassa
              in _expected(gateway, organization, start, end) if (type, reference) not in seen]
    if unseen:  # on another day, perhaps (a charge decided days later, a retried refund)
        seen |= {_key(line) for line in gateway.balance_lines_of(
            organization_id=organization.pk,
            references=sorted({reference for _, reference, _ in unseen}))}
    return [Line(None, type, kassa.amount_minor or 0, kassa, MISSING_AT_GATEWAY, reference)
            for type, reference, kassa in unseen if (type, reference) not in seen]


def listing(gateway: Gateway, organization: Organization | None, start: dt.datetime,
            end: dt.datetime) -> list[BalanceLine]:
    """One call for the lines of a span (every organization's, for an account-wide gateway:
    a run over many organizations lists once and hands the lines to each)."""
    return gateway.balance_lines(organization_id=organization.pk if organization else 0,
                                 start=start, end=end,
                                 with_payouts=organization is None or not gateway.account_wide)


def reconcile(organization: Organization, day: dt.date, gateway: Gateway | None = None,
              listed: list[BalanceLine] | None = None) -> list[Line]:
    """Every line of the organization's business day, matched or not. `listed`: the lines of
    a span holding the day and a day either side, listed already."""
    assert_outside_transaction("reconciliation (it asks the gateway)")
    check_day(day)
    gateway = gateway or current_gateway()
    start, end = day_bounds(organization, day)
    if listed is None:
        listed = listing(gateway, organization, start - EDGE, end + EDGE)
    else:
        listed = [line for line in listed if start - EDGE <= line.created < end + EDGE]
    known = _known(gateway, listed, None if gateway.account_wide else organization)
    if gateway.account_wide:  # only what traces to this organization's own payments
        listed = [line for line in listed if _owner(line, known) == organization.pk]
    matched = [match(line, known, organization.currency) for line in listed
               if start <= line.created < end]
    return matched + _missing_at_gateway(gateway, organization, start, end, listed)


def reconcile_account(day: dt.date, gateway: Gateway | None = None,
                      listed: list[BalanceLine] | None = None) -> list[Line]:
    """An installation-wide account's own lines of a (UTC) day: payouts, and what traces to no
    organization's payment. Nothing for the sandbox, whose accounts are the organizations'."""
    assert_outside_transaction("reconciliation (it asks the gateway)")
    check_day(day)
    gateway = gateway or current_gateway()
    if not gateway.account_wide:
        return []
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    if listed is None:
        listed = listing(gateway, None, start, end)
    listed = [line for line in listed if start <= line.created < end]
    known = _known(gateway, listed, None)
    return [match(line, known) for line in listed if _owner(line, known) is None]


def exceptions(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line.status != MATCHED]


@dataclass(frozen=True)
class Recent:
    """What the attention page shows: the lines not matched of the last business days, or why
    the gateway could not be asked."""

    lines: list[tuple[dt.date, Line]]
    unavailable: str = ""


def recent_exceptions(organization: Organization, days: int = 2) -> Recent:
    """Today's and yesterday's lines not matched, from one listing of the gateway as the page
    is read (nothing is stored, so what is mended leaves the page at once)."""
    gateway = current_gateway()
    today = today_of(organization)
    first = today - dt.timedelta(days=days - 1)
    found: list[tuple[dt.date, Line]] = []
    try:
        listed = listing(gateway, organization, day_bounds(organization, first)[0] - EDGE,
                         day_bounds(organization, today)[1] + EDGE)
        for back in range(days):
            day = today - dt.timedelta(days=back)
            found += [(day, line) for line in exceptions(
                reconcile(organization, day, gateway, listed))]
    except GatewayError as exc:
        return Recent(found, unavailable=str(exc))
    return Recent(found)


def _money(minor: int, currency: str) -> str:
    return format_decimal_string(minor, currency)


def line_object(line: Line, currency: str) -> dict[str, Any]:
    kassa = None if line.kassa is None else {
        "object": line.kassa.object, "id": str(line.kassa.id),
        "amount": (None if line.kassa.amount_minor is None
                   else _money(line.kassa.amount_minor, currency))}
    return {"gateway_id": line.gateway_id, "type": str(line.type),
            "amount": _money(line.amount_minor, currency), "kassa": kassa,
            "status": line.status, "source": line.source}


def figures(organization: Organization, day: dt.date,
            gateway: Gateway | None = None) -> dict[str, Any]:
    """The lines of a business day and totals of the processor's side by type (integer minor
    units): what the page shows and the API answers as decimal strings."""
    gateway = gateway or current_gateway()
    lines = reconcile(organization, day, gateway)
    listed = [line for line in lines if line.gateway_id is not None]
    by_type = {str(t): sum(line.amount_minor for line in listed if line.type == t)
               for t in LineType}
    statuses = Counter(line.status for line in lines)
    return {"date": day.isoformat(), "gateway": gateway.name, "lines": lines,
            "by_type": by_type, "net": sum(by_type.values()),
            "count": {status: statuses.get(status, 0) for status in STATUSES}}


def report(organization: Organization, day: dt.date,
           gateway: Gateway | None = None) -> dict[str, Any]:
    """`GET /reports/reconciliation`."""
    found = figures(organization, day, gateway)
    currency = organization.currency
    return {
        "date": found["date"], "gateway": found["gateway"],
        "lines": [line_object(line, currency) for line in found["lines"]],
        "totals": {
            "by_type": {t: _money(v, currency) for t, v in found["by_type"].items()},
            "net": _money(found["net"], currency), "count": found["count"],
        },
    }


def describe(line: Line, currency: str) -> str:
    """One line not matched, as `kassa verify --gateway` names it."""
    what = {MISSING_IN_KASSA: "the gateway has it, Kassa has not",
            MISSING_AT_GATEWAY: "Kassa has it, the gateway has not",
            AMOUNT_MISMATCH: "the amounts differ"}.get(line.status, line.status)
    kassa = "" if line.kassa is None else f" (Kassa's {line.kassa.object} {line.kassa.id}" + (
        f", {_money(line.kassa.amount_minor, currency)})" if line.kassa.amount_minor is not None
        else ")")
    return (f"{line.type} {line.gateway_id or line.source} {_money(line.amount_minor, currency)}"
            f"{kassa}: {line.status} — {what}")
