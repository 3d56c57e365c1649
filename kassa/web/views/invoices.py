"""Invoices, payments and cases: the invoice overview, the payment details page with its refund
forms, and a case's payments tab (payment-refunds.txt, as the front desk knows it).

The refund forms only parse and label input: every rule (who may refund, how much, what a
method needs, one pending online refund at a time) is `refund_payment`'s, whose DomainError is
put back beside its field with the error's own status (422, 409, 403), so a refused form
changes nothing and says why where the user looks. With JavaScript the form is loaded into the
payment page and posted by htmx; without it the same addresses render and take the form as a
plain page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from kassa.billing import selectors as billing
from kassa.billing.models import Method, Payment, PaymentStatus
from kassa.core.errors import DomainError, PermissionDenied
from kassa.core.money import display
from kassa.packages import selectors as packages
from kassa.refunds import requests
from kassa.refunds import selectors as refunds
from kassa.refunds import services as refund_services
from kassa.refunds.models import OfflineMethod, Refund, RefundStatus, RefundType
from kassa.refunds.returns import RETURNABLE
from kassa.refunds.services import CREDIT
from kassa.tenancy.models import Role
from kassa.tenancy.services import REFUND_ROLE_WORDS, may_refund, require_refund_permission
from kassa.web.access import page
from kassa.web.forms import show_error, typed_amount
from kassa.web.preview import preview
from kassa.web.refund_door import REQUESTED, add_reason_code, review_of

# What the payment history calls each event; an unknown kind is shown as its words.
EVENT_LABELS = {
    "payment_started": "Charge started",
    "payment_processing": "Processor deciding",
    "payment_taken": "Payment received",
    "payment_declined": "Card declined",
    "payment_failed": "Payment failed",
    "charge_given_back": "Charge given back",
    "charge_retried": "Gateway asked again",
    "refund_issued": "Online refund issued",
    "refund_recorded": "Offline refund recorded",
    "refund_succeeded": "Online refund succeeded",
    "refund_failed": "Online refund failed",
    "refund_needs_attention": "Refund needs attention",
    "receipt_sent": "Receipt e-mailed",
    "dispute_opened": "Disputed by the bank",
    "dispute_won": "Dispute won",
    "dispute_lost": "Dispute lost",
    "dispute_settled": "Dispute settled",
    "payment_returned": "Returned by the bank",
}


class PaymentRefundForm(forms.Form):
    """The article's refund form. Fields are optional here on purpose: what is required (a
    reason, a method, a note for *other*) is the service's rule and its message."""

    amount = forms.CharField(
        label="Refund amount", required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    reason = forms.CharField(label="Reason for refund", required=False)
    method = forms.ChoiceField(
        label="Refund method", required=False,
        choices=[("", "Choose a method"), *OfflineMethod.choices,
                 (CREDIT, "Refund to account credit")])
    note = forms.CharField(label="Notes", required=False,
                           help_text="Required when the method is Other.",
                           widget=forms.Textarea(attrs={"rows": 2}))
    internal_note = forms.CharField(label="Internal notes", required=False,
                                    help_text="Optional; staff only, not on the receipt.",
                                    widget=forms.Textarea(attrs={"rows": 2}))
    decrease_balance_owed = forms.BooleanField(label="Decrease the balance owed", required=False)

    def __init__(self, *args: Any, kind: str, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        if kind == RefundType.ONLINE:  # an online refund goes back by the payment's own method
            del self.fields["method"]
            del self.fields["note"]
        add_reason_code(self, organization)


def refunds_are_made_by(organization: Any) -> str:
    who = " and ".join(REFUND_ROLE_WORDS.get(r, r) for r in organization.refund_roles)
    return f"Refunds are made by {who or 'administrators'} in this organization."


def _refund_url(payment: Payment, kind: str) -> str:
    return reverse(f"payment_refund_{kind}", args=[payment.pk])


def _labelled(found: list[Refund]) -> list[Refund]:
    """Refunds with their method as people read it ("Check", "ACH")."""
    for refund in found:
        refund.method_label = (Method(refund.method).label  # type: ignore[attr-defined]
                               if refund.method in Method.values else refund.method)
    return found


def _with_refunds(payments: list[Payment], found: list[Refund]) -> list[dict[str, Any]]:
    """Each payment beside its refunds, oldest first, for the tables."""
    by_payment: dict[int, list[Refund]] = {}
    for refund in found:
        if refund.payment_id is not None:
            by_payment.setdefault(refund.payment_id, []).append(refund)
    return [{"payment": p, "refunds": by_payment.get(p.pk, [])}
            for p in sorted(payments, key=lambda p: p.pk)]


@page
def invoice_detail(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    organization = membership.organization
    invoice = billing.get_invoice(organization, invoice_id)
    found = _labelled(list(refunds.find_refunds(organization, invoice=str(invoice.pk))
                           .select_related("package")))
    return render(request, "web/invoice.html", {
        "invoice": invoice, "organization": organization,
        "lines": invoice.lines.all(),
        "payments": _with_refunds(list(invoice.payments.all()), found),
        # Refunds of a package's balance paid out offline belong to no payment.
        "other_refunds": [r for r in found if r.payment_id is None],
        "packages": list(packages.packages(organization).filter(invoice=invoice)),
        "disputes": list(invoice.disputes.order_by("pk")),
        "may_refund": may_refund(membership),
        "may_write": membership.role != Role.ACCOUNTANT,
        # Counted in Refunded already (they have not failed), but not yet settled.
        "pending_minor": sum(r.total_minor for r in found if r.status == RefundStatus.PENDING),
    })


@page
def case_payments(request: HttpRequest, membership: Any, case_id: int) -> HttpResponse:
    organization = membership.organization
    case = billing.get_case(organization, case_id)
    found = _labelled(list(refunds.find_refunds(organization, case=str(case.pk))
                           .select_related("package")))
    invoices = (billing.invoices(organization).filter(case=case).order_by("id")
                .prefetch_related("payments"))
    rows = []
    for invoice in invoices:
        payments = sorted(invoice.payments.all(), key=lambda p: p.pk)
        # The three-dot menu's *Record refund*: the chooser of the invoice's payments.
        record_url = reverse("invoice_refund_chooser", args=[invoice.pk])
        rows.append({
            "invoice": invoice, "record_url": record_url if payments else None,
            "payments": _with_refunds(payments, [r for r in found if r.invoice_id == invoice.pk]),
            "other_refunds": [r for r in found
                              if r.invoice_id == invoice.pk and r.payment_id is None],
        })
    return render(request, "web/case_payments.html", {
        "case": case, "organization": organization, "rows": rows,
        "balance_due_minor": sum(invoice.balance_due_minor for invoice in invoices),
        "may_refund": may_refund(membership),
    })


@page
def refund_chooser(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    """*Record refund* from a case: the invoice's payments, each with the refunds it allows
    now, or why it allows none."""
    organization = membership.organization
    invoice = billing.get_invoice(organization, invoice_id)
    require_refund_permission(membership)
    rows = []
    for payment in sorted(invoice.payments.all(), key=lambda p: p.pk):
        blocked = ""
        if payment.status == PaymentStatus.PROCESSING:
            blocked = "The processor is still deciding this payment."
        elif payment.status != PaymentStatus.SUCCEEDED:
            blocked = "No money was received: nothing to refund."
        elif payment.refund_pending:
            blocked = "A refund of it is pending; no other can start until it settles."
        elif not payment.refundable_minor:
            blocked = "Refunded in full."
        rows.append({"payment": payment, "blocked": blocked,
                     "online_url": _refund_url(payment, RefundType.ONLINE)
                     if payment.online else "",
                     "offline_url": _refund_url(payment, RefundType.OFFLINE)})
    return render(request, "web/refund_chooser.html", {
        "invoice": invoice, "organization": organization, "rows": rows})


@page
def payment_detail(request: HttpRequest, membership: Any, payment_id: int) -> HttpResponse:
    payment = billing.get_payment(membership.organization, payment_id)
    return _payment_page(request, membership, payment)


def _payment_page(request: HttpRequest, membership: Any, payment: Payment, *,
                  form: PaymentRefundForm | None = None, refused: str = "",
                  status: int = 200, review: dict[str, Any] | None = None) -> HttpResponse:
    organization = membership.organization
    found = _labelled(list(refunds.find_refunds(organization, payment=str(payment.pk))
                           .select_related("package")))
    events = [{"event": e, "label": EVENT_LABELS.get(e.kind, e.kind.replace("_", " ").capitalize())}
              for e in payment.events.select_related("by")]
    return render(request, "web/payment.html", {
        "payment": payment, "organization": organization, "events": events, "refunds": found,
        "pending": [r for r in found if r.status == RefundStatus.PENDING],
        "poll_seconds": settings.KASSA_PENDING_POLL_SECONDS,
        # A payment refund takes back what the payment paid into packages, pro rata: a
        # package used or closed since gives back less, and Refundable says what is true now.
        "refundable_now": refund_services.refundable_now(payment),
        "may_refund": may_refund(membership),
        # A front desk that may not refund sees the action disabled, and who refunds instead.
        "refund_blocked": "" if may_refund(membership) or membership.role == Role.ACCOUNTANT
        else refunds_are_made_by(organization),
        # Who may ask (request_roles) sees *Request refund* instead (kassa.web.views.approvals).
        "may_request": not may_refund(membership) and membership.role != Role.ACCOUNTANT
        and membership.role in (organization.request_roles or []),
        "online_url": _refund_url(payment, RefundType.ONLINE),
        "offline_url": _refund_url(payment, RefundType.OFFLINE),
        "form": form, "refused": refused, "review": review,
        "disputes": list(payment.disputes.order_by("pk")),
        "returned": payment.returns.first(),
        "may_return": (membership.role == Role.ADMIN and payment.method in RETURNABLE
                       and payment.invoice_id is not None and payment.status == "succeeded"
                       and not payment.returns.exists()),
        **(_form_context(organization, payment, form) if form is not None else {}),
    }, status=status)


def _form_context(organization: Any, payment: Payment, form: PaymentRefundForm
                  ) -> dict[str, Any]:
    return {
        "form": form, "kind": form.kind, "action": _refund_url(payment, form.kind),
        "refundable": display(payment.refundable_minor, organization.currency,
                              organization.locale),
    }


@page
@require_http_methods(["GET", "POST"])
def payment_refund(request: HttpRequest, membership: Any, payment_id: int,
                   kind: str) -> HttpResponse:
    """GET: the *Issue online refund* / *Record offline refund* form (a partial for htmx, the
    payment page with the form open otherwise), its amount left for the person to type.
    POST: *Review refund* previews the refund through the service and states the money and its
    destination; *Confirm* refunds through the service; *Back* goes back to the form."""
    organization = membership.organization
    payment = billing.get_payment(organization, payment_id)
    if request.method == "GET":
        try:
            requests.require_refund_or_ask(membership)
        except PermissionDenied as exc:
            return _refused(request, membership, payment, exc)
        return _show_form(request, membership, payment,
                          PaymentRefundForm(kind=kind, organization=organization))

    form = PaymentRefundForm(request.POST, kind=kind, organization=organization)
    if not form.is_valid():
        return _show_form(request, membership, payment, form, status=422)
    if "back" in request.POST:
        return _show_form(request, membership, payment, form)
    data = form.cleaned_data

    to_credit = data.get("method") == CREDIT  # into the customer's credit: no tender

    def refund_now() -> tuple[str, Any]:
        # The API's one door: the policy's rules, then a refund, or a request for one.
        return requests.refund_or_request(actor=membership, kind="payment", target=payment.pk,
                                          body={
            "type": RefundType.CREDIT if to_credit else kind,
            "amount": typed_amount(data["amount"], organization),
            "reason": data["reason"], "internal_note": data["internal_note"],
            "method": None if to_credit else data.get("method") or None,
            "note": data.get("note", ""), "decrease_balance_owed": data["decrease_balance_owed"],
            "reason_code": data.get("reason_code") or None})

    try:
        if "confirm" not in request.POST:
            review = preview(refund_now, lambda made: review_of(made, _review_of))
            return _show_form(request, membership, payment, form, review=review)
        status, made = refund_now()
    except PermissionDenied as exc:
        return _refused(request, membership, payment, exc)
    except DomainError as exc:
        show_error(form, exc, organization=organization)
        return _show_form(request, membership, payment, form, status=exc.status)

    target = reverse("payment", args=[payment.pk])
    if status == "requested":
        messages.success(request, REQUESTED)
        return (HttpResponseClientRedirect(target) if request.htmx  # type: ignore[attr-defined]
                else HttpResponseRedirect(target))
    refund = made
    result = _review_of(refund)
    if refund.type == RefundType.ONLINE:
        messages.success(request, f"Online refund of {result['amount']} issued {result['to']}. "
                         "It is pending until the gateway settles it, which can take 24–48 "
                         "hours.")
    elif refund.type == RefundType.CREDIT:
        messages.success(request, f"Refund of {result['amount']} to account credit recorded "
                         f"{result['to']}: it pays the customer's next invoice, or is refunded "
                         "from their credit.")
    else:
        messages.success(request, f"Offline refund of {result['amount']} by "
                         f"{result['method'].lower()} recorded {result['to']}.")
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(target)
    return HttpResponseRedirect(target)


def _review_of(refund: Refund) -> dict[str, Any]:
    """What a refund does, in words and money, from the rows the service wrote (read inside
    the preview's transaction, or after the confirmed call)."""
    organization = refund.organization
    money = lambda minor: display(minor, organization.currency, organization.locale)  # noqa: E731
    assert refund.payment_id is not None
    payment = Payment.objects.select_related("invoice", "customer").get(pk=refund.payment_id)
    invoice = payment.invoice  # None for a deposit's payment
    if refund.type == RefundType.CREDIT:
        method = "Account credit"
    else:
        method = (Method(refund.method).label if refund.method in Method.values
                  else OfflineMethod(refund.method).label)
    if refund.type == RefundType.CREDIT:
        to = (f"to {payment.customer.name}'s account credit, from payment #{payment.pk}, for "
              "their next invoice")
    elif refund.type == RefundType.ONLINE:
        what = "bank account" if payment.method == Method.ACH else "card"
        to = (f"back to the {what} of payment #{payment.pk} "
              f"({money(payment.amount_minor)} on {payment.created_at:%Y-%m-%d})")
    else:
        to = (f"to {payment.customer.name}, given back by {method.lower()} outside Kassa, "
              f"against payment #{payment.pk}")
    return {
        "amount": money(refund.amount_minor), "amount_minor": refund.amount_minor,
        "method": method, "online": refund.type == RefundType.ONLINE, "to": to,
        "decrease_balance_owed": refund.decrease_balance_owed,
        "invoice_number": invoice.number if invoice else "", "customer": payment.customer.name,
        "balance_due_after": money(invoice.balance_due_minor) if invoice else "",
        "refundable_after": money(payment.refundable_minor),
    }


def _wants_partial(request: HttpRequest) -> bool:
    """htmx swaps a partial into the page; but restoring a pushed URL from history, it needs
    the whole page, as does a browser without JavaScript."""
    htmx = request.htmx  # type: ignore[attr-defined]
    return bool(htmx) and not htmx.history_restore_request


def _show_form(request: HttpRequest, membership: Any, payment: Payment,
               form: PaymentRefundForm, *, status: int = 200,
               review: dict[str, Any] | None = None) -> HttpResponse:
    if _wants_partial(request):
        response = render(request, "web/partials/refund_form.html",
                          {"payment": payment, "organization": membership.organization,
                           **_form_context(membership.organization, payment, form),
                           "review": review},
                          status=status)
    else:
        response = _payment_page(request, membership, payment, form=form, status=status,
                                 review=review)
    patch_vary_headers(response, ["HX-Request"])  # one address, two bodies: caches must know
    return response


def _refused(request: HttpRequest, membership: Any, payment: Payment,
             error: DomainError) -> HttpResponse:
    """403 with the rule's message; nothing was changed."""
    if _wants_partial(request):
        return render(request, "web/partials/refund_refused.html", {"message": error.detail},
                      status=403)
    return _payment_page(request, membership, payment, refused=error.detail, status=403)


# A page with a pending refund asks every so often whether it settled, a bounded number of
# times (an hour at the default), then says to reload later.
POLLS = 360


@page
def pending_poll(request: HttpRequest, membership: Any, payment_id: int) -> HttpResponse:
    """htmx's poll of a payment page with a pending refund: the same poller while it is
    pending (counting), a full reload once it is not (the page then shows its new status)."""
    payment = billing.get_payment(membership.organization, payment_id)
    try:
        count = min(max(int(request.GET.get("n", "1")), 1), POLLS)
    except ValueError:
        count = POLLS
    if not payment.refund_pending:
        response = HttpResponse(status=200)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "web/partials/pending_poll.html", {
        "payment": payment, "next": count + 1, "more": count < POLLS,
        "seconds": settings.KASSA_PENDING_POLL_SECONDS})


urlpatterns = [
    path("invoices/<int:invoice_id>/", invoice_detail, name="invoice"),
    path("payments/<int:payment_id>/pending/", pending_poll, name="payment_pending_poll"),
    path("payments/<int:payment_id>/", payment_detail, name="payment"),
    path("payments/<int:payment_id>/refund/online/", payment_refund,
         {"kind": RefundType.ONLINE.value}, name="payment_refund_online"),
    path("payments/<int:payment_id>/refund/offline/", payment_refund,
         {"kind": RefundType.OFFLINE.value}, name="payment_refund_offline"),
    path("cases/<int:case_id>/payments/", case_payments, name="case_payments"),
    path("invoices/<int:invoice_id>/record-refund/", refund_chooser,
         name="invoice_refund_chooser"),
]
