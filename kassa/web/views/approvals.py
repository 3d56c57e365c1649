"""`/approvals/`: refund requests. An approver sees the open queue and approves or rejects;
everyone else sees their own requests and may cancel an open one. The pages call the same
services as the API (kassa.refunds.requests)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST, require_safe

from kassa.core.errors import DomainError
from kassa.refunds import requests
from kassa.tenancy.models import Membership
from kassa.web.access import page
from kassa.web.forms import typed_amount


@require_safe
@page
def approvals_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    approver = membership.role in (membership.organization.approver_roles or [])
    found = requests.find_requests(membership, "open" if approver else None)
    return render(request, "web/approvals.html", {
        "organization": membership.organization, "approver": approver,
        "rows": list(found.select_related("requested_by")[:200])})


def _decide(request: HttpRequest, membership: Membership, request_id: int, action: str
            ) -> HttpResponse:
    try:
        if action == "approve":
            requests.approve(actor=membership, request=request_id)
        elif action == "reject":
            requests.reject(actor=membership, request=request_id,
                            reason=request.POST.get("reason", ""))
        else:
            requests.cancel(actor=membership, request=request_id)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        done = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[action]
        messages.success(request, f"Refund request {request_id}: {done}.")
    return redirect("approvals")


@require_POST
@page
def approve(request: HttpRequest, membership: Membership, request_id: int) -> HttpResponse:
    return _decide(request, membership, request_id, "approve")


@require_POST
@page
def reject(request: HttpRequest, membership: Membership, request_id: int) -> HttpResponse:
    return _decide(request, membership, request_id, "reject")


@require_POST
@page
def cancel(request: HttpRequest, membership: Membership, request_id: int) -> HttpResponse:
    return _decide(request, membership, request_id, "cancel")


@require_POST
@page
def request_payment_refund(request: HttpRequest, membership: Membership,
                           payment_id: int) -> HttpResponse:
    """*Request refund* on the payment page: the front desk asks; the same door as the API."""
    how = request.POST.get("type", "")
    online = how == "online"
    body = {"type": "online" if online else "offline", "method": None if online else how,
            "amount": typed_amount(request.POST.get("amount", ""), membership.organization),
            "reason": request.POST.get("reason", ""), "internal_note": "", "note": "",
            "decrease_balance_owed": False, "reason_code": request.POST.get("reason_code")}
    try:
        status, made = requests.refund_or_request(actor=membership, kind="payment",
                                                  target=payment_id, body=body)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("payment", payment_id)
    if status == "requested":
        messages.success(request, f"Refund request {made.pk} sent for approval.")
        return redirect("approvals")
    messages.success(request, "Refund made.")
    return redirect("payment", payment_id)


urlpatterns = [
    path("payments/<int:payment_id>/request-refund", request_payment_refund,
         name="approvals_request_payment"),
    path("approvals/", approvals_page, name="approvals"),
    path("approvals/<int:request_id>/approve", approve, name="approvals_approve"),
    path("approvals/<int:request_id>/reject", reject, name="approvals_reject"),
    path("approvals/<int:request_id>/cancel", cancel, name="approvals_cancel"),
]
