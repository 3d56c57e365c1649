"""Reconciliation: the processor's balance lines of a business day, each matched to Kassa's
payment, refund or dispute, and Kassa's online money of that day that the processor does not
list.

A line is `matched` when Kassa has its object with the same signed amount, `amount_mismatch`
when the amounts differ, `missing_in_kassa` when Kassa has no such money (a refund made at the
processor that did not fit the payment's refundable, a charge Kassa never booked, a refund that
failed at the processor while Kassa holds it as made). Kassa's online payments, refunds and
disputes of the day that the processor does not list (looked for a day either side, so that
midnight does not part the two) are `missing_at_gateway`. A fee is matched when it belongs to a
payment or dispute Kassa knows (Kassa does not book the processor's fees: they are the
merchant's cost, not the customer's money); a payout when it equals the net of the lines it
paid out.

The gateway is asked outside every transaction (its lines may come over the network); Kassa's
side is read afterwards by the references the lines name. With an account that serves the
whole installation (Stripe), an organization's report holds the lines that trace to its own
payments; the account's other lines (payouts, what traces to no payment) are the operator's,
named by `kassa verify --gateway` without `--org` (`account_report`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kassa.billing.models import ChargeState, Payment, PaymentStatus
from kassa.core.errors import ValidationFailed
from kassa.core.locks import assert_outside_transaction
from kassa.core.money import format_decimal_string
from kassa.gateways.base import BalanceLine, Gateway, LineType
from kassa.gateways.registry import current_gateway
from kassa.refunds.models import Dispute, DisputeStatus, Refund, RefundStatus
from kassa.tenancy.models import Organization

MATCHED = "matched"
MISSING_IN_KASSA = "missing_in_kassa"
MISSING_AT_GATEWAY = "missing_at_gateway"
AMOUNT_MISMATCH = "amount_mismatch"
STATUSES = (MATCHED, MISSING_IN_KASSA, MISSING_AT_GATEWAY, AMOUNT_MISMATCH)
EDGE = dt.timedelta(days=1)  # how far either side of the day Kassa's money is looked for
# A processor's balance history starts with the Unix epoch; the day either side must exist.
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 2), dt.date(9999, 12, 29)


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


def today_of(organization: Organization) -> dt.date:
    return dt.datetime.now(ZoneInfo(organization.timezone)).date()


def day_bounds(organization: Organization, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(organization.timezone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)


def _known(gateway: Gateway, lines: list[BalanceLine],
           organization: Organization | None) -> Known:
    def scoped(model: Any) -> Any:
        found = model.objects.filter(gateway=gateway.name)
        return found.filter(organization=organization) if organization is not None else found

    charges = {line.charge for line in lines if line.charge}
    sources = {line.source for line in lines if line.source}
    return Known(
        payments={p.gateway_reference: p
                  for p in scoped(Payment).filter(gateway_reference__in=charges)},
        refunds={r.gateway_reference: r
                 for r in scoped(Refund).filter(gateway_reference__in=sources)},
        disputes={d.gateway_reference: d
                  for d in scoped(Dispute).filter(gateway_reference__in=sources)},
    )


def _given_back(payment: Payment) -> bool:
    """A charge Kassa could not book and gave back (the payment failed after its charge). One
    still to give back is money at the processor that Kassa's books do not hold: not matched
    until it has gone back."""
    return payment.status == PaymentStatus.FAILED and payment.charge_state == ChargeState.NONE


def _kassa_of(line: BalanceLine, known: Known) -> tuple[Kassa | None, bool]:
    """Kassa's object for a line, and whether its amount is compared with the line's."""
    payment = known.payments.get(line.charge)
    refund = known.refunds.get(line.source)
    dispute = known.disputes.get(line.source)
    if line.type == LineType.CHARGE and payment is not None and (
            payment.status == PaymentStatus.SUCCEEDED or _given_back(payment)):
        return Kassa("payment", payment.pk, payment.organization_id, payment.amount_minor,
                     payment.pk), True
    if line.type == LineType.REFUND:
        if refund is not None:
            return Kassa("refund", refund.pk, refund.organization_id, -refund.amount_minor,
                         refund.payment_id), True
        if payment is not None and _given_back(payment):
            return Kassa("payment", payment.pk, payment.organization_id,
                         -payment.amount_minor, payment.pk), True
    if (line.type == LineType.REFUND_FAILURE and refund is not None
            and refund.status == RefundStatus.FAILED):
        return Kassa("refund", refund.pk, refund.organization_id, refund.amount_minor,
                     refund.payment_id), True
    if line.type == LineType.DISPUTE and dispute is not None:
        return Kassa("dispute", dispute.pk, dispute.organization_id, -dispute.amount_minor,
                     dispute.payment_id), True
    if (line.type == LineType.DISPUTE_REVERSAL and dispute is not None
            and dispute.status == DisputeStatus.WON):
        return Kassa("dispute", dispute.pk, dispute.organization_id, dispute.amount_minor,
                     dispute.payment_id), True
    if line.type == LineType.FEE:
        if dispute is not None:
            return Kassa("dispute", dispute.pk, dispute.organization_id,
                         payment_id=dispute.payment_id), False
        if payment is not None:
            return Kassa("payment", payment.pk, payment.organization_id,
                         payment_id=payment.pk), False
    return None, False


def _owner(line: BalanceLine, known: Known) -> int | None:
    """The organization a line traces to, whatever its match: its charge's payment's."""
    for found in (known.refunds.get(line.source), known.disputes.get(line.source),
                  known.payments.get(line.charge)):
        if found is not None:
            return int(found.organization_id)
    return None


def match(line: BalanceLine, known: Known) -> Line:
    if line.type == LineType.PAYOUT:
        status = MATCHED if line.amount_minor == -line.pays_out_minor else AMOUNT_MISMATCH
        return Line(line.gateway_id, line.type, line.amount_minor, None, status, line.source,
                    line.currency)
    kassa, compared = _kassa_of(line, known)
    if kassa is None:
        status = MISSING_IN_KASSA
    elif compared and kassa.amount_minor != line.amount_minor:
        status = AMOUNT_MISMATCH
    else:
        status = MATCHED
    return Line(line.gateway_id, line.type, line.amount_minor, kassa, status, line.source,
                line.currency)


def _missing_at_gateway(gateway: Gateway, organization: Organization, start: dt.datetime,
                        end: dt.datetime, listed: list[BalanceLine]) -> list[Line]:
    """Kassa's online money of the day that the processor does not list."""
    seen = {(line.type, line.source if line.type != LineType.CHARGE else line.charge)
            for line in listed}
    missing: list[Line] = []

    def expect(type: LineType, reference: str, kassa: Kassa) -> None:
        if (type, reference) not in seen:
            missing.append(Line(None, type, kassa.amount_minor or 0, kassa, MISSING_AT_GATEWAY,
                                reference))

    org = {"organization": organization, "gateway": gateway.name}
    for p in Payment.objects.filter(**org, online=True, status=PaymentStatus.SUCCEEDED,
                                    created_at__gte=start, created_at__lt=end
                                    ).exclude(gateway_reference="").order_by("pk"):
        expect(LineType.CHARGE, p.gateway_reference,
               Kassa("payment", p.pk, p.organization_id, p.amount_minor, p.pk))
    for r in Refund.objects.filter(**org, created_at__gte=start, created_at__lt=end
                                   ).exclude(gateway_reference="").order_by("pk"):
        expect(LineType.REFUND, r.gateway_reference,
               Kassa("refund", r.pk, r.organization_id, -r.amount_minor, r.payment_id))
    for r in Refund.objects.filter(**org, status=RefundStatus.FAILED, settled_at__gte=start,
                                   settled_at__lt=end).exclude(gateway_reference="").order_by("pk"):
        expect(LineType.REFUND_FAILURE, r.gateway_reference,
               Kassa("refund", r.pk, r.organization_id, r.amount_minor, r.payment_id))
    for d in Dispute.objects.filter(**org, created_at__gte=start, created_at__lt=end
                                    ).order_by("pk"):
        expect(LineType.DISPUTE, d.gateway_reference,
               Kassa("dispute", d.pk, d.organization_id, -d.amount_minor, d.payment_id))
    for d in Dispute.objects.filter(**org, status=DisputeStatus.WON, closed_at__gte=start,
                                    closed_at__lt=end).order_by("pk"):
        expect(LineType.DISPUTE_REVERSAL, d.gateway_reference,
               Kassa("dispute", d.pk, d.organization_id, d.amount_minor, d.payment_id))
    return missing


def reconcile(organization: Organization, day: dt.date,
              gateway: Gateway | None = None) -> list[Line]:
    """Every line of the organization's business day, matched or not."""
    assert_outside_transaction("reconciliation (it asks the gateway)")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed("date", f"must be a day from {FIRST_DAY.isoformat()} to "
                               f"{LAST_DAY.isoformat()}")
    gateway = gateway or current_gateway()
    start, end = day_bounds(organization, day)
    listed = gateway.balance_lines(organization_id=organization.pk, start=start - EDGE,
                                   end=end + EDGE)
    known = _known(gateway, listed, None if gateway.account_wide else organization)
    if gateway.account_wide:  # only what traces to this organization's own payments
        listed = [line for line in listed if _owner(line, known) == organization.pk]
    matched = [match(line, known) for line in listed if start <= line.created < end]
    return matched + _missing_at_gateway(gateway, organization, start, end, listed)


def reconcile_account(day: dt.date, gateway: Gateway | None = None) -> list[Line]:
    """An installation-wide account's own lines of a (UTC) day: payouts, and what traces to no
    organization's payment. Nothing for the sandbox, whose accounts are the organizations'."""
    assert_outside_transaction("reconciliation (it asks the gateway)")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed("date", f"must be a day from {FIRST_DAY.isoformat()} to "
                               f"{LAST_DAY.isoformat()}")
    gateway = gateway or current_gateway()
    if not gateway.account_wide:
        return []
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    listed = gateway.balance_lines(organization_id=0, start=start,
                                   end=start + dt.timedelta(days=1))
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
    """Today's and yesterday's lines not matched (asked of the gateway as the page is read:
    nothing is stored, so what is mended leaves the page at once)."""
    from kassa.gateways.base import GatewayError

    today = today_of(organization)
    found: list[tuple[dt.date, Line]] = []
    try:
        for back in range(days):
            day = today - dt.timedelta(days=back)
            found += [(day, line) for line in exceptions(reconcile(organization, day))]
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
