"""The guest profile's Packages tab and the Refund Invoice window of package-refunds.txt.

The profile lists the guest's packages with their balance breakdown, a *Redeem* form per
benefit and a refund icon per active package. The icon opens the Refund Invoice window on the
same page (`?refund=<package>`), in the article's two steps:

1. *Select items* — package, refund amount, comments, *Mark package 'Closed'* — only parses
   its input and moves on: every rule belongs to `refund_package`, which sees the refund whole
   when it is made.
2. *Payment methods* carries step 1's values in hidden fields, previews the tax that goes back
   with the amount (`refund_tax`), and *Refund* calls `refund_package` once. A refusal is shown
   beside the field it names, on the step that field belongs to (the amount on *Select items*,
   the method or note on *Payment methods*); the service wrote nothing.

Success redirects (POST, redirect, GET) to the profile with `?refunded=<refund>`, which shows
the refund's status and the revised package balance, so a reload never refunds twice.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST, require_safe

from kassa.billing import selectors as billing
from kassa.billing.models import Customer, Invoice, Payment, PaymentStatus
from kassa.core.errors import DomainError, NotFound, PermissionDenied
from kassa.core.money import display, parse_amount
from kassa.packages import selectors
from kassa.packages.models import Package, PackageStatus
from kassa.packages.services import redeem_benefit, refund_tax
from kassa.refunds import requests
from kassa.refunds.models import OfflineMethod, Refund, RefundType
from kassa.refunds.selectors import get_refund
from kassa.refunds.selectors import refunds as refunds_of
from kassa.refunds.services import CREDIT, PACKAGE_REFUND_METHODS
from kassa.tenancy.services import may_refund, require_writer
from kassa.web.access import page
from kassa.web.forms import amount_error_message, show_error, typed_amount
from kassa.web.preview import preview
from kassa.web.reasons import plain_reason
from kassa.web.refund_door import REQUESTED, add_reason_code, review_of
from kassa.web.templatetags.money import balance as package_balance

ONLINE_PREFIX = "payment:"
# The service names fields as the API does; the Payment methods form has two of them.
METHOD_FIELDS = {"refund_to.payment": "refund_to", "refund_to.method": "refund_to",
                 "refund_to.note": "note"}


class SelectItemsForm(forms.Form):
    package = forms.ChoiceField(label="Package")
    amount = forms.CharField(label="Refund amount", max_length=32, help_text=(
        "At most the package balance that remains; the tax received on it goes back with it."),
                             widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                           "autocomplete": "off"}))
    reason = forms.CharField(label="Comments", max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3}))
    close_package = forms.BooleanField(label="Mark package 'Closed'", required=False, help_text=(
        "No more redemptions; what balance remains after the refund is forfeited."))

    def __init__(self, *args: Any, packages: list[Package], organization: Any,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization
        add_reason_code(self, organization)
        package = self.fields["package"]
        assert isinstance(package, forms.ChoiceField)
        package.choices = [
            (str(p.pk), f"{p.name} · invoice {p.invoice.number} · balance "
                        f"{display(p.balance_minor, organization.currency, organization.locale)}"
                        + (" · closed" if p.status == PackageStatus.CLOSED else ""))
            for p in packages]

    def clean_amount(self) -> str:
        # Parsing only (a number at the currency's precision, above zero): whether the package
        # can give it back is the service's to say, at the end.
        amount = self.cleaned_data["amount"]
        try:
            self.amount_minor = parse_amount(typed_amount(amount, self.organization),
                                             self.organization.currency)
        except DomainError as error:
            raise forms.ValidationError(amount_error_message(error, self.organization)) from None
        return amount


class PaymentMethodForm(forms.Form):
    refund_to = forms.ChoiceField(label="Refund to", widget=forms.RadioSelect, error_messages={
        "required": "Choose how the money goes back: to a card payment, or by cash, check or "
                    "other."})
    note = forms.CharField(label="Note", required=False, max_length=2000,
                           help_text="Required when the method is Other.",
                           widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, online_payments: list[Payment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        refund_to = self.fields["refund_to"]
        assert isinstance(refund_to, forms.ChoiceField)
        refund_to.choices = (
            [(f"{ONLINE_PREFIX}{p.pk}", f"Online to payment {p.pk}") for p in online_payments]
            + [(m.value, m.label) for m in PACKAGE_REFUND_METHODS]
            + [(CREDIT, "Account credit")])


class RedeemForm(forms.Form):
    benefit = forms.CharField(max_length=20, widget=forms.HiddenInput)
    quantity = forms.IntegerField(label="Quantity", min_value=1, max_value=10_000)


# --- pages ----------------------------------------------------------------------------------

@require_safe
@page
def guest_packages(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    organization = membership.organization
    guest = billing.get_customer(organization, customer_id)
    packages = _packages(organization, guest)
    window: dict[str, Any] | None = None
    if "refund" in request.GET:
        requests.require_refund_or_ask(membership)
        chosen = _package_of(packages, request.GET["refund"])
        window = {"step": "select", "form": SelectItemsForm(
            initial={"package": str(chosen.pk)}, packages=packages, organization=organization)}
    elif "refunded" in request.GET:
        refund = get_refund(organization, request.GET["refunded"])
        if refund.package_id is None:
            raise NotFound("No such package refund")
        window = {"step": "done", "refund": refund,
                  "package": _package_of(packages, refund.package_id)}
    return _render(request, membership, guest, packages, window=window)


@require_POST
@page
def refund_select(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    """Step 1, *Proceed to refund*: parse, then show *Payment methods*."""
    organization = membership.organization
    guest = billing.get_customer(organization, customer_id)
    requests.require_refund_or_ask(membership)
    packages = _packages(organization, guest)
    select = SelectItemsForm(request.POST, packages=packages, organization=organization)
    if not select.is_valid():
        return _render(request, membership, guest, packages,
                       window={"step": "select", "form": select})
    pkg = _package_of(packages, select.cleaned_data["package"])
    # The package's own rules (the amount within its balance, one refund only, a closed or
    # negative package) are checked now, by the service itself, with a stand-in payout by
    # cash: what belongs to the payout (a pending card refund, a note) is step 2's to say.
    try:
        preview(lambda: _refund(membership, pkg, select, refund_to=OfflineMethod.CASH.value,
                                note=""), lambda refund: None)
    except (NotFound, PermissionDenied):
        raise
    except DomainError as error:
        if not (error.field or "").startswith("refund_to"):
            show_error(select, error, organization=organization)
            return _render(request, membership, guest, packages,
                           window={"step": "select", "form": select})
    online = _online_payments(organization, pkg)
    return _render(request, membership, guest, packages,
                   window=_methods_window(select, pkg, PaymentMethodForm(online_payments=online),
                                          online))


@require_POST
@page
def refund_pay(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    """Step 2, *Refund*: one call of the service; a refusal goes back to its step."""
    organization = membership.organization
    guest = billing.get_customer(organization, customer_id)
    requests.require_refund_or_ask(membership)
    packages = _packages(organization, guest)
    select = SelectItemsForm(request.POST, packages=packages, organization=organization)
    if "back" in request.POST or not select.is_valid():
        return _render(request, membership, guest, packages,
                       window={"step": "select", "form": select})
    pkg = _package_of(packages, select.cleaned_data["package"])
    online = _online_payments(organization, pkg)
    method_form = PaymentMethodForm(request.POST, online_payments=online)
    if "back_to_methods" in request.POST or not method_form.is_valid():
        return _render(request, membership, guest, packages,
                       window=_methods_window(select, pkg, method_form, online))
    refund_to = method_form.cleaned_data["refund_to"]
    note = method_form.cleaned_data["note"]
    before = _figures(pkg)
    try:
        if "confirm" not in request.POST:
            # Step 3, the review: what the service would do, stated before it is done.
            review = preview(lambda: _refund(membership, pkg, select, refund_to=refund_to,
                                             note=note),
                             lambda made: review_of(made, lambda r: _review_of(r, before)))
            return _render(request, membership, guest, packages, window={
                **_methods_window(select, pkg, method_form, online), "step": "review",
                "review": review})
        status, refund = _refund(membership, pkg, select, refund_to=refund_to, note=note)
    except (NotFound, PermissionDenied):
        raise
    except DomainError as error:
        if (error.field or "").startswith("refund_to"):
            show_error(method_form, error, fields=METHOD_FIELDS, organization=organization)
            return _render(request, membership, guest, packages,
                           window=_methods_window(select, pkg, method_form, online))
        show_error(select, error, organization=organization)
        return _render(request, membership, guest, packages,
                       window={"step": "select", "form": select})
    if status == "requested":
        messages.success(request, REQUESTED)
        return redirect("guest_packages", guest.pk)
    result = _review_of(refund, before)
    messages.success(request, f"Refunded {result['total']} of {pkg.name} {result['to']}."
                     + (f" {result['forfeit_sentence']}" if result["forfeit_sentence"] else ""))
    return redirect(f"{reverse('guest_packages', args=[guest.pk])}?refunded={refund.pk}#refund")


def _refund(membership: Any, pkg: Package, select: SelectItemsForm, *, refund_to: str,
            note: str) -> tuple[str, Any]:
    """The API's one door: the policy's rules, then the refund, or a request for it."""
    online_to = refund_to.removeprefix(ONLINE_PREFIX) if refund_to.startswith(
        ONLINE_PREFIX) else None
    return requests.refund_or_request(actor=membership, kind="package", target=pkg.pk, body={
        "amount": typed_amount(select.cleaned_data["amount"], membership.organization),
        "reason": select.cleaned_data["reason"],
        "close_package": select.cleaned_data["close_package"], "refund_to_payment": online_to,
        "method": None if online_to or refund_to == CREDIT else refund_to, "note": note,
        "to_credit": refund_to == CREDIT,
        "reason_code": select.cleaned_data.get("reason_code") or None})


def _figures(pkg: Package) -> dict[str, int]:
    invoice = Invoice.objects.get(pk=pkg.invoice_id)
    return {"forfeited": pkg.forfeited_minor, "credits": invoice.credits_minor}


def _review_of(refund: Refund, before: dict[str, int]) -> dict[str, Any]:
    """The refund in words and money, from the rows the service wrote: where it goes, what is
    forfeited and what still owed is cancelled when the package closes, the balances after."""
    organization = refund.organization
    money = lambda minor: display(minor, organization.currency, organization.locale)  # noqa: E731
    assert refund.package_id is not None and refund.invoice_id is not None  # a package's
    pkg = Package.objects.select_related("line").get(pk=refund.package_id)
    invoice = Invoice.objects.select_related("customer").get(pk=refund.invoice_id)
    if refund.type == RefundType.CREDIT:
        to = f"to {invoice.customer.name}'s account credit, for their next invoice"
    elif refund.payment_id:
        payment = Payment.objects.get(pk=refund.payment_id)
        what = "bank account" if payment.method == "ach" else "card"
        to = f"back to the {what} of payment #{payment.pk}, through the payment gateway"
    else:
        to = (f"to {invoice.customer.name} by {OfflineMethod(refund.method).label.lower()}, "
              "given outside Kassa")
    forfeited = pkg.forfeited_minor - before["forfeited"]
    cancelled = invoice.credits_minor - before["credits"] - refund.total_minor
    parts = []
    if forfeited:
        parts.append(f"{money(forfeited)} will be forfeited")
    if cancelled:
        parts.append(f"the {money(cancelled)} still owed on invoice {invoice.number} cancelled")
    sentence = " and ".join(parts)
    return {
        "amount": money(refund.amount_minor), "tax": money(refund.tax_minor),
        "total": money(refund.total_minor), "to": to, "online": refund.type == RefundType.ONLINE,
        "tax_minor": refund.tax_minor,
        "forfeit_sentence": f"{sentence[:1].upper()}{sentence[1:]}." if sentence else "",
        "balance_after_minor": pkg.balance_minor, "closes": pkg.status == PackageStatus.CLOSED,
        "invoice_number": invoice.number, "balance_due_after": money(invoice.balance_due_minor),
    }


@require_POST
@page
def redeem(request: HttpRequest, membership: Any, customer_id: int,
           package_id: int) -> HttpResponse:
    organization = membership.organization
    guest = billing.get_customer(organization, customer_id)
    packages = _packages(organization, guest)
    pkg = _package_of(packages, package_id)
    names = {str(b.pk): b.name for b in pkg.benefits.all()}
    form = RedeemForm(request.POST)
    if form.is_valid():
        def redeem_now() -> Package:
            return redeem_benefit(actor=membership, package=pkg.pk,
                                  benefit=form.cleaned_data["benefit"],
                                  quantity=form.cleaned_data["quantity"])

        try:
            # A redemption beyond what is paid leaves the package owing: said, then confirmed.
            after = None if "confirm" in request.POST else preview(
                redeem_now, lambda done: done.balance_minor)
            if after is not None and after < 0:
                return _render(request, membership, guest, packages, redeem_review={
                    "package": pkg, "benefit": form.cleaned_data["benefit"],
                    "name": names.get(form.cleaned_data["benefit"], "benefit"),
                    "quantity": form.cleaned_data["quantity"], "balance_after_minor": after,
                    "value_minor": pkg.balance_minor - after})
            pkg = redeem_now()
        except (NotFound, PermissionDenied):
            raise
        except DomainError as error:
            show_error(form, error, fields={"benefit": "quantity"})
        else:
            balance = package_balance(pkg.balance_minor, organization)
            messages.success(request, f"Redeemed {form.cleaned_data['quantity']} × "
                                      f"{names.get(form.cleaned_data['benefit'], 'benefit')} "
                                      f"from {pkg.name}. Package balance: {balance}")
            return redirect(f"{reverse('guest_packages', args=[guest.pk])}#package-{pkg.pk}")
    return _render(request, membership, guest, packages,
                   redeem_form=form, redeem_benefit=request.POST.get("benefit", ""))


# --- helpers --------------------------------------------------------------------------------

def _packages(organization: Any, guest: Customer) -> list[Package]:
    return list(selectors.packages(organization, customer=str(guest.pk))
                .select_related("invoice"))


def _package_of(packages: list[Package], package_id: object) -> Package:
    """One of this guest's packages; any other id is a 404, whoever's it is."""
    for pkg in packages:
        if str(pkg.pk) == str(package_id):
            return pkg
    raise NotFound("No such package for this customer")


def _online_payments(organization: Any, pkg: Package) -> list[Payment]:
    return list(billing.payments(organization).filter(invoice_id=pkg.invoice_id, online=True,
                                                      status=PaymentStatus.SUCCEEDED)
                .order_by("created_at", "id"))


def _methods_window(select: SelectItemsForm, pkg: Package, method_form: PaymentMethodForm,
                    online: list[Payment]) -> dict[str, Any]:
    amount_minor = select.amount_minor
    tax_minor = refund_tax(pkg, amount_minor)
    return {"step": "methods", "form": select, "method_form": method_form, "package": pkg,
            "online_choices": [(f"{ONLINE_PREFIX}{p.pk}", p) for p in online],
            "offline_methods": PACKAGE_REFUND_METHODS,
            "credit_method": CREDIT,
            "amount_minor": amount_minor, "tax_minor": tax_minor,
            "total_minor": amount_minor + tax_minor}


def _render(request: HttpRequest, membership: Any, guest: Customer, packages: list[Package],
            *, window: dict[str, Any] | None = None, redeem_form: RedeemForm | None = None,
            redeem_benefit: str = "", redeem_review: dict[str, Any] | None = None
            ) -> HttpResponse:
    try:
        require_writer(membership)
        may_redeem = True
    except PermissionDenied:
        may_redeem = False
    # Each card's history: the package's own events, then its refunds (with a failure's
    # reason in plain words), oldest first.
    by_package: dict[int, list[Refund]] = {}
    for refund in (refunds_of(membership.organization).filter(package__in=packages)
                   .order_by("created_at", "id")):
        assert refund.package_id is not None
        by_package.setdefault(refund.package_id, []).append(refund)
    for pkg in packages:
        events = selectors.package_history(pkg)
        for refund in by_package.get(pkg.pk, []):
            events.append({
                "at": refund.created_at, "kind": f"refund_{refund.status}",
                "label": f"Refund #{refund.pk} {refund.get_status_display().lower()}",
                "amount_minor": refund.total_minor,
                "detail": (f"{plain_reason(refund.failure_reason)}. The balance is back."
                           if refund.status == "failed" else refund.reason)})
        pkg.history = sorted(events, key=lambda e: e["at"])  # type: ignore[attr-defined]
        pkg.failed_refunds = [r for r in by_package.get(pkg.pk, [])  # type: ignore[attr-defined]
                              if r.status == "failed"]
    return render(request, "web/guest_packages.html", {
        "guest": guest, "packages": packages, "organization": membership.organization,
        # Who may ask for refunds (request_roles) opens the window too: theirs become requests.
        "may_refund": may_refund(membership) or requests.may_ask(membership),
        "may_redeem": may_redeem, "window": window,
        "redeem_form": redeem_form, "redeem_benefit": redeem_benefit,
        "redeem_review": redeem_review,
    })


urlpatterns = [
    path("customers/<int:customer_id>/packages/", guest_packages, name="guest_packages"),
    path("customers/<int:customer_id>/packages/refund/select/", refund_select,
         name="package_refund_select"),
    path("customers/<int:customer_id>/packages/refund/pay/", refund_pay,
         name="package_refund_pay"),
    path("customers/<int:customer_id>/packages/<int:package_id>/redeem/", redeem,
         name="package_redeem"),
]
