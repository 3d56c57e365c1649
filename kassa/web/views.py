"""The front desk's pages: thin views over the same selectors and services as the API."""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from kassa.billing import selectors as billing
from kassa.core.errors import NotFound
from kassa.tenancy.selectors import membership_for_user


def with_membership(view: Any) -> Any:
    """Sign-in required; the view gets the user's membership; another org's object is a 404."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = membership_for_user(request.user)
        if membership is None:
            raise Http404("No organization")
        request.membership = membership  # type: ignore[attr-defined]
        try:
            return view(request, membership, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from exc

    return wrapper


@with_membership
def front_desk(request: HttpRequest, membership: Any) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    organization = membership.organization
    invoices = billing.find_invoices(organization, query=query or None).select_related(
        "customer")[:50]
    return render(request, "web/front_desk.html", {"query": query, "invoices": invoices,
                                                    "organization": organization})


@with_membership
def invoice_detail(request: HttpRequest, membership: Any, invoice_id: int) -> HttpResponse:
    invoice = billing.get_invoice(membership.organization, invoice_id)
    return render(request, "web/invoice.html", {"invoice": invoice,
                                                 "organization": membership.organization})


@with_membership
def payment_detail(request: HttpRequest, membership: Any, payment_id: int) -> HttpResponse:
    payment = billing.get_payment(membership.organization, payment_id)
    return render(request, "web/payment.html", {
        "payment": payment, "organization": membership.organization,
        "events": payment.events.select_related("by"),
    })
