"""`/attention/`: what needs a person — the refunds the gateway machinery gave up on, with the
same ways out as the API (retry; paid another way; take the gateway's word), and the online
payments whose charge the worker could not settle (ask the gateway again). Admins only, as the
services require."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST, require_safe

from kassa.billing import charges
from kassa.core.errors import DomainError
from kassa.refunds import attention
from kassa.refunds.models import Refund
from kassa.reports import reconciliation
from kassa.tenancy.models import Membership
from kassa.web.access import admin_page
from kassa.web.forms import show_error
from kassa.web.views.reconciliation import STATUSES, TYPES


class ResolveForm(forms.Form):
    action = forms.ChoiceField(label="What to do",
                               choices=[("paid_another_way", "I gave the money back another way"),
                                        ("accept_gateway", "Take the gateway's word")],
                               widget=forms.RadioSelect, initial="paid_another_way")
    method = forms.ChoiceField(required=False, label="Paid by",
                               choices=[("cash", "Cash"), ("check", "Check"),
                                        ("other", "Other")])
    note = forms.CharField(required=False, max_length=2000, label="Note",
                           widget=forms.TextInput(attrs={"placeholder": "Check number, …"}))


def _render(request: HttpRequest, membership: Membership, *,
            forms_by_refund: dict[int, ResolveForm] | None = None,
            status: int = 200) -> HttpResponse:
    stuck = list(attention.stuck_refunds(membership.organization))
    forms_by_refund = forms_by_refund or {}
    rows = [{"refund": refund, "form": forms_by_refund.get(refund.pk, ResolveForm(
        prefix=f"r{refund.pk}"))} for refund in stuck]
    return render(request, "web/attention.html", {
        "organization": membership.organization, "rows": rows,
        "charges": list(charges.unresolved(membership.organization_id)),
        "reconciliation": _not_matched(membership)}, status=status)


def _not_matched(membership: Membership) -> dict[str, Any]:
    recent = reconciliation.recent_exceptions(membership.organization)
    return {"unavailable": recent.unavailable, "lines": [
        {"day": day, "line": line, "type": TYPES[line.type], "status": STATUSES[line.status]}
        for day, line in recent.lines]}


@require_safe
@admin_page
def attention_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _render(request, membership)


@require_POST
@admin_page
def retry(request: HttpRequest, membership: Membership, refund_id: int) -> HttpResponse:
    try:
        attention.retry_refund(actor=membership, refund=refund_id)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Refund {refund_id}: the gateway is asked again.")
    return redirect("attention")


@require_POST
@admin_page
def resolve(request: HttpRequest, membership: Membership, refund_id: int) -> HttpResponse:
    form = ResolveForm(request.POST, prefix=f"r{refund_id}")
    if form.is_valid():
        data: dict[str, Any] = form.cleaned_data
        try:
            refund: Refund = attention.resolve_refund(
                actor=membership, refund=refund_id, action=data["action"],
                method=data["method"] or None, note=data["note"])
        except DomainError as exc:
            show_error(form, exc)
        else:
            messages.success(request, f"Refund {refund.pk} is {refund.get_status_display()}"
                             f" now.")
            return redirect("attention")
    return _render(request, membership, forms_by_refund={refund_id: form}, status=422)


@require_POST
@admin_page
def retry_charge(request: HttpRequest, membership: Membership, payment_id: int) -> HttpResponse:
    try:
        charges.retry_charge(actor=membership, payment=payment_id)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Payment {payment_id}: the gateway is asked again.")
    return redirect("attention")


urlpatterns = [
    path("attention/", attention_page, name="attention"),
    path("attention/refunds/<int:refund_id>/retry", retry, name="attention_retry"),
    path("attention/refunds/<int:refund_id>/resolve", resolve, name="attention_resolve"),
    path("attention/payments/<int:payment_id>/retry", retry_charge,
         name="attention_retry_charge"),
]
