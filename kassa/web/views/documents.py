"""*Print*: the documents as PDF for the signed-in front desk — the same builders as the API
(a refund's receipt, a customer's or a case's statement of account as of now)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_safe

from kassa.billing import statements
from kassa.documents.answer import pdf_answer
from kassa.refunds import documents
from kassa.web.access import page


@require_safe
@page
def refund_receipt(request: HttpRequest, membership: Any, refund_id: int) -> HttpResponse:
    issued = documents.find_receipt(membership.organization, refund_id)
    return pdf_answer(issued.pdf(), issued.code, f"refund-{refund_id}.pdf")


@require_safe
@page
def customer_statement(request: HttpRequest, membership: Any, customer_id: int) -> HttpResponse:
    issued = statements.customer_statement(membership.organization, customer_id)
    return pdf_answer(issued.pdf(), issued.code, f"statement-customer-{customer_id}.pdf")


@require_safe
@page
def case_statement(request: HttpRequest, membership: Any, case_id: int) -> HttpResponse:
    issued = statements.case_statement(membership.organization, case_id)
    return pdf_answer(issued.pdf(), issued.code, f"statement-case-{case_id}.pdf")


urlpatterns = [
    path("refunds/<int:refund_id>/receipt.pdf", refund_receipt, name="refund_receipt_pdf"),
    path("customers/<int:customer_id>/statement.pdf", customer_statement,
         name="customer_statement_pdf"),
    path("cases/<int:case_id>/statement.pdf", case_statement, name="case_statement_pdf"),
]
