"""`/approvals/`: refund requests. An approver sees the open queue and approves or rejects;
everyone else sees their own requests and may cancel an open one. The pages call the same
services as the API (kassa.refunds.requests).

Each request in the approver's queue shows what approving it would do: the approval itself is
run in a transaction that is rolled back (kassa/web/preview.py), so the postings, the tax going
back and the balances after are the services' own — or the rule that would refuse it now."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST, require_safe

from kassa.core.errors import DomainError
from kassa.core.money import display
from kassa.ledger.models import AccountCode, Posting
from kassa.refunds import requests
from kassa.refunds.models import Refund, RefundRequest
from kassa.tenancy.models import Membership
from kassa.web.access import page
from kassa.web.forms import typed_amount
from kassa.web.preview import preview

# Each preview runs a whole refund transaction: the queue previews its first requests only.
PREVIEWS = 20


@require_safe
@page
def approvals_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    approver = membership.role in (membership.organization.approver_roles or [])
    found = requests.find_requests(membership, "open" if approver else None)
    rows = list(found.select_related("requested_by")[:200])
    if approver:
        for row in [r for r in rows if r.requested_by_id != membership.user_id][:PREVIEWS]:
            row.preview = _preview(membership, row)  # type: ignore[attr-defined]
    return render(request, "web/approvals.html", {
        "organization": membership.organization, "approver": approver, "rows": rows})


def _preview(membership: Membership, row: RefundRequest) -> dict[str, Any]:
    """What approving `row` would do now, read inside the rolled-back approval."""
    organization = membership.organization
    money = lambda minor: display(minor, organization.currency, organization.locale)  # noqa: E731

    def read(approved: RefundRequest) -> dict[str, Any]:
        made = list(Refund.objects.filter(pk__in=approved.refunds)
                    .select_related("invoice", "payment", "package__line", "customer")
                    .order_by("pk"))
        postings = [{"account": AccountCode(code).label if code in AccountCode.values else code,
                     "debit": money(amount) if amount > 0 else "",
                     "credit": money(-amount) if amount < 0 else ""}
                    for code, amount in Posting.objects.filter(
                        organization=organization, refund_id__in=approved.refunds)
                    .order_by("pk").values_list("code", "amount_minor")]
        after: list[str] = []
        for refund in made:
            if refund.invoice is not None:
                after.append(f"Invoice {refund.invoice.number}: balance due "
                             f"{money(refund.invoice.balance_due_minor)}")
            if refund.payment is not None:
                after.append(f"Payment #{refund.payment.pk}: "
                             f"{money(refund.payment.refundable_minor)} still refundable")
            if refund.package is not None:
                after.append(f"Package {refund.package.name}: balance "
                             f"{money(refund.package.balance_minor)}")
            if refund.customer is not None:
                after.append(f"{refund.customer.name}'s credit: "
                             f"{money(refund.customer.credit_minor)}")
        return {"postings": postings,
                "tax": money(sum(r.tax_minor + r.credit_tax_minor for r in made)),
                "after": list(dict.fromkeys(after))}

    try:
        return preview(lambda: requests.approve(actor=membership, request=row.pk), read)
    except DomainError as exc:
        return {"refused": exc.detail}


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
