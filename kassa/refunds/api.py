"""Refunds over HTTP: parse, call one service, render."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Query, Router, Schema, Status
from pydantic import Field

from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging, Problem
from kassa.core.text import Code, Flag, MoneyText, Name, Note, ObjectId, ShortText
from kassa.documents.answer import PDF_ANSWER, pdf_answer
from kassa.refunds import attention, documents, requests, selectors
from kassa.refunds.models import Refund
from kassa.refunds.webhook_events import refund_object
from kassa.tenancy.auth import AuthedRequest

router = Router(tags=["refunds"])


class PaymentRefundIn(Schema):
    reason_code: Code | None = None
    type: Code = Field(..., description="online | offline | credit (to the customer's credit)")
    amount: MoneyText
    reason: ShortText
    internal_note: Note | None = None
    method: Code | None = Field(None, description="offline: check | cash | insurance | other")
    note: Note | None = Field(None, description="required when method is other")
    decrease_balance_owed: Flag = False


class RefundTo(Schema):
    payment: Code | None = None
    method: Code | None = Field(None, description="cash | check | other")
    note: Note | None = None
    credit: Flag = Field(False, description="true: into the customer's account credit")


class CreditRefundTo(Schema):
    payment: Code | None = Field(None, description="one of the customer's online payments")
    method: Code | None = Field(None, description="cash | check | other")
    note: Note | None = None
    payee: Name | None = Field(None, description="who receives it (a family member, an estate)")


class CreditRefundIn(Schema):
    reason_code: Code | None = None
    amount: MoneyText
    reason: ShortText
    center: Code | None = None
    refund_to: CreditRefundTo
    override_reason: ShortText | None = Field(
        None, description="admin: refund card money other than to its card, and why")


class PartIn(Schema):
    payment: Code
    type: Code = Field(..., description="online | offline | credit")
    amount: MoneyText
    method: Code | None = Field(None, description="offline: check | cash | insurance | other")
    note: Note | None = None


class InvoiceRefundIn(Schema):
    reason_code: Code | None = None
    reason: ShortText
    internal_note: Note | None = None
    decrease_balance_owed: Flag = False
    parts: list[PartIn] = Field(..., max_length=20)


class PackageRefundIn(Schema):
    reason_code: Code | None = None
    amount: MoneyText
    reason: ShortText
    close_package: Flag = False
    refund_to: RefundTo


class RefundOut(Schema):
    id: str
    payment: str | None
    package: str | None
    invoice: str | None
    customer: str | None  # a refund out of credit: whose
    type: str
    status: str
    origin: str  # kassa, or gateway: made at the processor (its dashboard) and booked here
    amount: str
    tax: str
    total: str
    method: str
    reason: str
    internal_note: str
    note: str
    decrease_balance_owed: bool
    created_by: str | None
    created_at: str
    settled_at: str | None
    failure_reason: str
    needs_attention: bool
    payee: str
    group: str | None  # the split refund it is a part of
    replaces: str | None


class RequestOut(Schema):
    id: str
    kind: str
    target: str
    body: dict[str, Any]
    amount: str
    status: str
    requested_by: str | None
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    note: str
    refunds: list[str]


class RequestedOut(Schema):
    status: str
    request: RequestOut


class RejectIn(Schema):
    reason: ShortText | None = None


class SplitRefundOut(Schema):
    group: str
    refunds: list[RefundOut]


class RefundFilters(Schema):
    payment: ObjectId | None = None
    invoice: ObjectId | None = None
    case: ObjectId | None = None
    # A query string's words: "true" or "false", nothing else (as the JSON bodies' booleans).
    needs_attention: Literal["true", "false"] | None = Field(
        None, description="true: only the refunds the gateway machinery gave up on")


class ResolveIn(Schema):
    action: Code = Field(..., description="paid_another_way | accept_gateway")
    method: Code | None = Field(None, description="paid_another_way: cash | check | other")
    note: Note | None = Field(None, description="required when method is other")


def refund_json(refund: Refund) -> dict[str, Any]:
    return refund_object(refund)  # the same object the webhooks send


def _made(made: Any) -> Any:
    """201 with the refund(s) made, or 202 `{status: "requested", request}`."""
    status, what = made
    if status == "requested":
        return Status(202, {"status": "requested", "request": requests.request_object(what)})
    if isinstance(what, tuple):
        group, refunds = what
        return Status(201, {"group": group, "refunds": [refund_json(r) for r in refunds]})
    return Status(201, refund_json(what))


def _idempotency(request: AuthedRequest) -> dict[str, Any]:
    key = request.headers.get("Idempotency-Key")
    return {"request_key": key} if key else {}


@router.post("/payments/{payment_id}/refunds",
             response={201: RefundOut, 202: RequestedOut, **WRITE_ERRORS})
def refund_payment(request: AuthedRequest, payment_id: str, payload: PaymentRefundIn) -> Any:
    body = {"type": payload.type, "amount": payload.amount, "reason": payload.reason,
            "internal_note": payload.internal_note or "", "method": payload.method,
            "note": payload.note or "", "decrease_balance_owed": payload.decrease_balance_owed,
            "reason_code": payload.reason_code, **_idempotency(request)}
    return _made(requests.refund_or_request(actor=request.auth, kind="payment",
                                            target=payment_id, body=body))


@router.get("/refunds", response={200: list[RefundOut], **READ_ERRORS})
def list_refunds(request: AuthedRequest, filters: Query[RefundFilters],
                 paging: Query[Paging]) -> Any:
    found = selectors.find_refunds(request.auth.organization, payment=filters.payment,
                                   invoice=filters.invoice, case=filters.case,
                                   needs_attention=(None if filters.needs_attention is None
                                                    else filters.needs_attention == "true"))
    return [refund_json(r) for r in found[paging.offset: paging.offset + paging.limit]]


@router.get("/refunds/{refund_id}/document", response={**READ_ERRORS},
            openapi_extra=PDF_ANSWER)
def refund_document(request: AuthedRequest, refund_id: str) -> Any:
    """The refund receipt as PDF, with its verification code."""
    issued = documents.find_receipt(request.auth.organization, refund_id)
    return pdf_answer(issued.pdf(), issued.code, f"refund-{refund_id}.pdf")


@router.get("/refunds/{refund_id}", response={200: RefundOut, **READ_ERRORS})
def get_refund(request: AuthedRequest, refund_id: str) -> Any:
    return refund_json(selectors.get_refund(request.auth.organization, refund_id))


@router.post("/packages/{package_id}/refunds",
             response={201: RefundOut, 202: RequestedOut, **WRITE_ERRORS}, tags=["packages"])
def refund_package(request: AuthedRequest, package_id: str, payload: PackageRefundIn) -> Any:
    body = {"amount": payload.amount, "reason": payload.reason,
            "close_package": payload.close_package,
            "refund_to_payment": payload.refund_to.payment, "method": payload.refund_to.method,
            "note": payload.refund_to.note or "", "to_credit": payload.refund_to.credit,
            "reason_code": payload.reason_code, **_idempotency(request)}
    return _made(requests.refund_or_request(actor=request.auth, kind="package",
                                            target=package_id, body=body))


@router.post("/customers/{customer_id}/credit/refunds",
             response={201: RefundOut, 202: RequestedOut, **WRITE_ERRORS}, tags=["credit"])
def refund_credit(request: AuthedRequest, customer_id: str, payload: CreditRefundIn) -> Any:
    """Give back credit: online to one of the customer's payments, or offline (with a
    payee). Card money goes back to its card unless an admin gives `override_reason`."""
    body = {"amount": payload.amount, "reason": payload.reason, "center": payload.center,
            "refund_to": payload.refund_to.model_dump(),
            "override_reason": payload.override_reason, "reason_code": payload.reason_code,
            **_idempotency(request)}
    return _made(requests.refund_or_request(actor=request.auth, kind="credit",
                                            target=customer_id, body=body))


@router.post("/invoices/{invoice_id}/refunds",
             response={201: SplitRefundOut, 202: RequestedOut, **WRITE_ERRORS})
def refund_invoice(request: AuthedRequest, invoice_id: str, payload: InvoiceRefundIn) -> Any:
    """One refund across the invoice's payments, all or nothing: each error names its part."""
    body = {"reason": payload.reason, "internal_note": payload.internal_note or "",
            "decrease_balance_owed": payload.decrease_balance_owed,
            "reason_code": payload.reason_code,
            "parts": [{"payment": p.payment, "type": p.type, "amount": p.amount,
                       "method": p.method, "note": p.note or ""} for p in payload.parts]}
    return _made(requests.refund_or_request(actor=request.auth, kind="split",
                                            target=invoice_id, body=body))


STUCK_ERRORS = {**WRITE_ERRORS, 503: Problem}


@router.post("/refunds/{refund_id}/retry", response={200: RefundOut, **STUCK_ERRORS})
def retry_refund(request: AuthedRequest, refund_id: str) -> Any:
    refund = attention.retry_refund(actor=request.auth, refund=refund_id)
    return refund_json(selectors.get_refund(request.auth.organization, refund.pk))


@router.post("/refunds/{refund_id}/resolve", response={200: RefundOut, **STUCK_ERRORS})
def resolve_refund(request: AuthedRequest, refund_id: str, payload: ResolveIn) -> Any:
    refund = attention.resolve_refund(actor=request.auth, refund=refund_id,
                                      action=payload.action, method=payload.method,
                                      note=payload.note or "")
    return refund_json(selectors.get_refund(request.auth.organization, refund.pk))


@router.get("/refund-requests", response={200: list[RequestOut], **READ_ERRORS},
            tags=["approvals"])
def list_requests(request: AuthedRequest, paging: Query[Paging],
                  status: str | None = None) -> Any:
    found = requests.find_requests(request.auth, status)
    return [requests.request_object(r) for r in found[paging.offset: paging.offset + paging.limit]]


@router.get("/refund-requests/{request_id}", response={200: RequestOut, **READ_ERRORS},
            tags=["approvals"])
def get_request(request: AuthedRequest, request_id: str) -> Any:
    return requests.request_object(requests.get_request(request.auth, request_id))


@router.post("/refund-requests/{request_id}/approve",
             response={200: RequestOut, **WRITE_ERRORS}, tags=["approvals"])
def approve_request(request: AuthedRequest, request_id: str) -> Any:
    return requests.request_object(requests.approve(actor=request.auth, request=request_id))


@router.post("/refund-requests/{request_id}/reject",
             response={200: RequestOut, **WRITE_ERRORS}, tags=["approvals"])
def reject_request(request: AuthedRequest, request_id: str, payload: RejectIn) -> Any:
    return requests.request_object(requests.reject(actor=request.auth, request=request_id,
                                                   reason=payload.reason or ""))


@router.post("/refund-requests/{request_id}/cancel",
             response={200: RequestOut, **WRITE_ERRORS}, tags=["approvals"])
def cancel_request(request: AuthedRequest, request_id: str) -> Any:
    return requests.request_object(requests.cancel(actor=request.auth, request=request_id))
