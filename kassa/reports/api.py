"""The reports over HTTP, as JSON or (`?format=csv`) as CSV with the same figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import Field

from kassa.core.errors import ValidationFailed
from kassa.core.money import format_decimal_string
from kassa.core.schemas import READ_ERRORS
from kassa.core.text import Code
from kassa.reports import selectors
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import get_center

router = Router(tags=["reports"])


class DailyQuery(Schema):
    date: dt.date | None = None
    center: Code | None = None
    format: str = Field("json", pattern="^(json|csv)$")


class PeriodQuery(Schema):
    start: dt.date | None = None
    end: dt.date | None = None
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


class DailyOut(Schema):
    date: str
    center: str | None
    sales: SalesOut
    collections: CollectionsOut
    tax: TaxOut
    refunds: RefundsOut


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


class RevenueByKind(Schema):
    service: str
    product: str
    redemption: str
    forfeit: str


class RevenueOut(Schema):
    start: str
    end: str
    center: str | None
    by_kind: RevenueByKind
    total: str


def today(membership: Membership) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(membership.organization.timezone)).date()


def scope_for(membership: Membership, start: dt.date | None, end: dt.date | None,
              center: str | None) -> selectors.Scope:
    """Resolve a report's period and center (bad input names its field)."""
    end = end or today(membership)
    start = start or end.replace(day=1)
    if start > end:
        raise ValidationFailed("start", "must not be after end")
    if (end - start).days > selectors.MAX_DAYS:
        raise ValidationFailed("start", f"a report spans at most {selectors.MAX_DAYS} days")
    where = get_center(membership.organization, center, field="center") if center else None
    return selectors.Scope(membership.organization, where, start, end)


def money_tree(value: Any, currency: str) -> Any:
    """Every integer amount in a report, as a decimal string (counts are left alone)."""
    if isinstance(value, dict):
        return {k: (v if k == "count" else money_tree(v, currency)) for k, v in value.items()}
    if isinstance(value, list):
        return [money_tree(v, currency) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return format_decimal_string(value, currency)
    return value


def daily_report(membership: Membership, date: dt.date | None, center: str | None
                 ) -> dict[str, Any]:
    scope = scope_for(membership, date or today(membership), date or today(membership), center)
    figures = money_tree(selectors.daily(scope), membership.organization.currency)
    return {"date": scope.start.isoformat(), "center": center, **figures}


def liability_report(membership: Membership, q: LiabilityQuery) -> dict[str, Any]:
    scope = scope_for(membership, q.start, q.end, q.center)
    figures = money_tree(selectors.package_liability(scope, limit=q.limit, offset=q.offset),
                         membership.organization.currency)
    return {"start": scope.start.isoformat(), "end": scope.end.isoformat(),
            "center": q.center, **figures}


def revenue_report(membership: Membership, q: PeriodQuery) -> dict[str, Any]:
    scope = scope_for(membership, q.start, q.end, q.center)
    figures = money_tree(selectors.revenue(scope), membership.organization.currency)
    return {"start": scope.start.isoformat(), "end": scope.end.isoformat(),
            "center": q.center, **figures}


def csv_response(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def daily_csv(report: dict[str, Any]) -> HttpResponse:
    rows: list[list[Any]] = []
    for section in ("sales", "collections", "tax", "refunds"):
        for figure, value in report[section].items():
            if isinstance(value, dict):
                rows += [[section, f"{figure}.{k}", v] for k, v in value.items()]
            else:
                rows.append([section, figure, value])
    return csv_response(f"daily-{report['date']}", ["section", "figure", "amount"], rows)


def liability_csv(report: dict[str, Any]) -> HttpResponse:
    columns = ["package", "customer", "name", *selectors.COLUMNS]
    rows = [[row[c] for c in columns] for row in report["rows"]]
    rows.append(["total", "", "", *[report["totals"][c] for c in selectors.COLUMNS]])
    return csv_response(f"package-liability-{report['start']}-{report['end']}", columns, rows)


def revenue_csv(report: dict[str, Any]) -> HttpResponse:
    rows = [[kind, value] for kind, value in report["by_kind"].items()]
    rows.append(["total", report["total"]])
    return csv_response(f"revenue-{report['start']}-{report['end']}", ["kind", "amount"], rows)



@router.get("/reports/daily", response={200: DailyOut, **READ_ERRORS})
def daily(request: HttpRequest, q: Query[DailyQuery]) -> Any:
    report = daily_report(request.auth, q.date, q.center)
    return daily_csv(report) if q.format == "csv" else report


@router.get("/reports/package-liability", response={200: LiabilityOut, **READ_ERRORS})
def package_liability(request: HttpRequest, q: Query[LiabilityQuery]) -> Any:
    report = liability_report(request.auth, q)
    return liability_csv(report) if q.format == "csv" else report


@router.get("/reports/revenue", response={200: RevenueOut, **READ_ERRORS})
def revenue(request: HttpRequest, q: Query[PeriodQuery]) -> Any:
    report = revenue_report(request.auth, q)
    return revenue_csv(report) if q.format == "csv" else report
