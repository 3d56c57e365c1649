"""What the processor and the bank decided, as the front desk sees it: `/disputes/` (every
dispute, its respond-by date, and for an admin the settlement of a lost one) and *Record
returned check* on a check or ACH payment (`/payments/<id>/return/`). The pages only parse and
label input: the rules are `kassa.refunds.disputes.settle` and `returns.record_return`, whose
errors are put back beside their field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from kassa.billing import selectors as billing
from kassa.core.errors import DomainError
from kassa.core.money import display
from kassa.refunds import disputes, returns
from kassa.refunds.models import Dispute, DisputeStatus, Settlement
from kassa.tenancy.models import Membership, Role
from kassa.web.access import admin_page, page
from kassa.web.forms import show_error, typed_amount


class SettleForm(forms.Form):
    action = forms.ChoiceField(
        label="Settle the lost dispute", widget=forms.RadioSelect,
        choices=[(Settlement.REBILL, "Re-bill the customer: the invoice's balance is owed again"),
                 (Settlement.WRITE_OFF, "Write it off as a chargeback loss")])
    reason = forms.CharField(label="Why", required=False, max_length=500)


class ReturnForm(forms.Form):
    reason = forms.CharField(label="Why the bank returned it", required=False, max_length=500,
                             widget=forms.TextInput(attrs={"placeholder": "Insufficient funds"}))
    amount = forms.CharField(label="Amount returned", required=False,
                             help_text="Leave empty for all that is not refunded of it.",
                             widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    fee = forms.CharField(label="Returned payment fee", required=False,
                          help_text="Optional: added to the invoice as a fee line.",
                          widget=forms.TextInput(attrs={"inputmode": "decimal"}))


def _list(request: HttpRequest, membership: Membership, *,
          forms_by_dispute: dict[int, SettleForm] | None = None,
          status: int = 200) -> HttpResponse:
    organization = membership.organization
    shown = request.GET.get("status", "")
    found = (Dispute.objects.filter(organization=organization)
             .select_related("payment", "invoice", "settled_by").order_by("-created_at", "-pk"))
    if shown in DisputeStatus.values:
        found = found.filter(status=shown)
    forms_by_dispute = forms_by_dispute or {}
    rows = [{"dispute": d, "form": forms_by_dispute.get(d.pk, SettleForm(prefix=f"d{d.pk}"))
             if d.status == DisputeStatus.LOST and not d.settlement else None}
            for d in found[:200]]
    return render(request, "web/disputes.html", {
        "organization": organization, "rows": rows, "statuses": DisputeStatus.choices,
        "shown": shown, "may_settle": membership.role == Role.ADMIN}, status=status)


@page
def dispute_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _list(request, membership)


@require_POST
@admin_page
def settle(request: HttpRequest, membership: Membership, dispute_id: int) -> HttpResponse:
    form = SettleForm(request.POST, prefix=f"d{dispute_id}")
    if form.is_valid():
        try:
            settled = disputes.settle(actor=membership, dispute=dispute_id,
                                      action=form.cleaned_data["action"],
                                      reason=form.cleaned_data["reason"])
        except DomainError as exc:
            show_error(form, exc)
        else:
            org = membership.organization
            amount = display(settled.amount_minor, org.currency, org.locale)
            messages.success(request, (
                f"Dispute {settled.pk}: {amount} re-billed. The invoice's balance due is open "
                "again." if settled.settlement == Settlement.REBILL
                else f"Dispute {settled.pk}: {amount} written off as a chargeback loss."))
            return redirect("disputes")
    return _list(request, membership, forms_by_dispute={dispute_id: form}, status=422)


@require_http_methods(["GET", "POST"])
@admin_page
def record_return(request: HttpRequest, membership: Membership, payment_id: int
                  ) -> HttpResponse:
    organization = membership.organization
    payment = billing.get_payment(organization, payment_id)
    form = ReturnForm(request.POST or None, prefix="return")
    status = 200
    if request.method == "POST" and form.is_valid():
        data: dict[str, Any] = form.cleaned_data
        try:
            returned = returns.record_return(
                actor=membership, payment=payment.pk, reason=data["reason"],
                amount=typed_amount(data["amount"], organization) or None,
                fee=typed_amount(data["fee"], organization) or None)
        except DomainError as exc:
            show_error(form, exc, organization=organization)
            status = exc.status
        else:
            money = lambda minor: display(minor, organization.currency,  # noqa: E731
                                          organization.locale)
            messages.success(request, (
                f"Payment {payment.pk} recorded as returned: {money(returned.amount_minor)} is "
                f"owed again on invoice {returned.invoice.number}"
                + (f", with a {money(returned.fee_minor)} fee added" if returned.fee_minor
                   else "") + "."))
            return redirect("payment", payment.pk)
    return render(request, "web/payment_return.html", {
        "organization": organization, "payment": payment, "form": form,
        "unrefunded": display(payment.refundable_minor, organization.currency,
                              organization.locale)}, status=status)


urlpatterns = [
    path("disputes/", dispute_list, name="disputes"),
    path("disputes/<int:dispute_id>/settle/", settle, name="dispute_settle"),
    path("payments/<int:payment_id>/return/", record_return, name="payment_return"),
]
