"""The reports as people and programs receive them, shared by the API and the pages.

A report is built in two steps: its *figures* (the selector's integer minor units, with the
period and center resolved by `scope_for`), then, for the API and CSV, the same figures as
decimal strings (`money_tree`). The pages show the figures through Babel and offer the very
CSV the API gives, so the three can never disagree.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpResponse
from django.utils import timezone

from kassa.core.errors import GatewayUnavailable, ValidationFailed
from kassa.core.money import format_decimal_string
from kassa.gateways.base import GatewayError
from kassa.reports import reconciliation, selectors
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_auditor


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


# Figures: integer minor units, as the pages show them.

def daily_figures(membership: Membership, date: dt.date | None, center: str | None
                  ) -> dict[str, Any]:
    day = date or today(membership)
    scope = scope_for(membership, day, day, center)
    return {"date": scope.start.isoformat(), "center": center, **selectors.daily(scope)}


def liability_figures(membership: Membership, start: dt.date | None, end: dt.date | None,
                      center: str | None, *, limit: int = 500, offset: int = 0
                      ) -> dict[str, Any]:
    scope = scope_for(membership, start, end, center)
    return {"start": scope.start.isoformat(), "end": scope.end.isoformat(), "center": center,
            **selectors.package_liability(scope, limit=limit, offset=offset)}


def customer_credit_figures(membership: Membership, start: dt.date | None,
                            end: dt.date | None, center: str | None, *, limit: int = 500,
                            offset: int = 0) -> dict[str, Any]:
    scope = scope_for(membership, start, end, center)
    return {"start": scope.start.isoformat(), "end": scope.end.isoformat(), "center": center,
            **selectors.customer_credit(scope, limit=limit, offset=offset)}


def revenue_figures(membership: Membership, start: dt.date | None, end: dt.date | None,
                    center: str | None) -> dict[str, Any]:
    scope = scope_for(membership, start, end, center)
    return {"start": scope.start.isoformat(), "end": scope.end.isoformat(), "center": center,
            **selectors.revenue(scope)}


# Reports: the same figures as decimal strings, as the API answers them.

def daily_report(membership: Membership, date: dt.date | None, center: str | None
                 ) -> dict[str, Any]:
    return money_tree(daily_figures(membership, date, center), membership.organization.currency)


def liability_report(membership: Membership, start: dt.date | None, end: dt.date | None,
                     center: str | None, *, limit: int = 500, offset: int = 0
                     ) -> dict[str, Any]:
    figures = liability_figures(membership, start, end, center, limit=limit, offset=offset)
    return money_tree(figures, membership.organization.currency)


def customer_credit_report(membership: Membership, start: dt.date | None,
                           end: dt.date | None, center: str | None, *, limit: int = 500,
                           offset: int = 0) -> dict[str, Any]:
    figures = customer_credit_figures(membership, start, end, center, limit=limit,
                                      offset=offset)
    return money_tree(figures, membership.organization.currency)


def revenue_report(membership: Membership, start: dt.date | None, end: dt.date | None,
                   center: str | None) -> dict[str, Any]:
    return money_tree(revenue_figures(membership, start, end, center),
                      membership.organization.currency)


def reconciliation_figures(membership: Membership, date: dt.date | None) -> dict[str, Any]:
    """The processor's lines of a business day matched to Kassa's money (admins and
    accountants: it shows the merchant's balance at the processor)."""
    return _asking_the_gateway(membership, reconciliation.figures, date)


def reconciliation_report(membership: Membership, date: dt.date | None) -> dict[str, Any]:
    return _asking_the_gateway(membership, reconciliation.report, date)


def _asking_the_gateway(membership: Membership, build: Any, date: dt.date | None
                        ) -> dict[str, Any]:
    require_auditor(membership)
    try:
        return dict(build(membership.organization, date or today(membership)))
    except GatewayError as exc:
        raise GatewayUnavailable(f"The payment gateway did not list its balance: {exc}") from exc


# CSV: built from a report (decimal strings).

# A spreadsheet runs a cell that starts with one of these as a formula: a customer named
# `=HYPERLINK(…)` must stay a name. Amounts keep their sign (a refund is "-50.00").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def neutralised(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not AMOUNT.fullmatch(cell):
        return "'" + cell
    return cell


def csv_response(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[neutralised(cell) for cell in row] for row in rows])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def daily_csv(report: dict[str, Any]) -> HttpResponse:
    rows: list[list[Any]] = []
    for section in ("sales", "collections", "tax", "refunds", "credit"):
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


def customer_credit_csv(report: dict[str, Any]) -> HttpResponse:
    columns = ["customer", "name", *selectors.CREDIT_COLUMNS]
    rows = [[row[c] for c in columns] for row in report["rows"]]
    rows.append(["total", "", *[report["totals"][c] for c in selectors.CREDIT_COLUMNS]])
    return csv_response(f"customer-credit-{report['start']}-{report['end']}", columns, rows)


def revenue_csv(report: dict[str, Any]) -> HttpResponse:
    rows = [[kind, value] for kind, value in report["by_kind"].items()]
    rows.append(["total", report["total"]])
    return csv_response(f"revenue-{report['start']}-{report['end']}", ["kind", "amount"], rows)


RECONCILIATION_COLUMNS = ["gateway_id", "type", "amount", "status", "kassa_object", "kassa_id",
                          "kassa_amount", "source"]


def reconciliation_csv(report: dict[str, Any]) -> HttpResponse:
    rows = [[line["gateway_id"] or "", line["type"], line["amount"], line["status"],
             *((line["kassa"]["object"], line["kassa"]["id"], line["kassa"]["amount"] or "")
               if line["kassa"] else ("", "", "")), line["source"]]
            for line in report["lines"]]
    rows += [["total", kind, value, "", "", "", "", ""]
             for kind, value in report["totals"]["by_type"].items()]
    rows.append(["total", "net", report["totals"]["net"], "", "", "", "", ""])
    return csv_response(f"reconciliation-{report['date']}", RECONCILIATION_COLUMNS, rows)
