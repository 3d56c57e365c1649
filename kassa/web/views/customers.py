"""Families and guests: add and edit one, the customer's overview (invoices, payments,
refunds, packages, and a funeral home's cases), open a case, and the cases list.

Each form parses and labels input and calls one service (`create_customer`, `update_customer`,
`create_case`); a rule the service refuses comes back beside its field and nothing is saved.
After a success the page redirects (post/redirect/get) with a message in the trade's words.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_safe

from kassa.billing import selectors as billing
from kassa.billing import services
from kassa.billing.models import Customer, Method
from kassa.core.errors import DomainError
from kassa.packages import selectors as packages
from kassa.refunds import selectors as refunds
from kassa.tenancy.services import require_writer
from kassa.web.access import page
from kassa.web.forms import show_error
from kassa.web.words import words_for


class PlainForm(forms.Form):
    """Labels without a trailing colon, as on the other pages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class CustomerForm(PlainForm):
    name = forms.CharField(max_length=200)
    contact_name = forms.CharField(
        label="Contact name", max_length=200, required=False,
        help_text="The person e-mails are addressed to, such as Maria Alvarez. "
                  "Leave it empty to use the name above.")
    email = forms.EmailField(label="E-mail", max_length=254,
                             help_text="Receipts are sent here.")

    def __init__(self, *args: Any, words: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].label = f"{words['Customer']} name"
        self.fields["name"].help_text = ("As the family is known, such as The Alvarez Family."
                                         if words["funeral_home"] else "")


class CaseForm(PlainForm):
    name = forms.CharField(max_length=200)

    def __init__(self, *args: Any, words: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].label = words["case_name"]
        if words["funeral_home"]:
            self.fields["name"].help_text = "The name of the person who died, such as Jose " \
                                            "Alvarez (1941–2026): the case is found by it."


def _may_write(membership: Any) -> bool:
    try:
        require_writer(membership)
    except DomainError:
        return False
    return True


# --- add and edit ---------------------------------------------------------------------------

@page
@require_http_methods(["GET", "POST"])
def customer_new(request: HttpRequest, membership: Any) -> HttpResponse:
    words = words_for(membership.organization)
    form = CustomerForm(request.POST or None, words=words)
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.create_customer(
                actor=membership, name=form.cleaned_data["name"],
                email=form.cleaned_data["email"],
                contact_name=form.cleaned_data["contact_name"])
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, f"{words['Customer']} {customer.name} added.")
            return redirect("customer", customer.pk)
    return render(request, "web/customer_form.html", {
        "form": form, "customer": None, "organization": membership.organization,
    }, status=422 if form.errors else 200)


@page
@require_http_methods(["GET", "POST"])
def customer_edit(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    words = words_for(organization)
    customer = billing.get_customer(organization, customer_id)
    form = CustomerForm(request.POST or None, words=words, initial={
        "name": customer.name, "contact_name": customer.contact_name, "email": customer.email})
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.update_customer(
                actor=membership, customer=str(customer.pk), name=form.cleaned_data["name"],
                email=form.cleaned_data["email"],
                contact_name=form.cleaned_data["contact_name"])
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, f"{customer.name} saved.")
            return redirect("customer", customer.pk)
    return render(request, "web/customer_form.html", {
        "form": form, "customer": customer, "organization": organization,
    }, status=422 if form.errors else 200)


# --- the overview ---------------------------------------------------------------------------

@require_safe
@page
def customer_overview(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    customer = billing.get_customer(organization, customer_id)
    invoices = list(billing.invoices(organization).filter(customer=customer)
                    .select_related("case"))
    payments = list(billing.payments(organization).filter(customer=customer)
                    .order_by("-created_at", "-id"))
    found = list(refunds.refunds(organization)
                 .filter(Q(invoice__customer=customer) | Q(customer=customer))
                 .select_related("invoice", "package").order_by("-created_at", "-id"))
    for refund in found:
        refund.method_label = (Method(refund.method).label  # type: ignore[attr-defined]
                               if refund.method in Method.values else refund.method)
    owned = list(packages.packages(organization, customer=str(customer.pk))
                 .select_related("invoice"))
    cases = list(billing.cases(organization).filter(customer=customer))
    return render(request, "web/customer_overview.html", {
        "customer": customer, "organization": organization, "invoices": invoices,
        "payments": payments, "refunds": found, "packages": owned, "cases": cases,
        "balance_due_minor": sum(i.balance_due_minor for i in invoices),
        "may_write": _may_write(membership),
    })


# --- cases ----------------------------------------------------------------------------------

@page
@require_http_methods(["GET", "POST"])
def case_new(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    words = words_for(organization)
    customer = billing.get_customer(organization, customer_id)
    form = CaseForm(request.POST or None, words=words)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.create_case(actor=membership, customer=str(customer.pk),
                                        name=form.cleaned_data["name"])
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, f"Case {case.name} opened for {customer.name}.")
            return redirect("case_payments", case.pk)
    return render(request, "web/case_form.html", {
        "form": form, "customer": customer, "organization": organization,
    }, status=422 if form.errors else 200)


@require_safe
@page
def cases_list(request: HttpRequest, membership: Any) -> HttpResponse:
    organization = membership.organization
    query = request.GET.get("q", "").strip()[:200]
    found = billing.cases(organization).select_related("customer").order_by("-created_at", "-id")
    if query:
        found = found.filter(Q(name__icontains=query) | Q(customer__name__icontains=query))
    shown = list(found[:200])
    # Their invoices' count and balance due, grouped by case in one query (not annotated on
    # the cases: PostgreSQL keys them on (organization, id), which a GROUP BY id does not name).
    grouped = (billing.invoices(organization).filter(case__in=shown).order_by()
               .values("case_id").annotate(count=Count("id"), due=Sum("balance_due_minor")))
    figures: dict[int, dict[str, Any]] = {row["case_id"]: dict(row) for row in grouped}
    for case in shown:
        row: dict[str, Any] = figures.get(case.pk, {})
        case.invoice_count = row.get("count", 0)  # type: ignore[attr-defined]
        case.due_minor = row.get("due") or 0  # type: ignore[attr-defined]
    return render(request, "web/cases.html", {
        "cases": shown, "query": query, "organization": organization,
    })


def customer_url(customer: Customer) -> str:
    return reverse("customer", args=[customer.pk])


urlpatterns = [
    path("customers/new/", customer_new, name="customer_new"),
    path("customers/<int:customer_id>/", customer_overview, name="customer"),
    path("customers/<int:customer_id>/edit/", customer_edit, name="customer_edit"),
    path("customers/<int:customer_id>/cases/new/", case_new, name="case_new"),
    path("cases/", cases_list, name="cases"),
]
