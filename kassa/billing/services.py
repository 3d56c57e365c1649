"""Customers, cases, invoices and payments: the writes.

`issue_invoice` posts the sale; `take_payment` records a payment under the invoice's lock,
checking the balance due less what online payments still processing hold of it. An online
payment is recorded before its charge, which is a remote call made outside every lock
(`kassa.billing.charges`).

What lines of a kind of their own do (a package line opens a package; money reaching it is paid
into the package) is the business of the app that registered the kind (`line_kinds`).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.utils import timezone

from kassa.billing import allocation, charges
from kassa.billing.inputs import LineInput
from kassa.billing.line_kinds import handler_for
from kassa.billing.models import (
    ONLINE_METHODS,
    Case,
    ChargeState,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Method,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from kassa.core.errors import (
    InvalidAmount,
    PaymentExceedsBalance,
    ValidationFailed,
)
from kassa.core.locks import lock_invoice, lock_organization, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import (
    AMOUNT_GRAMMAR,
    MAX_MINOR,
    display,
    parse_amount,
    round_half_up_minor,
)
from kassa.gateways.registry import current_gateway
from kassa.ledger.services import credit, debit, post
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_writer

logger = logging.getLogger("kassa.billing")

MAX_LINES = 100
MAX_QUANTITY = 10_000
DESCRIPTION_MAX = InvoiceLine._meta.get_field("description").max_length or 200

def create_customer(*, actor: Membership, name: str, email: str,
                    contact_name: str = "") -> Customer:
    require_writer(actor)
    return Customer.objects.create(organization=actor.organization, name=name, email=email,
                                   contact_name=contact_name)


def update_customer(*, actor: Membership, customer: str, name: str | None = None,
                    email: str | None = None, contact_name: str | None = None) -> Customer:
    """Change a customer's name, e-mail or contact name (what is None stays as it is)."""
    require_writer(actor)
    found = get_scoped(Customer.objects.filter(organization=actor.organization), customer)
    changed = []
    for attribute, value in (("name", name), ("email", email), ("contact_name", contact_name)):
        if value is not None:
            setattr(found, attribute, value)
            changed.append(attribute)
    if changed:
        found.save(update_fields=changed)
    return found


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
            organization_id=organization.pk, position=i + 1, kind=line.kind,
            description=line.description,
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
    """Record a payment. An online one is recorded first, as an intent, then charged outside
    every lock and booked (`kassa.billing.charges`); a retry of a request that died (same
    Idempotency-Key) goes on with the payment it left instead of charging again."""
    require_writer(actor)
    organization = actor.organization
    target = get_scoped(Invoice.objects.filter(organization=organization), invoice)
    amount_minor = parse_amount(amount, organization.currency)
    _validate_method(method, online)
    if not online:
        if source:
            raise ValidationFailed("source", "only an online payment has a source")
        return _record_payment(actor=actor, invoice_id=target.pk, amount_minor=amount_minor,
                               method=method, request_key=request_key or "")
    gateway = current_gateway()
    gateway.check_source(source or "")
    payment, fresh = _open_intent(actor=actor, invoice_id=target.pk, amount_minor=amount_minor,
                                  method=method, source=source or "", gateway=gateway.name,
                                  request_key=request_key or "")
    return charges.charge(payment) if fresh else charges.resume(payment)


def _payable_now(invoice: Invoice, lines: list[InvoiceLine], actor: Membership,
                 amount_minor: int) -> allocation.Weights:
    """What the invoice owes by bucket, refusing an amount over its balance less what payments
    still processing hold of it (read under the invoice's lock)."""
    weights = allocation.owed_by_bucket(invoice, lines)
    reserved = charges.reserved_minor(invoice.pk)
    payable = allocation.payable_minor(weights) - reserved
    if amount_minor > payable:
        org = actor.organization
        most = display(max(payable, 0), org.currency, org.locale)
        held = (f"; {display(reserved, org.currency, org.locale)} is being charged online"
                if reserved else "")
        raise PaymentExceedsBalance(f"At most {most} can be paid{held}", field="amount")
    return weights


@money_transaction()
def _open_intent(
    *, actor: Membership, invoice_id: int, amount_minor: int, method: str, source: str,
    gateway: str, request_key: str,
) -> tuple[Payment, bool]:
    """The online payment's row, before its charge: it holds its amount of the balance. Or the
    one this request made before it died (same Idempotency-Key; read under the invoice's lock,
    so two runs of one request make one payment), and False."""
    invoice = lock_invoice(invoice_id)
    if request_key and (earlier := charges.resumable(
            invoice, request_key, amount_minor=amount_minor, method=method, online=True,
            source=source)):
        return earlier, False
    _payable_now(invoice, list(invoice.lines.all()), actor, amount_minor)
    now = timezone.now()
    payment = Payment.objects.create(  # with its invoice, organization and creator at hand
        organization=invoice.organization, center=invoice.center, invoice=invoice,
        amount_minor=amount_minor, method=method, online=True, source=source, gateway=gateway,
        status=PaymentStatus.PROCESSING, charge_state=ChargeState.CHARGING,
        next_attempt_at=now + charges.RESOLVE_AFTER, request_key=request_key,
        created_at=now, created_by=actor.user,
    )
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=now, kind="payment_started",
                                amount_minor=amount_minor, status=PaymentStatus.PROCESSING,
                                by=actor.user, detail=f"{method} charge via {gateway}")
    return payment, True


@money_transaction()
def _record_payment(*, actor: Membership, invoice_id: int, amount_minor: int,
                    method: str, request_key: str) -> Payment:
    invoice = lock_invoice(invoice_id)
    if request_key and (earlier := charges.resumable(
            invoice, request_key, amount_minor=amount_minor, method=method, online=False,
            source="")):
        return earlier  # its request died after it committed: this is its answer
    lines = list(invoice.lines.all())
    weights = _payable_now(invoice, lines, actor, amount_minor)
    now = timezone.now()
    payment = Payment.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id, invoice=invoice,
        amount_minor=amount_minor, method=method, online=False, request_key=request_key,
        created_at=now, created_by=actor.user,
    )
    charges.book(payment, invoice, lines, weights, now=now, by=actor.user,
                 detail=f"{method} payment")
    return payment
