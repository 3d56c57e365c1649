"""The reports pages: daily, package liability (with its *Refunds* column) and revenue, per
center or for all of them, each with a chart and a CSV download. Every role may read them.

A page parses its date(s) and center with a small form and asks `kassa.reports.presenters` for
the figures — the same functions the API answers with. The period and center rules (start after
end, an unknown center) are the presenter's: its ValidationFailed is shown beside its field.
Figures are integer minor units, shown through Babel; the chart gets them as the API's decimal
strings; `?format=csv` answers the very CSV the API gives for the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from kassa.billing.models import Method
from kassa.core.errors import DomainError
from kassa.reports import presenters
from kassa.reports.selectors import MAX_ROWS
from kassa.tenancy.models import Membership, Organization
from kassa.tenancy.selectors import centers
from kassa.web.access import page
from kassa.web.forms import show_error

LIABILITY_PAGE = 500  # rows per page; the API's default page, so both CSVs are the same


class ReportForm(forms.Form):
    # A plain text field shown as a select: an unknown center is the presenter's to refuse.
    center = forms.CharField(label="Center", required=False, max_length=64,
                             widget=forms.Select)

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["center"].widget.choices = [
            ("", "All centers"), *[(str(c.pk), c.name) for c in centers(organization)]]


def date_field(label: str) -> forms.DateField:
    return forms.DateField(label=label, required=False, widget=forms.DateInput(
        format="%Y-%m-%d", attrs={"type": "date"}))


class DailyForm(ReportForm):
    date = date_field("Date")
    field_order = ["date", "center"]


class PeriodForm(ReportForm):
    start = date_field("Start")
    end = date_field("End")
    field_order = ["start", "end", "center"]


@dataclass(frozen=True)
class Report:
    """One report page: its form, how to build its figures, its CSV and its chart."""

    name: str
    template: str
    form: type[ReportForm]
    figures: Callable[[Membership, dict[str, Any], int], dict[str, Any]]
    csv: Callable[[dict[str, Any]], HttpResponse]
    chart: Callable[[dict[str, Any]], dict[str, Any]]


def daily_chart(report: dict[str, Any]) -> dict[str, Any]:
    sales, collections, tax = report["sales"], report["collections"], report["tax"]
    return {"labels": ["Sales", "Collections", "Tax"], "datasets": [
        {"label": "Sold, received, charged",
         "data": [sales["gross"], collections["received"], tax["charged"]]},
        {"label": "Credited, refunded",
         "data": [sales["credits"], collections["refunded"], tax["credited"]]},
        {"label": "Net", "data": [sales["net"], collections["net"], tax["net"]]}]}


LIABILITY_LABELS = {"opening": "Opening", "paid": "Paid", "redeemed": "Redeemed",
                    "refunded": "Refunds", "forfeited": "Forfeited", "closing": "Closing"}


def liability_chart(report: dict[str, Any]) -> dict[str, Any]:
    totals = report["totals"]
    return {"labels": list(LIABILITY_LABELS.values()), "datasets": [
        {"label": "All packages", "data": [totals[k] for k in LIABILITY_LABELS]}]}


def revenue_chart(report: dict[str, Any]) -> dict[str, Any]:
    by_kind = report["by_kind"]
    return {"labels": [kind.title() for kind in by_kind], "datasets": [
        {"label": "Revenue", "data": list(by_kind.values())}]}


DAILY = Report(
    name="daily", template="web/reports_daily.html", form=DailyForm,
    figures=lambda m, q, offset: presenters.daily_figures(m, q["date"], q["center"] or None),
    csv=presenters.daily_csv, chart=daily_chart)
LIABILITY = Report(
    name="liability", template="web/reports_liability.html", form=PeriodForm,
    figures=lambda m, q, offset: presenters.liability_figures(
        m, q["start"], q["end"], q["center"] or None, limit=LIABILITY_PAGE, offset=offset),
    csv=presenters.liability_csv, chart=liability_chart)
REVENUE = Report(
    name="revenue", template="web/reports_revenue.html", form=PeriodForm,
    figures=lambda m, q, offset: presenters.revenue_figures(
        m, q["start"], q["end"], q["center"] or None),
    csv=presenters.revenue_csv, chart=revenue_chart)


def parse_offset(value: str | None) -> int:
    """The liability page's row offset; anything odd is the first page."""
    try:
        return min(max(int(value or 0), 0), MAX_ROWS * 2000)
    except ValueError:
        return 0


def show(request: HttpRequest, membership: Membership, report: Report) -> HttpResponse:
    organization = membership.organization
    form = report.form(request.GET or None, organization=organization)
    offset = parse_offset(request.GET.get("offset"))
    figures = None
    if form.is_bound and form.is_valid():
        query = form.cleaned_data
    elif form.is_bound:
        query = None
    else:  # no parameters: the presenter's defaults (today, this month), all centers
        query = {name: None for name in form.fields}
    if query is not None:
        try:
            figures = report.figures(membership, query, offset)
        except DomainError as error:
            show_error(form, error)
    context: dict[str, Any] = {"tab": report.name, "form": form, "organization": organization,
                               "figures": figures}
    if figures is not None:
        decimal = presenters.money_tree(figures, organization.currency)
        if request.GET.get("format") == "csv":
            return report.csv(decimal)
        # Show the period and center as the presenter resolved them.
        resolved: dict[str, Any] = {k: figures[k] for k in ("date", "start", "end")
                                    if k in figures}
        resolved["center"] = figures["center"] or ""
        form = report.form(initial=resolved, organization=organization)
        paging = {"offset": offset} if offset else {}
        context.update(
            form=form,
            csv_url=f"{request.path}?{urlencode({**resolved, **paging, 'format': 'csv'})}",
            chart={**report.chart(decimal), "currency": organization.currency,
                   "locale": organization.locale.replace("_", "-")},
            center_name=dict(form.fields["center"].widget.choices).get(resolved["center"]),
        )
        if report is DAILY:
            context["methods"] = [(Method(code).label, minor) for code, minor
                                  in figures["collections"]["by_method"].items()]
        if report is LIABILITY:
            context["columns"] = list(LIABILITY_LABELS.values())
            context["rows"] = [(row, [row[k] for k in LIABILITY_LABELS])
                               for row in figures["rows"]]
            context["totals"] = [figures["totals"][k] for k in LIABILITY_LABELS]
            if len(figures["rows"]) == LIABILITY_PAGE:
                context["next_url"] = f"{request.path}?" + urlencode(
                    {**resolved, "offset": offset + LIABILITY_PAGE})
            if offset:
                context["previous_url"] = f"{request.path}?" + urlencode(
                    {**resolved, "offset": max(offset - LIABILITY_PAGE, 0)})
    return render(request, report.template, context)


@page
def daily(request: HttpRequest, membership: Membership) -> HttpResponse:
    return show(request, membership, DAILY)


@page
def package_liability(request: HttpRequest, membership: Membership) -> HttpResponse:
    return show(request, membership, LIABILITY)


@page
def revenue(request: HttpRequest, membership: Membership) -> HttpResponse:
    return show(request, membership, REVENUE)


urlpatterns = [
    path("reports/", daily, name="reports"),
    path("reports/package-liability/", package_liability, name="report_liability"),
    path("reports/revenue/", revenue, name="report_revenue"),
]
