"""`/reports/reconciliation/`: the processor's balance lines of a business day beside Kassa's
payments, refunds and disputes, each matched or not, with the API's CSV. Admins and
accountants, as the presenter requires."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from kassa.core.errors import DomainError
from kassa.reports import presenters, reconciliation
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_auditor
from kassa.web.access import page
from kassa.web.forms import show_error
from kassa.web.views.reports import date_field

TYPES = {"charge": "Charge", "refund": "Refund", "refund_failure": "Refund failed",
         "dispute": "Dispute", "dispute_reversal": "Dispute won back", "fee": "Processor fee",
         "payout": "Payout to the bank"}
STATUSES = {
    reconciliation.MATCHED: "Matched",
    reconciliation.MISSING_IN_KASSA: "Not in Kassa",
    reconciliation.MISSING_AT_GATEWAY: "Not at the gateway",
    reconciliation.AMOUNT_MISMATCH: "Amounts differ",
}


class DayForm(forms.Form):
    date = date_field("Business day")


@page
def reconciliation_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    require_auditor(membership)  # a 403 page for the front desk
    form = DayForm(request.GET or None, label_suffix="")
    figures = None
    if not form.is_bound or form.is_valid():
        day = form.cleaned_data.get("date") if form.is_bound else None
        try:
            if request.GET.get("format") == "csv":
                return presenters.reconciliation_csv(
                    presenters.reconciliation_report(membership, day))
            figures = presenters.reconciliation_figures(membership, day)
        except DomainError as error:
            show_error(form, error)
    context: dict[str, Any] = {"tab": "reconciliation", "form": form,
                               "organization": membership.organization, "figures": figures}
    if figures is not None:
        context.update(
            form=DayForm(initial={"date": figures["date"]}, label_suffix=""),
            csv_url=f"{request.path}?{urlencode({'date': figures['date'], 'format': 'csv'})}",
            rows=[{"line": line, "type": TYPES[line.type], "status": STATUSES[line.status]}
                  for line in figures["lines"]],
            totals=[(TYPES[t], v) for t, v in figures["by_type"].items()],
            exceptions=len(reconciliation.exceptions(figures["lines"])))
    return render(request, "web/reports_reconciliation.html", context)


urlpatterns = [
    path("reports/reconciliation/", reconciliation_page, name="report_reconciliation"),
]
