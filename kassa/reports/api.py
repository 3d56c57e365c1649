"""The reports over HTTP, as JSON or (`?format=csv`) as CSV with the same figures. How a report
is built and written out lives in `presenters`, which the pages share."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema
from pydantic import Field

from kassa.core.schemas import READ_ERRORS, Problem
from kassa.core.text import Code, Day
from kassa.reports import presenters, selectors
from kassa.tenancy.auth import AuthedRequest

router = Router(tags=["reports"])

# `?format=csv` answers the same 200 as text/csv: the document says so.
CSV_TOO: dict[str, Any] = {
    "responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}}


class DailyQuery(Schema):
    date: Day | None = None
    center: Code | None = None
    format: str = Field("json", pattern="^(json|csv)$")


class PeriodQuery(Schema):
    start: Day | None = None
    end: Day | None = None
    center: Code | None = None
    format: str = Field("json", pattern="^(json|csv)$")


class LiabilityQuery(PeriodQuery):
    limit: int = Field(500, ge=1, le=selectors.MAX_ROWS)
    offset: int = Field(0, ge=0, le=10_000_000)


class SalesOut(Schema):
    gross: str
    credits: str
    net: str


class CollectionsOut(Schema):
    received: str
    refunded: str
    net: str
    by_method: dict[str, str]


class TaxOut(Schema):
    charged: str
    credited: str
    net: str


class RefundsOut(Schema):
    count: int
    total: str


class CreditMovedOut(Schema):
    issued: str
    applied: str
    refunded_out: str
    written_off: str


class DailyOut(Schema):
    date: str
    center: str | None
    sales: SalesOut
    collections: CollectionsOut
    tax: TaxOut
    refunds: RefundsOut
    credit: CreditMovedOut


class LiabilityFigures(Schema):
    opening: str
    paid: str
    redeemed: str
    refunded: str
    forfeited: str
    closing: str


class LiabilityRow(LiabilityFigures):
    package: str
    customer: str
    name: str


class LiabilityOut(Schema):
    start: str
    end: str
    center: str | None
    rows: list[LiabilityRow]
    totals: LiabilityFigures


class CreditFigures(Schema):
    opening: str
    issued: str
    applied: str
    refunded_out: str
    written_off: str
    closing: str


class CreditRow(CreditFigures):
    customer: str
    name: str


class CustomerCreditOut(Schema):
    start: str
    end: str
    center: str | None
    rows: list[CreditRow]
    totals: CreditFigures
    count: int  # customers with credit in the period, of which `rows` is one page


class RevenueByKind(Schema):
    service: str
    product: str
    redemption: str
    forfeit: str
    fee: str  # fees added to invoices (a returned check's)


class RevenueOut(Schema):
    start: str
    end: str
    center: str | None
    by_kind: RevenueByKind
    total: str


class ReconciliationQuery(Schema):
    date: Day | None = None
    format: str = Field("json", pattern="^(json|csv)$")


class KassaSide(Schema):
    object: str  # payment | refund | dispute
    id: str
    amount: str | None  # Kassa's signed amount, where it is compared with the line's


class ReconciliationLine(Schema):
    gateway_id: str | None  # null for Kassa's money the gateway does not list
    type: str  # charge | refund | refund_failure | dispute | dispute_reversal | fee | payout
    amount: str  # signed: + into the processor balance, − out of it
    kassa: KassaSide | None
    status: str  # matched | missing_in_kassa | missing_at_gateway | amount_mismatch
    source: str  # the processor's charge, refund, dispute or payout


class ReconciliationTotals(Schema):
    by_type: dict[str, str]
    net: str
    count: dict[str, int]  # lines by status


class ReconciliationOut(Schema):
    date: str
    gateway: str
    lines: list[ReconciliationLine]
    totals: ReconciliationTotals


@router.get("/reports/reconciliation",
            response={200: ReconciliationOut, **READ_ERRORS, 403: Problem, 503: Problem},
            openapi_extra=CSV_TOO)
def reconciliation(request: AuthedRequest, q: Query[ReconciliationQuery]) -> Any:
    """The gateway's balance lines of a business day, each matched to Kassa's payment, refund
    or dispute (admins and accountants)."""
    report = presenters.reconciliation_report(request.auth, q.date)
    return presenters.reconciliation_csv(report) if q.format == "csv" else report


@router.get("/reports/daily", response={200: DailyOut, **READ_ERRORS},
            openapi_extra=CSV_TOO)
def daily(request: AuthedRequest, q: Query[DailyQuery]) -> Any:
    report = presenters.daily_report(request.auth, q.date, q.center)
    return presenters.daily_csv(report) if q.format == "csv" else report


@router.get("/reports/package-liability", response={200: LiabilityOut, **READ_ERRORS},
            openapi_extra=CSV_TOO)
def package_liability(request: AuthedRequest, q: Query[LiabilityQuery]) -> Any:
    report = presenters.liability_report(request.auth, q.start, q.end, q.center,
                                         limit=q.limit, offset=q.offset)
    return presenters.liability_csv(report) if q.format == "csv" else report


@router.get("/reports/revenue", response={200: RevenueOut, **READ_ERRORS},
            openapi_extra=CSV_TOO)
def revenue(request: AuthedRequest, q: Query[PeriodQuery]) -> Any:
    report = presenters.revenue_report(request.auth, q.start, q.end, q.center)
    return presenters.revenue_csv(report) if q.format == "csv" else report


@router.get("/reports/customer-credit", response={200: CustomerCreditOut, **READ_ERRORS},
            openapi_extra=CSV_TOO)
def customer_credit(request: AuthedRequest, q: Query[LiabilityQuery]) -> Any:
    """Per customer: opening, issued, applied, refunded out, written off and closing credit;
    closing = opening + issued − applied − refunded_out − written_off."""
    report = presenters.customer_credit_report(request.auth, q.start, q.end, q.center,
                                               limit=q.limit, offset=q.offset)
    return presenters.customer_credit_csv(report) if q.format == "csv" else report
