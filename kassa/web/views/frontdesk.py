"""The front desk home: one search for an invoice (by number), a receipt (a payment's or a
refund's number), a family or guest (by name, contact name or e-mail) and, at a funeral home,
a case (by the decedent's name). When nothing matches it says what it searched.

A number may be typed as people write receipt numbers: "1001", "#12", "payment 12",
"refund 7"; naming the kind searches that kind only.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from kassa.billing import selectors as billing
from kassa.billing.models import PaymentStatus
from kassa.refunds import selectors as refunds
from kassa.refunds.models import RefundStatus
from kassa.web.access import page
from kassa.web.words import words_for

NUMBER = re.compile(r"(?:(invoice|payment|refund|receipt)\s*)?(?:no\.?|number)?\s*#?\s*(\d{1,19})",
                    re.IGNORECASE)


@page
def front_desk(request: HttpRequest, membership: Any) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    organization = membership.organization
    words = words_for(organization)
    context: dict[str, Any] = {"query": query, "organization": organization}
    if not query:
        context["invoices"] = billing.invoices(organization).select_related("customer")[:50]
        context["attention"] = _attention(organization)
        return render(request, "web/front_desk.html", context)

    number = NUMBER.fullmatch(query)
    kind = (number.group(1) or "").lower() if number else ""
    digits = number.group(2) if number else ""
    invoices: list[Any] = []
    payments: list[Any] = []
    found_refunds: list[Any] = []
    if number and kind in ("", "invoice"):
        invoices = list(billing.find_invoices(organization, number=digits)
                        .select_related("customer"))
    if number and kind in ("", "payment", "receipt"):
        payment = billing.find_payment(organization, digits)
        payments = [payment] if payment else []
    if number and kind in ("", "refund", "receipt"):
        found_refunds = list(refunds.refunds(organization).filter(pk=int(digits))
                             .select_related("invoice", "payment", "package")) \
            if 0 < int(digits) < 2**63 else []
    customers = [] if kind else list(billing.find_customers(organization, query)[:20])
    cases = [] if kind or not words["funeral_home"] else list(
        billing.find_cases(organization, query)[:20])
    if not kind and not number:
        # A name: the invoices of the families or guests it finds, newest first.
        invoices = list(billing.invoices(organization).select_related("customer", "case")
                        .filter(customer__in=customers)[:50])
    searched = ["invoice numbers", "payment and refund numbers",
                f"{words['customer']} names and e-mails"]
    if words["funeral_home"]:
        searched.append("decedents' names of cases")
    context.update({
        "invoices": invoices, "payments": payments, "refunds": found_refunds,
        "guests": customers, "cases": cases,
        "nothing": not (invoices or payments or found_refunds or customers or cases),
        "searched": ", ".join(searched[:-1]) + " and " + searched[-1],
    })
    return render(request, "web/front_desk.html", context)


def _attention(organization: Any) -> dict[str, Any]:
    """What needs the front desk: refunds that failed lately (the customer is owed them
    another way), refunds the gateway would not take, payments the processor is deciding."""
    since = timezone.now() - dt.timedelta(days=30)
    failed = list(refunds.refunds(organization)
                  .filter(status=RefundStatus.FAILED, created_at__gte=since)
                  .select_related("invoice__customer", "package").order_by("-id")[:10])
    return {
        "failed": failed,
        "stuck": refunds.find_refunds(organization, needs_attention=True).count(),
        "processing": list(billing.payments(organization)
                           .filter(status=PaymentStatus.PROCESSING).order_by("-id")[:10]),
    }


urlpatterns = [path("", front_desk, name="front_desk")]
