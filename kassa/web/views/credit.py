"""A customer's Credit tab: the money Kassa holds for them on no invoice — its balance, every
entry, *Take deposit* and *Refund credit*.

The forms parse and label; the rules (the amount, the card rule, who may refund or override)
are `take_deposit`'s and `refund_credit`'s, whose DomainError is put beside its field with the
error's own status, so a refused form changes nothing and says why where the user looks.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from kassa.billing import selectors as billing
from kassa.billing import services as billing_services
from kassa.billing.models import CreditKind, Customer, Method, Payment, PaymentStatus
from kassa.core.errors import DomainError
from kassa.core.money import display
from kassa.refunds import requests
from kassa.tenancy.models import Role
from kassa.tenancy.selectors import centers
from kassa.tenancy.services import may_refund
from kassa.web.access import page
from kassa.web.forms import show_error
from kassa.web.refund_door import REQUESTED, add_reason_code

DEPOSIT_METHODS = [("cash", "Cash"), ("check", "Check"), ("insurance", "Insurance"),
                   ("other", "Other"), ("card", "Card (online, through the gateway)")]


class DepositForm(forms.Form):
    amount = forms.CharField(label="Amount", required=False,
                             widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                           "autocomplete": "off"}))
    method = forms.ChoiceField(label="Method", choices=DEPOSIT_METHODS)
    center = forms.ChoiceField(label="Center")
    note = forms.CharField(label="Note", required=False,
                           help_text="Optional: what the deposit is for.")

    prefix = "deposit"  # the tab holds two forms: their fields' ids must differ

    def __init__(self, *args: Any, center_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["center"].choices = center_choices  # type: ignore[attr-defined]


class CreditRefundForm(forms.Form):
    amount = forms.CharField(label="Refund amount", required=False,
                             widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                           "autocomplete": "off"}))
    reason = forms.CharField(label="Reason for refund", required=False)
    destination = forms.ChoiceField(label="Refund to")
    payee = forms.CharField(label="Payee", required=False,
                            help_text="Who receives the check, if not the customer "
                                      "(a family member, the estate).")
    note = forms.CharField(label="Notes", required=False,
                           help_text="Required when the method is Other.")
    override_reason = forms.CharField(
        label="Why card money goes back another way", required=False,
        help_text="Admins only: card money goes back to its card unless you say why not.")

    prefix = "refund"

    def __init__(self, *args: Any, destinations: list[tuple[str, str]], admin: bool,
                 organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["destination"].choices = destinations  # type: ignore[attr-defined]
        if not admin:
            del self.fields["override_reason"]
        add_reason_code(self, organization)


def _money(minor: int, organization: Any) -> str:
    return display(minor, organization.currency, organization.locale)


def _card_payments(customer: Customer) -> list[Payment]:
    """The customer's online payments whose charge the gateway can still refund."""
    return [p for p in customer.payments.filter(online=True, status=PaymentStatus.SUCCEEDED)
            .order_by("pk") if p.refundable_online_minor > 0]


def _destinations(customer: Customer, organization: Any) -> list[tuple[str, str]]:
    offline = [("cash", "Cash"), ("check", "Check"), ("other", "Other")]
    cards = [(f"payment:{p.pk}",
              f"{Method(p.method).label} payment #{p.pk} of "
              f"{_money(p.amount_minor, organization)}, online (up to "
              f"{_money(p.refundable_online_minor, organization)})")
             for p in _card_payments(customer)]
    return [*offline, *cards]


def _render(request: HttpRequest, membership: Any, customer: Customer, *,
            deposit: DepositForm | None = None, refund: CreditRefundForm | None = None,
            status: int = 200) -> HttpResponse:
    organization = membership.organization
    admin = membership.role == Role.ADMIN
    entries = list(billing.credit_entries(customer))
    labels = dict(CreditKind.choices)
    return render(request, "web/customer_credit.html", {
        "guest": customer, "organization": organization,
        "entries": [{"entry": e, "label": labels.get(e.kind, e.kind)} for e in entries],
        "deposit_form": deposit or DepositForm(center_choices=_centers(organization)),
        "refund_form": refund or CreditRefundForm(
            destinations=_destinations(customer, organization), admin=admin,
            organization=organization),
        # Who may ask for refunds (request_roles) sees the form too: theirs become requests.
        "may_refund": may_refund(membership) or requests.may_ask(membership),
        "may_take": membership.role != Role.ACCOUNTANT,
    }, status=status)


def _centers(organization: Any) -> list[tuple[str, str]]:
    return [(str(c.pk), c.name) for c in centers(organization)]


@page
def customer_credit(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    customer = billing.get_customer(membership.organization, customer_id)
    return _render(request, membership, customer)


@page
@require_http_methods(["POST"])
def take_deposit(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    customer = billing.get_customer(organization, customer_id)
    form = DepositForm(request.POST, center_choices=_centers(organization))
    if not form.is_valid():
        return _render(request, membership, customer, deposit=form, status=422)
    data = form.cleaned_data
    try:
        payment = billing_services.take_deposit(
            actor=membership, customer=str(customer.pk), center=data["center"],
            amount=data["amount"], method=data["method"], online=data["method"] == "card",
            note=data["note"])
    except DomainError as exc:
        show_error(form, exc)
        return _render(request, membership, customer, deposit=form, status=exc.status)
    messages.success(request, f"Deposit of {_money(payment.amount_minor, organization)} by "
                     f"{Method(payment.method).label.lower()} taken into "
                     f"{customer.name}'s credit.")
    return HttpResponseRedirect(reverse("customer_credit", args=[customer.pk]))


@page
@require_http_methods(["POST"])
def refund_credit(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    customer = billing.get_customer(organization, customer_id)
    form = CreditRefundForm(request.POST, destinations=_destinations(customer, organization),
                            admin=membership.role == Role.ADMIN, organization=organization)
    if not form.is_valid():
        return _render(request, membership, customer, refund=form, status=422)
    data = form.cleaned_data
    destination = data["destination"]
    refund_to: dict[str, str | None] = (
        {"payment": destination.removeprefix("payment:")} if destination.startswith("payment:")
        else {"method": destination, "note": data["note"], "payee": data["payee"]})
    try:
        # The API's one door: the policy's rules, then the refund, or a request for it.
        status, refund = requests.refund_or_request(
            actor=membership, kind="credit", target=customer.pk, body={
                "amount": data["amount"], "reason": data["reason"], "refund_to": refund_to,
                "override_reason": data.get("override_reason") or None,
                "reason_code": data.get("reason_code") or None})
    except DomainError as exc:
        show_error(form, exc, fields={"refund_to.note": "note", "refund_to.payee": "payee",
                                      "refund_to.method": "destination",
                                      "refund_to.payment": "destination"})
        return _render(request, membership, customer, refund=form, status=exc.status)
    if status == "requested":
        messages.success(request, REQUESTED)
        return HttpResponseRedirect(reverse("customer_credit", args=[customer.pk]))
    amount = _money(refund.total_minor, organization)
    if refund.payment_id:
        messages.success(request, f"Refund of {amount} out of credit issued online to payment "
                         f"#{refund.payment_id}. It is pending until the gateway settles it.")
    else:
        to = f" to {refund.payee}" if refund.payee else ""
        messages.success(request, f"Refund of {amount} out of credit by {refund.method}{to} "
                         "recorded.")
    return HttpResponseRedirect(reverse("customer_credit", args=[customer.pk]))


urlpatterns = [
    path("customers/<int:customer_id>/credit/", customer_credit, name="customer_credit"),
    path("customers/<int:customer_id>/credit/deposit/", take_deposit,
         name="customer_credit_deposit"),
    path("customers/<int:customer_id>/credit/refund/", refund_credit,
         name="customer_credit_refund"),
]
