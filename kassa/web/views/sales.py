"""Writing an invoice and taking a payment on it, in the browser.

*New invoice* has a row per line (service, product or package; a package line picks one of the
organization's package templates, whose name, price and tax rate it takes unless the row says
otherwise); rows left empty are not lines. `issue_invoice` sees the lines whole: its message
about `lines[i].unit_price` goes beside that row's field.

*Take payment* is the review screen of a payment: step 1 parses the amount and the method,
step 2 states what will happen ("Take $50.00 by card through the gateway on invoice 1001") and
only *Confirm* calls `take_payment`, once; *Back* and *Cancel* send nothing. The rules (at most
the balance due, an online payment by card or ACH, a declined card) are the service's, shown
beside the field they concern.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods

from kassa.billing import selectors as billing
from kassa.billing import services
from kassa.billing.inputs import LineInput
from kassa.billing.models import ONLINE_METHODS, LineKind, Method, PaymentStatus
from kassa.core.errors import DomainError, NotFound, PermissionDenied
from kassa.core.money import display, format_decimal_string, parse_amount
from kassa.gateways.registry import current_gateway
from kassa.packages import selectors as packages
from kassa.tenancy.selectors import centers
from kassa.tenancy.services import require_writer
from kassa.web.access import page
from kassa.web.forms import amount_error_message, show_error, typed_amount

LINE_ROWS = 6
# What the sandbox's test sources do, as the front desk picks one (gateways/sandbox.py).
SANDBOX_SOURCES = [
    ("sandbox_ok", "Test card that succeeds"),
    ("sandbox_declined", "Test card that is declined"),
    ("sandbox_processing", "Test account the bank takes days to decide"),
    ("sandbox_refund_fails", "Test card whose refunds fail"),
]


class PlainForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class LineForm(PlainForm):
    kind = forms.ChoiceField(label="Kind", choices=LineKind.choices, initial=LineKind.SERVICE)
    package_template = forms.ChoiceField(label="Package template", required=False)
    description = forms.CharField(label="Description", max_length=200, required=False)
    quantity = forms.IntegerField(label="Qty", min_value=1, max_value=10_000, initial=1,
                                  required=False)
    unit_price = forms.CharField(label="Unit price", max_length=40, required=False,
                                 widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                               "autocomplete": "off"}))
    tax_rate = forms.CharField(label="Tax %", max_length=12, required=False,
                               widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                             "autocomplete": "off"}))

    def __init__(self, *args: Any, templates: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice = self.fields["package_template"]
        assert isinstance(choice, forms.ChoiceField)
        choice.choices = [("", "—"), *((str(t.pk), t.name) for t in templates)]
        choice.widget.attrs["data-template-pick"] = ""

    def is_used(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("description") or data.get("unit_price")
                    or data.get("package_template"))


class InvoiceHeadForm(PlainForm):
    center = forms.ChoiceField(label="Center")
    case = forms.ChoiceField(label="Case", required=False)

    def __init__(self, *args: Any, center_choices: list[tuple[str, str]],
                 case_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        center = self.fields["center"]
        case = self.fields["case"]
        assert isinstance(center, forms.ChoiceField) and isinstance(case, forms.ChoiceField)
        center.choices = center_choices
        case.choices = [("", "No case"), *case_choices]


LINE_FIELD = re.compile(r"lines\[(\d+)\]\.(\w+)")


@page
@require_http_methods(["GET", "POST"])
def invoice_new(request: HttpRequest, membership: Any) -> HttpResponse:
    organization = membership.organization
    source = request.POST if request.method == "POST" else request.GET
    customer = billing.get_customer(organization, source.get("customer", ""))
    require_writer(membership)
    templates = list(packages.templates(organization))
    where = [(str(c.pk), c.name) for c in centers(organization)]
    cases = [(str(c.pk), c.name) for c in billing.cases(organization).filter(customer=customer)]
    data = request.POST if request.method == "POST" else None
    head = InvoiceHeadForm(data, center_choices=where, case_choices=cases,
                           initial={"case": request.GET.get("case", "")})
    rows = [LineForm(data, prefix=f"line-{i}", templates=templates)
            for i in range(LINE_ROWS)]
    status = 200
    if data is not None:
        status = 422
        valid = head.is_valid() & all([row.is_valid() for row in rows])
        used = [row for row in rows if valid and row.is_used()]
        if valid and not used:
            head.add_error(None, "Write at least one line: a description and a unit price, "
                                 "or a package template.")
        elif valid:
            lines = [_line_input(row, organization) for row in used]
            try:
                invoice = services.issue_invoice(
                    actor=membership, customer=str(customer.pk),
                    center=head.cleaned_data["center"], case=head.cleaned_data["case"] or None,
                    lines=lines)
            except (NotFound, PermissionDenied):
                raise
            except DomainError as error:
                _show_line_error(error, head, used)
            else:
                messages.success(request, f"Invoice {invoice.number} written for "
                                          f"{customer.name}: "
                                          f"{_money(invoice.total_minor, organization)} due.")
                return redirect("invoice", invoice.pk)
    return render(request, "web/invoice_form.html", {
        "organization": organization, "customer": customer, "head": head, "rows": rows,
        "templates": templates, "show_case": bool(cases),
    }, status=status)


def _line_input(row: LineForm, organization: Any) -> LineInput:
    data = row.cleaned_data
    template = data.get("package_template") or None
    kind = data["kind"]
    if template and kind != LineKind.PACKAGE:
        kind = LineKind.PACKAGE  # a template picked is a package sold
    description = data.get("description") or ""
    if not description and template:
        description = dict(row.fields["package_template"].choices).get(  # type: ignore[attr-defined]
            template, "")
    return LineInput(
        kind=kind, description=description, quantity=data.get("quantity") or 1,
        unit_price=typed_amount(data["unit_price"], organization) if data.get("unit_price")
        else None,
        tax_rate=(data.get("tax_rate") or "").removesuffix("%").strip() or None,
        package_template=template)


def _show_line_error(error: DomainError, head: InvoiceHeadForm, used: list[LineForm]) -> None:
    message = getattr(error, "message", None) or error.detail
    found = LINE_FIELD.fullmatch(error.field or "")
    if found and int(found.group(1)) < len(used):
        row = used[int(found.group(1))]
        name = found.group(2)
        if name in row.fields:
            row.add_error(name, _sentence(row.fields[name].label, message))
            return
    show_error(head, error, fields={"lines": ""})


def _sentence(label: Any, message: str) -> str:
    """A service's terse field message ("is required") as a sentence that names the field."""
    if message[:1].islower():
        return f"{label} {message}."
    return message


def _money(minor: int, organization: Any) -> str:
    return display(minor, organization.currency, organization.locale)


# --- taking a payment -------------------------------------------------------------------------

class PaymentForm(PlainForm):
    amount = forms.CharField(label="Amount", max_length=40, widget=forms.TextInput(
        attrs={"inputmode": "decimal", "autocomplete": "off"}))
    method = forms.ChoiceField(label="Method", choices=Method.choices, widget=forms.RadioSelect,
                               error_messages={"required": "Choose how the payment is made."})
    source = forms.ChoiceField(
        label="Card or account", required=False, choices=SANDBOX_SOURCES,
        help_text="Card and ACH payments are charged online through the payment gateway.")
    excess_to_credit = forms.BooleanField(
        label="Keep the excess as credit", required=False,
        help_text="The amount may be more than the balance due: the rest is kept as the "
                  "customer's account credit (an insurance check larger than the statement).")

    def __init__(self, *args: Any, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization
        if current_gateway().name != "sandbox":
            self.fields["source"] = forms.CharField(
                label="Payment method id", required=False, max_length=200,
                help_text="The processor's id of the card, such as pm_card_visa.")

    def clean_amount(self) -> str:
        amount = typed_amount(self.cleaned_data["amount"], self.organization)
        try:
            self.amount_minor = parse_amount(amount, self.organization.currency)
        except DomainError as error:
            raise forms.ValidationError(amount_error_message(error, self.organization)) from None
        return amount


@page
@require_http_methods(["GET", "POST"])
def invoice_pay(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    organization = membership.organization
    invoice = billing.get_invoice(organization, invoice_id)
    require_writer(membership)
    if request.method == "GET":
        # The balance due, as Square's review screen starts: the review states it again.
        form = PaymentForm(organization=organization, initial={
            "amount": format_decimal_string(invoice.balance_due_minor, organization.currency),
            "method": Method.CARD})
        return _pay_page(request, invoice, form, step="form")
    form = PaymentForm(request.POST, organization=organization)
    if "back" in request.POST or not form.is_valid():
        return _pay_page(request, invoice, form, step="form",
                         status=200 if "back" in request.POST else 422)
    if "confirm" not in request.POST:
        return _pay_page(request, invoice, form, step="review")
    method = form.cleaned_data["method"]
    online = method in ONLINE_METHODS
    try:
        payment = services.take_payment(
            actor=membership, invoice=str(invoice.pk), amount=form.cleaned_data["amount"],
            method=method, online=online,
            source=(form.cleaned_data.get("source") or None) if online else None,
            excess_to_credit=form.cleaned_data.get("excess_to_credit", False))
    except (NotFound, PermissionDenied):
        raise
    except DomainError as error:
        show_error(form, error, organization=organization)
        return _pay_page(request, invoice, form, step="form", status=error.status)
    invoice.refresh_from_db()
    amount = _money(payment.amount_minor, organization)
    due = _money(invoice.balance_due_minor, organization)
    if payment.status == PaymentStatus.PROCESSING:
        messages.info(request, f"Payment #{payment.pk} of {amount} by "
                               f"{payment.get_method_display()} is processing: the bank has not "
                               f"decided yet. It counts once it succeeds.")
    else:
        kept = (f" {_money(payment.to_credit_minor, organization)} of it is kept as "
                f"{invoice.customer.name}'s account credit." if payment.to_credit_minor else "")
        how = ("paid from account credit" if payment.method == Method.CREDIT
               else f"by {payment.get_method_display().lower()} received")
        messages.success(request, f"Payment #{payment.pk} of {amount} {how} on invoice "
                                  f"{invoice.number}. Balance due now {due}.{kept}")
    return redirect("payment", payment.pk)


def _pay_page(request: HttpRequest, invoice: Any, form: PaymentForm, *, step: str,
              status: int = 200) -> HttpResponse:
    organization = invoice.organization
    context: dict[str, Any] = {"invoice": invoice, "organization": organization, "form": form,
                               "step": step, "online_methods": [m.value for m in ONLINE_METHODS],
                               "credit_method": Method.CREDIT.value,
                               "credit_minor": invoice.customer.credit_minor}
    if step == "review":
        method = form.cleaned_data["method"]
        online = method in ONLINE_METHODS
        source = form.cleaned_data.get("source") or ""
        amount_minor = form.amount_minor
        excess = (max(amount_minor - invoice.balance_due_minor, 0)
                  if form.cleaned_data.get("excess_to_credit") else 0)
        context.update({
            "amount_minor": amount_minor, "method_label": Method(method).label,
            "from_credit": method == Method.CREDIT, "excess_minor": excess,
            "online": online, "source_label": dict(SANDBOX_SOURCES).get(source, source),
            "due_after_minor": invoice.balance_due_minor - amount_minor + excess,
        })
    return render(request, "web/invoice_pay.html", context, status=status)


urlpatterns = [
    path("invoices/new/", invoice_new, name="invoice_new"),
    path("invoices/<int:invoice_id>/pay/", invoice_pay, name="invoice_pay"),
]

