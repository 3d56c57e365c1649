"""Invoices, payments and cases: the invoice overview, the payment details page with its refund
forms, and a case's payments tab."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from kassa.billing import selectors as billing
from kassa.web.access import page


@page
def invoice_detail(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    invoice = billing.get_invoice(membership.organization, invoice_id)
    return render(request, "web/invoice.html", {"invoice": invoice,
                                                 "organization": membership.organization})


@page
def payment_detail(request: HttpRequest, membership: Any, payment_id: int) -> HttpResponse:
    payment = billing.get_payment(membership.organization, payment_id)
    return render(request, "web/payment.html", {
        "payment": payment, "organization": membership.organization,
        "events": payment.events.select_related("by"),
    })


urlpatterns = [
    path("invoices/<int:invoice_id>/", invoice_detail, name="invoice"),
    path("payments/<int:payment_id>/", payment_detail, name="payment"),
]
