"""Customers, cases, invoices and payments: the writes.

`issue_invoice` posts the sale; `take_payment` charges the gateway (for an online payment)
*before* its transaction, because a charge is a remote call that must never hold a row lock,
then records the payment under the invoice's lock, re-checking the balance due. Should the
invoice have been paid meanwhile, the charge is given back and the payment refused.

What lines of a kind of their own do (a package line opens a package; money reaching it is paid
into the package) is the business of the app that registered the kind (`line_kinds`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from decimal import Decimal, InvalidOperation

from django.utils import timezone

from kassa.billing import allocation
from kassa.billing.inputs import LineInput
from kassa.billing.line_kinds import handler_for
from kassa.billing.models import (
    ONLINE_METHODS,
    Case,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Method,
    Payment,
    PaymentEvent,
)
from kassa.core.errors import (
    GatewayUnavailable,
    InvalidAmount,
    PaymentExceedsBalance,
    ValidationFailed,
)
from kassa.core.installation import installation_key
from kassa.core.locks import lock_invoice, lock_organization, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import (
    AMOUNT_GRAMMAR,
    MAX_MINOR,
    display,
    parse_amount,
    round_half_up_minor,
)
from kassa.core.outbox import enqueue
from kassa.gateways.base import GatewayError
from kassa.gateways.registry import current_gateway
from kassa.ledger.services import Line, credit, debit, post
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_writer

logger = logging.getLogger("kassa.billing")

MAX_LINES = 100
MAX_QUANTITY = 10_000
DESCRIPTION_MAX = InvoiceLine._meta.get_field("description").max_length or 200

def create_customer(*, actor: Membership, name: str, email: str) -> Customer:
    require_writer(actor)
    return Customer.objects.create(organization=actor.organization, name=name, email=email)


def create_case(*, actor: Membership, customer: str, name: str) -> Case:
    require_writer(actor)
    owner = get_scoped(
        Customer.objects.filter(organization=actor.organization), customer, field="customer"
    )
    return Case.objects.create(organization=actor.organization, customer=owner, name=name)


def parse_tax_rate(value: str, *, field: str) -> Decimal:
    """A tax rate in percent ("8.875"), 0 to 100, at most four decimals, in plain notation."""
    text = str(value).strip()
    if not AMOUNT_GRAMMAR.fullmatch(text):
        raise ValidationFailed(field, "is not a number")
    try:
        rate = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the grammar admits only valid decimals
        raise ValidationFailed(field, "is not a number") from None
    if not rate.is_finite() or not 0 <= rate <= 100:
        raise ValidationFailed(field, "must be a percentage from 0 to 100")
    if -rate.as_tuple().exponent > 4:  # type: ignore[operator]
        raise ValidationFailed(field, "has more than 4 decimal places")
    return rate


def tax_on(net_minor: int, rate: Decimal) -> int:
    """Tax on a net amount: rounded once, half-up, to the minor unit."""
    return round_half_up_minor(Decimal(net_minor) * rate / 100)


@money_transaction()
def issue_invoice(
    *, actor: Membership, customer: str, center: str, lines: list[LineInput],
    case: str | None = None,
) -> Invoice:
    require_writer(actor)
    organization = actor.organization
    currency = organization.currency
    owner = get_scoped(Customer.objects.filter(organization=organization), customer,
                       field="customer")
    where = get_center(organization, center, field="center")
    case_obj = None
    if case is not None:
        case_obj = get_scoped(Case.objects.filter(organization=organization), case, field="case")
        if case_obj.customer_id != owner.pk:
            raise ValidationFailed("case", "belongs to another customer")
    if not lines:
        raise ValidationFailed("lines", "an invoice needs at least one line")
    if len(lines) > MAX_LINES:
        raise ValidationFailed("lines", f"at most {MAX_LINES} lines")

    built: list[InvoiceLine] = []
    prepared: dict[int, object] = {}
    for i, line in enumerate(lines):
        where_field = f"lines[{i}]"
        if line.kind not in (LineKind.SERVICE, LineKind.PRODUCT, LineKind.PACKAGE):
            raise ValidationFailed(f"{where_field}.kind", "must be service, product or package")
        if len(line.description) > DESCRIPTION_MAX:  # the column's limit (PostgreSQL enforces it)
            raise ValidationFailed(f"{where_field}.description",
                                   f"at most {DESCRIPTION_MAX} characters")
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise ValidationFailed(f"{where_field}.quantity", f"must be 1 to {MAX_QUANTITY}")
        handler = handler_for(line.kind)
        default_unit: int | None = None
        default_rate = Decimal(0)
        if handler is not None:
            prepared[i] = handler.prepare(organization_id=organization.pk, line=line,
                                          where=where_field)
            default_unit, default_rate = handler.defaults(prepared[i])
        elif line.package_template:
            raise ValidationFailed(f"{where_field}.package_template",
                                   "only a package line has a package template")
        if line.unit_price is not None:
            unit = parse_amount(line.unit_price, currency, field=f"{where_field}.unit_price")
        elif default_unit is not None:
            unit = default_unit
        else:
            raise ValidationFailed(f"{where_field}.unit_price", "is required")
        if line.tax_rate is not None:
            rate = parse_tax_rate(line.tax_rate, field=f"{where_field}.tax_rate")
        else:
            rate = default_rate
        net = unit * line.quantity
        if net > MAX_MINOR:  # each figure must stay far inside a BIGINT, whatever the sum
            raise InvalidAmount(f"{where_field}.unit_price", "times the quantity is too large")
        built.append(InvoiceLine(
            position=i + 1, kind=line.kind, description=line.description,
            quantity=line.quantity, unit_price_minor=unit, tax_rate=rate,
            net_minor=net, tax_minor=tax_on(net, rate),
        ))

    if sum(row.net_minor + row.tax_minor for row in built) > MAX_MINOR:
        raise InvalidAmount("lines", "the invoice's total is too large")

    org = lock_organization(organization.pk)  # the invoice number sequence
    number = str(org.next_invoice_number)
    org.next_invoice_number += 1
    org.save(update_fields=["next_invoice_number"])

    subtotal = sum(row.net_minor for row in built)
    tax = sum(row.tax_minor for row in built)
    now = timezone.now()
    invoice = Invoice.objects.create(
        organization=organization, center=where, customer=owner, case=case_obj, number=number,
        status=InvoiceStatus.OPEN, subtotal_minor=subtotal, tax_minor=tax,
        total_minor=subtotal + tax, balance_due_minor=subtotal + tax,
        created_at=now, created_by=actor.user,
    )
    for row in built:
        row.invoice = invoice
    InvoiceLine.objects.bulk_create(built)

    # A line of a kind of its own posts its net sale where its handler says (a package's is a
    # package sold, unpaid, until payments turn it into liability and redemptions into revenue).
    revenue = {LineKind.SERVICE: "revenue_service", LineKind.PRODUCT: "revenue_product"}
    entry_lines = [debit("receivable", invoice.total_minor, invoice=invoice)]
    for i, row in enumerate(built):
        handler = handler_for(row.kind)
        if handler is not None:
            entry_lines += handler.opened(invoice=invoice, line=row, prepared=prepared[i])
        else:
            entry_lines.append(credit(revenue[LineKind(row.kind)], row.net_minor,
                                      invoice=invoice))
        entry_lines.append(credit("tax_payable", row.tax_minor, invoice=invoice))
    post(organization=organization, center=where, kind="invoice_issued", lines=entry_lines,
         created_by=actor.user, at=now, memo=f"Invoice {number}")
    return invoice


def _validate_method(method: str, online: bool) -> None:
    if method not in Method.values:
        raise ValidationFailed("method", f"must be one of {', '.join(Method.values)}")
    if online and method not in ONLINE_METHODS:
        raise ValidationFailed("method", "an online payment is by card or ach")
    if not online and method in ONLINE_METHODS:
        raise ValidationFailed(
            "method", "card and ach payments go through the gateway: set online to true")


def take_payment(
    *, actor: Membership, invoice: str, amount: str, method: str, online: bool,
    source: str | None = None, request_key: str | None = None,
) -> Payment:
    """Record a payment; for an online one, charge the gateway first (outside any lock)."""
    require_writer(actor)
    organization = actor.organization
    target = get_scoped(Invoice.objects.filter(organization=organization), invoice)
    amount_minor = parse_amount(amount, organization.currency)
    _validate_method(method, online)
    if not online and source:
        raise ValidationFailed("source", "only an online payment has a source")
    if online:
        # Before the card is charged: a charge the payment cannot record would have to be
        # given back. (An offline payment is checked under the invoice's lock alone.)
        payable = allocation.payable_minor(allocation.owed_by_bucket(target,
                                                                     target.lines.all()))
        if amount_minor > payable:
            raise PaymentExceedsBalance(
                f"At most {display(payable, organization.currency, organization.locale)} can "
                "be paid", field="amount")

    charge_reference = gateway_name = ""
    if online:
        gateway = current_gateway()
        # The same request retried (same Idempotency-Key) asks the gateway for the same charge.
        # ... and no other installation sharing the processor account ever sends that key.
        seed = (f"{installation_key()}:{organization.pk}:{request_key}" if request_key
                else uuid.uuid4().hex)
        charge_key = "pay-" + hashlib.sha256(seed.encode()).hexdigest()[:40]
        try:
            charge = gateway.charge(
                amount_minor=amount_minor, currency=organization.currency,
                source=source or "", idempotency_key=charge_key,
                description=f"Invoice {target.number}",
            )
        except GatewayError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        charge_reference, gateway_name = charge.reference, gateway.name
    try:
        return _record_payment(actor=actor, invoice_id=target.pk, amount_minor=amount_minor,
                               method=method, online=online, source=source or "",
                               gateway=gateway_name, reference=charge_reference)
    except PaymentExceedsBalance:
        if online:
            _give_back(gateway.name, charge_reference, amount_minor, f"{charge_key}-cancel")
        raise


def _give_back(gateway_name: str, reference: str, amount_minor: int, key: str) -> None:
    """Give back a charge we could not record: now, or durably later if the gateway is down."""
    try:
        current_gateway().cancel_charge(reference=reference, amount_minor=amount_minor,
                                        idempotency_key=key)
    except GatewayError:
        enqueue("billing.give_back_charge", gateway_name, reference, amount_minor, key)


@money_transaction()
def _record_payment(
    *, actor: Membership, invoice_id: int, amount_minor: int, method: str, online: bool,
    source: str, gateway: str, reference: str,
) -> Payment:
    invoice = lock_invoice(invoice_id)
    lines = list(invoice.lines.all())
    weights = allocation.owed_by_bucket(invoice, lines)
    payable = allocation.payable_minor(weights)
    if amount_minor > payable:
        org = actor.organization
        raise PaymentExceedsBalance(
            f"At most {display(payable, org.currency, org.locale)} can be paid", field="amount")
    shares = allocation.plan_payment(amount_minor, weights)
    now = timezone.now()
    payment = Payment.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id, invoice=invoice,
        amount_minor=amount_minor, method=method, online=online, source=source,
        gateway=gateway, gateway_reference=reference, created_at=now, created_by=actor.user,
    )
    refs = {"invoice": invoice, "payment": payment}
    entry_lines = [debit(method, amount_minor, **refs), credit("receivable", amount_minor, **refs)]
    entry_lines += _paid_into_kinds(lines, shares, refs)
    allocation.allocate(payment=payment, shares=shares, now=now)
    allocation.refresh(invoice)
    detail = f"{method} payment" + (f" via {gateway} ({reference})" if online else "")
    PaymentEvent.objects.create(payment=payment, at=now, kind="payment_taken",
                                amount_minor=amount_minor, status="succeeded",
                                by=actor.user, detail=detail)
    post(organization=actor.organization, center=invoice.center, kind="payment", at=now,
         created_by=actor.user, memo=f"Payment on invoice {invoice.number}", lines=entry_lines)
    logger.info("payment %s: %s by %s on invoice %s", payment.pk, amount_minor, method,
                invoice.pk)
    return payment


def _paid_into_kinds(lines: list[InvoiceLine], shares: allocation.Shares,
                     refs: dict[str, object]) -> list[Line]:
    """What of a payment reaches lines of a kind of their own goes where their handler says."""
    entry_lines: list[Line] = []
    for kind in sorted({line.kind for line in lines}):
        handler = handler_for(kind)
        reached = {line.pk: shares[line.pk] for line in lines
                   if line.kind == kind and any(shares[line.pk])}
        if handler is not None and reached:
            entry_lines += handler.paid_in(shares=reached, refs=refs)
    return entry_lines
