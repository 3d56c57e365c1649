"""Customers, cases, invoices and payments over HTTP: parse, call one service, render."""

from __future__ import annotations

from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from kassa.billing import selectors, services, statements
from kassa.billing.models import (
    Case,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentEvent,
)
from kassa.billing.webhook_events import credit_entry_object, payment_object
from kassa.core.money import format_decimal_string
from kassa.core.schemas import READ_ERRORS, WRITE_ERRORS, Paging, Problem
from kassa.core.text import (
    Code,
    Count,
    Email,
    Flag,
    Moment,
    MoneyText,
    Name,
    ObjectId,
    OptionalName,
    ShortText,
)
from kassa.documents.answer import PDF_ANSWER, pdf_answer
from kassa.packages.api import PackageOut, package_json
from kassa.refunds.api import RefundOut, refund_json
from kassa.refunds.selectors import find_refunds
from kassa.tenancy.auth import AuthedRequest

router = Router(tags=["billing"])


# --- schemas -------------------------------------------------------------------------------

class CustomerIn(Schema):
    name: Name
    email: Email
    contact_name: OptionalName | None = Field(
        None, description="the person greeted in receipts; default: the name")


class CustomerPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None
    contact_name: OptionalName | None = None


class CustomerOut(Schema):
    id: str
    name: str
    contact_name: str
    email: str


class CaseIn(Schema):
    customer: Code
    name: Name


class CaseOut(Schema):
    id: str
    customer: str
    name: str


class LineIn(Schema):
    kind: Code
    description: Name  # InvoiceLine.description holds 200
    quantity: Count = Field(1, ge=1, le=10_000)
    unit_price: MoneyText | None = Field(
        None, description="required, except on a package line (its template's price)")
    tax_rate: Code | None = Field(
        None, description="percent; a package line defaults to its template's, others to 0")
    package_template: Code | None = None


class InvoiceIn(Schema):
    customer: Code
    center: Code
    case: Code | None = None
    lines: list[LineIn] = Field(..., min_length=1, max_length=100)


class LineOut(Schema):
    id: str
    kind: str
    description: str
    quantity: int
    unit_price: str
    tax_rate: str
    net: str
    tax: str
    paid: str
    package_template: str | None = None


class PaymentOut(Schema):
    id: str
    invoice: str | None  # None for a deposit
    customer: str
    amount: str
    to_credit: str  # what of the amount went into the customer's credit
    method: str
    online: bool
    refunded: str
    refundable: str
    requested: str  # reserved by an open refund request (not refundable while open)
    refundable_online: str  # what the gateway can still refund of the charge
    refund_pending: bool
    disputed: bool  # a dispute is open, or lost and not settled: no refunds
    taken_back: str  # what lost disputes and a return took: not refundable
    status: str  # succeeded, processing, failed or declined
    failure_reason: str
    created_at: str


class InvoiceOut(Schema):
    id: str
    number: str
    customer: str
    center: str
    case: str | None
    status: str
    subtotal: str
    tax: str
    total: str
    credits: str
    paid: str
    refunded: str
    balance_due: str
    created_at: str
    lines: list[LineOut]
    payments: list[PaymentOut]
    refunds: list[RefundOut]
    packages: list[PackageOut]


class PaymentIn(Schema):
    amount: MoneyText
    method: Code = Field(..., description="cash | check | card | ach | insurance | other | "
                         "credit (from the customer's credit)")
    online: Flag = False
    source: Code | None = None
    excess_to_credit: Flag = Field(False, description="the tender may exceed the balance due: "
                                   "the rest goes into the customer's credit")


class DepositIn(Schema):
    center: Code
    amount: MoneyText
    method: Code
    online: Flag = False
    source: Code | None = None
    note: ShortText | None = None


class CreditEntryOut(Schema):
    id: str
    at: str
    kind: str
    amount: str  # signed: + into credit, − out of it
    balance_after: str
    center: str
    payment: str | None
    invoice: str | None
    refund: str | None
    by: str | None
    note: str


class CreditOut(Schema):
    customer: str
    balance: str
    entries: list[CreditEntryOut]


class WriteOffIn(Schema):
    amount: MoneyText
    reason: ShortText


class HistoryOut(Schema):
    at: str
    kind: str
    amount: str | None
    status: str
    by: str | None
    detail: str


class CasePaymentsOut(Schema):
    invoices: list[InvoiceOut]
    payments: list[PaymentOut]
    refunds: list[RefundOut]


class InvoiceFilters(Schema):
    number: Code | None = None
    customer: ObjectId | None = None


# --- rendering -----------------------------------------------------------------------------

def customer_json(c: Customer) -> dict[str, Any]:
    return {"id": str(c.pk), "name": c.name, "contact_name": c.contact_name, "email": c.email}


def case_json(c: Case) -> dict[str, Any]:
    return {"id": str(c.pk), "customer": str(c.customer_id), "name": c.name}


def payment_json(p: Payment, currency: str) -> dict[str, Any]:
    return payment_object(p, currency)  # the same object the webhooks send


def line_json(line: InvoiceLine, currency: str) -> dict[str, Any]:
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(line.pk), "kind": line.kind, "description": line.description,
        "quantity": line.quantity, "unit_price": money(line.unit_price_minor),
        "tax_rate": str(line.tax_rate.normalize()), "net": money(line.net_minor),
        "tax": money(line.tax_minor), "paid": money(line.paid_net_minor + line.paid_tax_minor),
        "package_template": str(line.package.template_id)
        if line.kind == "package" and hasattr(line, "package") and line.package.template_id
        else None,
    }


def invoice_json(inv: Invoice) -> dict[str, Any]:
    currency = inv.organization.currency
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(inv.pk), "number": inv.number, "customer": str(inv.customer_id),
        "center": str(inv.center_id), "case": str(inv.case_id) if inv.case_id else None,
        "status": inv.status, "subtotal": money(inv.subtotal_minor), "tax": money(inv.tax_minor),
        "total": money(inv.total_minor), "credits": money(inv.credits_minor),
        "paid": money(inv.paid_minor), "refunded": money(inv.refunded_minor),
        "balance_due": money(inv.balance_due_minor), "created_at": inv.created_at.isoformat(),
        "lines": [line_json(line, currency) for line in inv.lines.all()],
        "payments": [payment_json(p, currency) for p in inv.payments.order_by("id")],
        "refunds": [refund_json(r) for r in inv.refunds.select_related(
            "created_by", "organization").order_by("created_at", "id")],
        "packages": [package_json(p) for p in inv.packages.select_related("organization", "line")
                     .prefetch_related("benefits").order_by("id")],
    }


def event_json(e: PaymentEvent, currency: str) -> dict[str, Any]:
    return {
        "at": e.at.isoformat(), "kind": e.kind,
        "amount": format_decimal_string(e.amount_minor, currency)
        if e.amount_minor is not None else None,
        "status": e.status, "by": e.by.email if e.by else None, "detail": e.detail,
    }


# --- endpoints -----------------------------------------------------------------------------

@router.post("/customers", response={201: CustomerOut, **WRITE_ERRORS})
def create_customer(request: AuthedRequest, payload: CustomerIn) -> Any:
    customer = services.create_customer(actor=request.auth, name=payload.name,
                                        email=payload.email,
                                        contact_name=payload.contact_name or "")
    return Status(201, customer_json(customer))


@router.patch("/customers/{customer_id}", response={200: CustomerOut, **WRITE_ERRORS})
def update_customer(request: AuthedRequest, customer_id: str, payload: CustomerPatch) -> Any:
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    return customer_json(services.update_customer(actor=request.auth, customer=customer_id,
                                                  **changes))


@router.get("/customers", response={200: list[CustomerOut], **READ_ERRORS})
def list_customers(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.customers(request.auth.organization)
    return [customer_json(c) for c in found[paging.offset: paging.offset + paging.limit]]


class StatementQuery(Schema):
    as_of: Moment | None = Field(None, description="ISO date-time; default now")


@router.get("/customers/{customer_id}/statement", response={**READ_ERRORS},
            openapi_extra=PDF_ANSWER)
def customer_statement(request: AuthedRequest, customer_id: str,
                       q: Query[StatementQuery]) -> Any:
    """The customer's statement of account as PDF, from the ledger as of `as_of`."""
    issued = statements.customer_statement(request.auth.organization, customer_id, q.as_of)
    return pdf_answer(issued.pdf(), issued.code, f"statement-customer-{customer_id}.pdf")


@router.get("/cases/{case_id}/statement", response={**READ_ERRORS}, openapi_extra=PDF_ANSWER)
def case_statement(request: AuthedRequest, case_id: str, q: Query[StatementQuery]) -> Any:
    """The case's statement of account as PDF, from the ledger as of `as_of`."""
    issued = statements.case_statement(request.auth.organization, case_id, q.as_of)
    return pdf_answer(issued.pdf(), issued.code, f"statement-case-{case_id}.pdf")


@router.get("/customers/{customer_id}", response={200: CustomerOut, **READ_ERRORS})
def get_customer(request: AuthedRequest, customer_id: str) -> Any:
    return customer_json(selectors.get_customer(request.auth.organization, customer_id))


@router.post("/cases", response={201: CaseOut, **WRITE_ERRORS})
def create_case(request: AuthedRequest, payload: CaseIn) -> Any:
    case = services.create_case(actor=request.auth, customer=payload.customer, name=payload.name)
    return Status(201, case_json(case))


@router.get("/cases", response={200: list[CaseOut], **READ_ERRORS})
def list_cases(request: AuthedRequest, paging: Query[Paging]) -> Any:
    found = selectors.cases(request.auth.organization)
    return [case_json(c) for c in found[paging.offset: paging.offset + paging.limit]]


@router.get("/cases/{case_id}", response={200: CaseOut, **READ_ERRORS})
def get_case(request: AuthedRequest, case_id: str) -> Any:
    return case_json(selectors.get_case(request.auth.organization, case_id))


@router.get("/cases/{case_id}/payments", response={200: CasePaymentsOut, **READ_ERRORS})
def case_payments(request: AuthedRequest, case_id: str) -> Any:
    """The case's payments tab: its invoices, their payments and refunds."""
    organization = request.auth.organization
    case = selectors.get_case(organization, case_id)
    invoices = list(selectors.invoices(organization).filter(case=case)
                    .prefetch_related("lines", "payments"))
    payments = [p for inv in invoices for p in inv.payments.order_by("id")]
    return {
        "invoices": [invoice_json(inv) for inv in invoices],
        "payments": [payment_json(p, organization.currency) for p in payments],
        "refunds": [refund_json(r) for r in find_refunds(organization, case=str(case.pk))],
    }


@router.post("/invoices", response={201: InvoiceOut, **WRITE_ERRORS})
def create_invoice(request: AuthedRequest, payload: InvoiceIn) -> Any:
    invoice = services.issue_invoice(
        actor=request.auth, customer=payload.customer, center=payload.center, case=payload.case,
        lines=[services.LineInput(**line.model_dump()) for line in payload.lines],
    )
    return Status(201, invoice_json(selectors.get_invoice(request.auth.organization, invoice.pk)))


@router.get("/invoices", response={200: list[InvoiceOut], **READ_ERRORS})
def list_invoices(request: AuthedRequest, filters: Query[InvoiceFilters],
                  paging: Query[Paging]) -> Any:
    found = selectors.find_invoices(request.auth.organization, number=filters.number,
                                    customer=filters.customer).prefetch_related("lines",
                                                                                "payments")
    return [invoice_json(inv) for inv in found[paging.offset: paging.offset + paging.limit]]


@router.get("/invoices/{invoice_id}", response={200: InvoiceOut, **READ_ERRORS})
def get_invoice(request: AuthedRequest, invoice_id: str) -> Any:
    return invoice_json(selectors.get_invoice(request.auth.organization, invoice_id))


@router.post("/invoices/{invoice_id}/payments",
             response={201: PaymentOut, 402: Problem, 503: Problem, **WRITE_ERRORS})
def take_payment(request: AuthedRequest, invoice_id: str, payload: PaymentIn) -> Any:
    payment = services.take_payment(
        actor=request.auth, invoice=invoice_id, amount=payload.amount, method=payload.method,
        online=payload.online, source=payload.source,
        request_key=request.headers.get("Idempotency-Key"),
        excess_to_credit=payload.excess_to_credit,
    )
    return Status(201, payment_json(payment, request.auth.organization.currency))


# --- the customer's credit -----------------------------------------------------------------

def credit_entry_json(e: CreditEntry, currency: str) -> dict[str, Any]:
    return credit_entry_object(e, currency)  # the same object the webhooks send


@router.post("/customers/{customer_id}/deposits",
             response={201: PaymentOut, 402: Problem, 503: Problem, **WRITE_ERRORS},
             tags=["credit"])
def take_deposit(request: AuthedRequest, customer_id: str, payload: DepositIn) -> Any:
    """Money into the customer's credit, on no invoice: a payment with `invoice: null`."""
    payment = services.take_deposit(
        actor=request.auth, customer=customer_id, center=payload.center, amount=payload.amount,
        method=payload.method, online=payload.online, source=payload.source,
        note=payload.note or "", request_key=request.headers.get("Idempotency-Key"))
    return Status(201, payment_json(payment, request.auth.organization.currency))


@router.get("/customers/{customer_id}/credit", response={200: CreditOut, **READ_ERRORS},
            tags=["credit"])
def customer_credit(request: AuthedRequest, customer_id: str) -> Any:
    """The customer's credit: its balance and every entry, oldest first."""
    organization = request.auth.organization
    customer = selectors.get_customer(organization, customer_id)
    currency = organization.currency
    return {
        "customer": str(customer.pk),
        "balance": format_decimal_string(customer.credit_minor, currency),
        "entries": [credit_entry_json(e, currency) for e in selectors.credit_entries(customer)],
    }


@router.post("/customers/{customer_id}/credit/write-offs",
             response={201: CreditEntryOut, **WRITE_ERRORS}, tags=["credit"])
def write_off_credit(request: AuthedRequest, customer_id: str, payload: WriteOffIn) -> Any:
    entry = services.write_off_credit(actor=request.auth, customer=customer_id,
                                      amount=payload.amount, reason=payload.reason)
    return Status(201, credit_entry_json(entry, request.auth.organization.currency))


@router.get("/payments/{payment_id}", response={200: PaymentOut, **READ_ERRORS})
def get_payment(request: AuthedRequest, payment_id: str) -> Any:
    organization = request.auth.organization
    return payment_json(selectors.get_payment(organization, payment_id), organization.currency)


@router.get("/payments/{payment_id}/history", response={200: list[HistoryOut], **READ_ERRORS})
def payment_history(request: AuthedRequest, payment_id: str) -> Any:
    organization = request.auth.organization
    payment = selectors.get_payment(organization, payment_id)
    return [event_json(e, organization.currency)
            for e in payment.events.select_related("by").order_by("at", "id")]
