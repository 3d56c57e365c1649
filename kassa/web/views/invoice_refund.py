"""*Refund invoice*: one refund across the invoice's payments — part to the card, part in cash,
part to account credit — with a live total, all or nothing.

The page parses and labels; `refund_invoice` checks every part under the locks before it writes
any, and its error names the part (`parts[1].amount`), which is shown beside that payment's row.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from kassa.billing import selectors as billing
from kassa.billing.models import Invoice, Method, Payment, PaymentStatus
from kassa.core.errors import DomainError
from kassa.core.money import display
from kassa.refunds import requests
from kassa.refunds.models import OfflineMethod, Refund, RefundType
from kassa.web.access import page
from kassa.web.preview import preview
from kassa.web.refund_door import REASON_CODE, REQUESTED, reason_code_choices, review_of

PART_FIELD = re.compile(r"parts\[(\d+)\]\.(\w+)")


def _destinations(payment: Payment) -> list[tuple[str, str]]:
    """Where a part of this payment may go, as `type:method` values."""
    if payment.method == Method.CREDIT:
        return [("credit:", "Back to account credit")]
    offline = [(f"offline:{m.value}", f"{m.label} (recorded offline)") for m in OfflineMethod]
    if payment.online:
        return [("online:", f"Online, back to the {payment.get_method_display().lower()}"),
                *offline, ("credit:", "To account credit")]
    return [*offline, ("credit:", "To account credit")]


def _rows(invoice: Invoice, posted: Any = None) -> list[dict[str, Any]]:
    payments = [p for p in invoice.payments.order_by("pk")
                if p.status == PaymentStatus.SUCCEEDED and p.refundable_minor > 0]
    rows = []
    for p in payments:
        choices = _destinations(p)
        rows.append({
            "payment": p, "choices": choices,
            "amount": (posted.get(f"amount-{p.pk}", "") if posted else ""),
            "destination": (posted.get(f"destination-{p.pk}", choices[0][0]) if posted
                            else choices[0][0]),
            "errors": []})
    return rows


def _way(refund: Refund, money: Any) -> str:
    """Where one part goes, as the review and the result say it."""
    to = (f"back to the card of payment #{refund.payment_id}"
          if refund.type == RefundType.ONLINE else "to account credit"
          if refund.type == RefundType.CREDIT else f"by {refund.method}")
    return f"{money(refund.total_minor)} {to}"


def _review(refunds: list[Refund], organization: Any) -> dict[str, Any]:
    money = lambda minor: display(minor, organization.currency, organization.locale)  # noqa: E731
    invoice = refunds[0].invoice  # as the refund leaves it
    assert invoice is not None
    return {"total": money(sum(r.total_minor for r in refunds)),
            "parts": [_way(r, money) for r in refunds],
            "online": any(r.type == RefundType.ONLINE for r in refunds),
            "balance_due_after": money(invoice.balance_due_minor)}


def _render(request: HttpRequest, membership: Any, invoice: Invoice, rows: list[dict[str, Any]],
            *, error: str = "", posted: Any = None, status: int = 200,
            review: dict[str, Any] | None = None,
            field_errors: dict[str, str] | None = None) -> HttpResponse:
    organization = membership.organization
    return render(request, "web/invoice_refund.html", {
        "invoice": invoice, "organization": organization, "rows": rows, "error": error,
        "review": review,
        # What the confirm form posts again, as the person typed it.
        "posted_fields": [(k, v) for k, v in (posted or {}).items()
                          if k not in ("csrfmiddlewaretoken", "confirm")],
        "reason": (posted or {}).get("reason", ""),
        "internal_note": (posted or {}).get("internal_note", ""),
        "note": (posted or {}).get("note", ""),
        "decrease": bool((posted or {}).get("decrease_balance_owed")),
        "reason_codes": reason_code_choices(organization) if organization.reason_codes else [],
        "reason_code": (posted or {}).get(REASON_CODE, ""),
        "field_errors": field_errors or {},
        "currency_digits": 2 if organization.currency not in ("JPY", "KRW") else 0,
    }, status=status)


@page
@require_http_methods(["GET", "POST"])
def refund_invoice(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    organization = membership.organization
    invoice = billing.get_invoice(organization, invoice_id)
    requests.require_refund_or_ask(membership)
    if request.method == "GET":
        return _render(request, membership, invoice, _rows(invoice))
    rows = _rows(invoice, request.POST)
    parts, part_rows = [], []
    for row in rows:
        amount = row["amount"].strip().replace(",", "")
        if not amount:
            continue
        kind, _, method = row["destination"].partition(":")
        parts.append({"payment": str(row["payment"].pk), "type": kind, "amount": amount,
                      "method": method or None, "note": request.POST.get("note", "")})
        part_rows.append(row)

    def refund() -> tuple[str, Any]:
        # The API's one door: the policy's rules, then the refund, or a request for it.
        return requests.refund_or_request(actor=membership, kind="split", target=invoice.pk,
                                          body={
            "reason": request.POST.get("reason", ""),
            "internal_note": request.POST.get("internal_note", ""),
            "decrease_balance_owed": bool(request.POST.get("decrease_balance_owed")),
            "reason_code": request.POST.get(REASON_CODE) or None, "parts": parts})

    confirmed = request.POST.get("confirm") == "1"
    try:
        if not confirmed:
            # No money moves before the person has read what will happen (issue 15, item 3):
            # the service runs in a transaction that is rolled back, and says.
            review = preview(refund, lambda made: review_of(
                made, lambda done: _review(done[1], organization)))
            return _render(request, membership, invoice, rows, posted=request.POST,
                           review=review)
        status, made = refund()
    except DomainError as exc:
        found = PART_FIELD.fullmatch(exc.field or "")
        message = getattr(exc, "message", None) or exc.detail
        if found and int(found.group(1)) < len(part_rows):
            part_rows[int(found.group(1))]["errors"].append(message)
            return _render(request, membership, invoice, rows, posted=request.POST,
                           status=exc.status)
        if exc.field in (REASON_CODE, "internal_note", "reason"):
            return _render(request, membership, invoice, rows, posted=request.POST,
                           status=exc.status, field_errors={exc.field: message})
        return _render(request, membership, invoice, rows, posted=request.POST,
                       error=exc.detail, status=exc.status)
    if status == "requested":
        messages.success(request, REQUESTED)
        return HttpResponseRedirect(reverse("invoice", args=[invoice.pk]))
    _group, refunds = made
    total = sum(r.total_minor for r in refunds)
    money = display(total, organization.currency, organization.locale)
    ways = ", ".join(_way(r, lambda minor: display(minor, organization.currency,
                                                   organization.locale)) for r in refunds)
    messages.success(request, f"Refund of {money} recorded in {len(refunds)} parts: {ways}."
                     if len(refunds) > 1 else f"Refund of {money} recorded: {ways}.")
    return HttpResponseRedirect(reverse("invoice", args=[invoice.pk]))


urlpatterns = [
    path("invoices/<int:invoice_id>/refund/", refund_invoice, name="invoice_refund"),
]
