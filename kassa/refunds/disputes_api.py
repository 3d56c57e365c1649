"""Disputes and returned payments over HTTP: parse, call one service, render."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import Field

from kassa.core.errors import ValidationFailed
from kassa.core.lookup import get_scoped
from kassa.core.money import format_decimal_string
from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging
from kassa.core.text import Code, MoneyText, ShortText
from kassa.refunds import disputes, returns
from kassa.refunds.models import Dispute, DisputeStatus, PaymentReturn
from kassa.tenancy.auth import AuthedRequest

router = Router(tags=["disputes"])


class SettlementOut(Schema):
    action: str
    reason: str
    settled_at: str | None
    settled_by: str | None


class DisputeOut(Schema):
    id: str
    payment: str
    invoice: str | None
    amount: str
    reason: str
    status: str  # warning | needs_response | under_review | won | lost
    respond_by: str | None
    created_at: str
    closed_at: str | None
    settlement: SettlementOut | None


class DisputeFilters(Schema):
    status: Code | None = Field(None, description="warning | needs_response | under_review | "
                                "won | lost")


class SettleIn(Schema):
    action: Code = Field(..., description="rebill | write_off")
    reason: ShortText


class ReturnIn(Schema):
    reason: ShortText
    amount: MoneyText | None = Field(None, description="default: what is not refunded of it")
    fee: MoneyText | None = Field(None, description="a returned-payment fee: a new line on "
                                  "the invoice")


class ReturnOut(Schema):
    id: str
    payment: str
    invoice: str
    amount: str
    fee: str
    fee_line: str | None
    reason: str
    created_at: str
    created_by: str | None


def _disputes(request: AuthedRequest) -> Any:
    return (Dispute.objects.filter(organization=request.auth.organization)
            .select_related("organization", "settled_by"))


@router.get("/disputes", response={200: list[DisputeOut], **READ_ERRORS})
def list_disputes(request: AuthedRequest, filters: Query[DisputeFilters],
                  paging: Query[Paging]) -> Any:
    found = _disputes(request)
    if filters.status is not None:
        if filters.status not in DisputeStatus.values:
            raise ValidationFailed("status", f"must be one of {', '.join(DisputeStatus.values)}")
        found = found.filter(status=filters.status)
    found = found.order_by("-created_at", "-pk")[paging.offset: paging.offset + paging.limit]
    return [disputes.dispute_object(d) for d in found]


@router.get("/disputes/{dispute_id}", response={200: DisputeOut, **READ_ERRORS})
def get_dispute(request: AuthedRequest, dispute_id: str) -> Any:
    return disputes.dispute_object(get_scoped(_disputes(request), dispute_id))


@router.post("/disputes/{dispute_id}/settle", response={200: DisputeOut, **WRITE_ERRORS})
def settle_dispute(request: AuthedRequest, dispute_id: str, payload: SettleIn) -> Any:
    """A lost dispute, settled by an admin: re-bill the customer or write the loss off."""
    settled = disputes.settle(actor=request.auth, dispute=dispute_id, action=payload.action,
                              reason=payload.reason)
    return disputes.dispute_object(get_scoped(_disputes(request), settled.pk))


def return_object(returned: PaymentReturn, currency: str) -> dict[str, Any]:
    return {
        "id": str(returned.pk), "payment": str(returned.payment_id),
        "invoice": str(returned.invoice_id),
        "amount": format_decimal_string(returned.amount_minor, currency),
        "fee": format_decimal_string(returned.fee_minor, currency),
        "fee_line": str(returned.fee_line_id) if returned.fee_line_id else None,
        "reason": returned.reason, "created_at": returned.created_at.isoformat(),
        "created_by": returned.created_by.email if returned.created_by else None,
    }


@router.post("/payments/{payment_id}/returns", response={201: ReturnOut, **WRITE_ERRORS},
             tags=["payments"])
def return_payment(request: AuthedRequest, payment_id: str, payload: ReturnIn) -> Any:
    """A check or ACH payment the bank sent back: its balance is owed again."""
    returned = returns.record_return(actor=request.auth, payment=payment_id,
                                     reason=payload.reason, amount=payload.amount,
                                     fee=payload.fee)
    return Status(201, return_object(returned, request.auth.organization.currency))
