"""The front desk home: find an invoice or receipt (by number), or a guest (by name)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from kassa.billing import selectors as billing
from kassa.web.access import page


@page
def front_desk(request: HttpRequest, membership: Any) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    organization = membership.organization
    invoices = billing.find_invoices(organization, query=query or None).select_related(
        "customer")[:50]
    guests = (billing.customers(organization).filter(name__icontains=query)[:20]
              if query else [])
    return render(request, "web/front_desk.html", {
        "query": query, "invoices": invoices, "guests": guests, "organization": organization})


urlpatterns = [path("", front_desk, name="front_desk")]
