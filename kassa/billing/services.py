"""Customers, cases, invoices and payments: the writes.

`issue_invoice` posts the sale; `take_payment` records a payment under the invoice's lock,
checking the balance due less what online payments still processing hold of it. An online
payment is recorded before its charge, which is a remote call made outside every lock
(`kassa.billing.charges`).

What lines of a kind of their own do (a package line opens a package; money reaching it is paid
into the package) is the business of the app that registered the kind (`line_kinds`).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from kassa.audit.services import record
from kassa.billing import allocation, charges, webhook_events
from kassa.billing import credit as customer_credit
from kassa.billing.inputs import LineInput
from kassa.billing.line_kinds import handler_for
from kassa.billing.models import (
    ONLINE_METHODS,
    Case,
    ChargeState,
    CreditEntry,
    CreditKind,
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
from kassa.core.locks import lock_customer, lock_invoice, lock_organization, money_transaction
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
from kassa.tenancy.models import Center, Membership
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_admin, require_writer

logger = logging.getLogger("kassa.billing")

MAX_LINES = 100
MAX_QUANTITY = 10_000
DESCRIPTION_MAX = InvoiceLine._meta.get_field("description").max_length or 200

def create_customer(*, actor: Membership, name: str, email: str,
                    contact_name: str = "") -> Customer:
    require_writer(actor)
    with transaction.atomic():
        made = Customer.objects.create(organization=actor.organization, name=name,
                                       email=email, contact_name=contact_name)
        record(organization_id=made.organization_id, actor=actor.user,
               action="customer.created", object=f"customer:{made.pk}",
               detail={"name": name, "email": email, "contact_name": contact_name})
    return made


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
        with transaction.atomic():
            found.save(update_fields=changed)
            record(organization_id=found.organization_id, actor=actor.user,
                   action="customer.updated", object=f"customer:{found.pk}",
                   detail={name: getattr(found, name) for name in changed})
    return found


def create_case(*, actor: Membership, customer: str, name: str) -> Case:
    require_writer(actor)
    owner = get_scoped(
        Customer.objects.filter(organization=actor.organization), customer, field="customer"
    )
    with transaction.atomic():
        made = Case.objects.create(organization=actor.organization, customer=owner, name=name)
        record(organization_id=made.organization_id, actor=actor.user, action="case.created",
               object=f"case:{made.pk}", detail={"customer": owner.pk, "name": name})
    return made


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
    revenue = {LineKind.SERVICE: "revenue_service", LineKind.PRODUCT: "revenue_product",
               LineKind.FEE: "revenue_fee"}
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
    record(organization_id=organization.pk, actor=actor.user, action="invoice.issued",
           object=f"invoice:{invoice.pk}",
           detail={"number": number, "customer": owner.pk, "total_minor": invoice.total_minor})
    return invoice


def add_fee(invoice: Invoice, *, amount_minor: int, description: str, at: dt.datetime,
            by: Any) -> InvoiceLine:
    """An untaxed fee line added to an issued invoice (a returned check's fee), its invoice
    locked by the caller: the invoice's total and its balance due grow by it, and it is sold
    as any line is (`invoice_issued`: Dr receivable · Cr revenue: fees)."""
    last = invoice.lines.order_by("-position").values_list("position", flat=True).first() or 0
    line = InvoiceLine.objects.create(
        organization_id=invoice.organization_id, invoice=invoice, position=last + 1,
        kind=LineKind.FEE, description=description[:200], quantity=1,
        unit_price_minor=amount_minor, tax_rate=Decimal(0), net_minor=amount_minor,
        tax_minor=0)
    invoice.subtotal_minor += amount_minor
    invoice.total_minor += amount_minor
    invoice.balance_due_minor += amount_minor
    invoice.status = InvoiceStatus.OPEN
    invoice.save(update_fields=["subtotal_minor", "total_minor", "balance_due_minor", "status"])
    post(organization=invoice.organization, center=invoice.center, kind="invoice_issued",
         created_by=by, at=at, memo=f"Invoice {invoice.number}: {description}"[:300],
         lines=[debit("receivable", amount_minor, invoice=invoice),
                credit("revenue_fee", amount_minor, invoice=invoice)])
    allocation.refresh(invoice)
    return line


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
    source: str | None = None, request_key: str | None = None, excess_to_credit: bool = False,
) -> Payment:
    """Record a payment. An online one is recorded first, as an intent, then charged outside
    every lock and booked (`kassa.billing.charges`); a retry of a request that died (same
    Idempotency-Key) goes on with the payment it left instead of charging again.

    `excess_to_credit`: the tender may exceed the balance due; the balance is paid and the
    rest goes into the customer's credit. `method` credit pays from that credit."""
    require_writer(actor)
    organization = actor.organization
    target = get_scoped(Invoice.objects.filter(organization=organization), invoice)
    amount_minor = parse_amount(amount, organization.currency)
    _validate_method(method, online)
    if method == Method.CREDIT and excess_to_credit:
        raise ValidationFailed("excess_to_credit",
                               "a payment from credit pays at most the balance due")
    if not online:
        if source:
            raise ValidationFailed("source", "only an online payment has a source")
        return _record_payment(actor=actor, invoice_id=target.pk, customer_id=target.customer_id,
                               amount_minor=amount_minor, method=method,
                               request_key=request_key or "", excess_to_credit=excess_to_credit)
    gateway = current_gateway()
    gateway.check_source(source or "")
    payment, fresh = _open_intent(actor=actor, invoice_id=target.pk,
                                  customer_id=target.customer_id, amount_minor=amount_minor,
                                  method=method, source=source or "", gateway=gateway.name,
                                  request_key=request_key or "",
                                  excess_to_credit=excess_to_credit)
    return charges.charge(payment) if fresh else charges.resume(payment)


def _payable_now(invoice: Invoice, lines: list[InvoiceLine], actor: Membership,
                 amount_minor: int, *, excess_to_credit: bool = False,
                 ) -> tuple[allocation.Weights, int]:
    """What the invoice owes by bucket, and what of `amount_minor` goes into credit: refusing
    an amount over its balance less what payments still processing hold of it (read under the
    invoice's lock), unless the excess is to be kept as credit."""
    weights = allocation.owed_by_bucket(invoice, lines)
    reserved = charges.reserved_minor(invoice.pk)
    payable = allocation.payable_minor(weights) - reserved
    if amount_minor > payable:
        if excess_to_credit:
            return weights, amount_minor - max(payable, 0)
        org = actor.organization
        most = display(max(payable, 0), org.currency, org.locale)
        held = (f"; {display(reserved, org.currency, org.locale)} is being charged online"
                if reserved else "")
        raise PaymentExceedsBalance(f"At most {most} can be paid{held}", field="amount")
    return weights, 0


@money_transaction()
def _open_intent(
    *, actor: Membership, invoice_id: int | None, customer_id: int, amount_minor: int,
    method: str, source: str, gateway: str, request_key: str, excess_to_credit: bool = False,
    center: Center | None = None, note: str = "",
) -> tuple[Payment, bool]:
    """The online payment's row, before its charge: it holds its amount of the balance (less
    what it will put into credit). Or the one this request made before it died (same
    Idempotency-Key; read under the lock, so two runs of one request make one payment), and
    False. A deposit (no invoice) is an intent of the customer's, at `center`."""
    # The customer first when credit moves (the lock order), then the invoice.
    customer = lock_customer(customer_id) if excess_to_credit or invoice_id is None else None
    invoice = lock_invoice(invoice_id) if invoice_id is not None else None
    if request_key and (earlier := charges.resumable(
            actor.organization, request_key, invoice_id=invoice_id, customer_id=customer_id,
            amount_minor=amount_minor, method=method, online=True, source=source)):
        return earlier, False
    if invoice is not None:
        _, to_credit = _payable_now(invoice, list(invoice.lines.all()), actor, amount_minor,
                                    excess_to_credit=excess_to_credit)
        where = invoice.center
    else:
        assert customer is not None and center is not None
        to_credit, where = amount_minor, center
    now = timezone.now()
    payment = Payment.objects.create(
        organization=actor.organization, center=where, invoice=invoice,
        customer_id=customer_id, to_credit_minor=to_credit,
        amount_minor=amount_minor, method=method, online=True, source=source, gateway=gateway,
        status=PaymentStatus.PROCESSING, charge_state=ChargeState.CHARGING,
        next_attempt_at=now + charges.RESOLVE_AFTER, request_key=request_key,
        created_at=now, created_by=actor.user,
    )
    if customer is not None:
        payment.customer = customer
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=now, kind="payment_started" if invoice else "deposit_started",
                                amount_minor=amount_minor, status=PaymentStatus.PROCESSING,
                                by=actor.user,
                                detail=f"{method} charge via {gateway}" + (f": {note}" if note
                                                                         else ""))
    return payment, True


@money_transaction()
def _record_payment(*, actor: Membership, invoice_id: int, customer_id: int, amount_minor: int,
                    method: str, request_key: str, excess_to_credit: bool = False) -> Payment:
    # The customer first when credit moves (the lock order), then the invoice.
    customer = (lock_customer(customer_id)
                if excess_to_credit or method == Method.CREDIT else None)
    invoice = lock_invoice(invoice_id)
    if request_key and (earlier := charges.resumable(
            actor.organization, request_key, invoice_id=invoice.pk, customer_id=customer_id,
            amount_minor=amount_minor, method=method, online=False, source="")):
        return earlier  # its request died after it committed: this is its answer
    lines = list(invoice.lines.all())
    weights, to_credit = _payable_now(invoice, lines, actor, amount_minor,
                                      excess_to_credit=excess_to_credit)
    now = timezone.now()
    payment = Payment.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id, invoice=invoice,
        customer_id=customer_id, to_credit_minor=to_credit,
        amount_minor=amount_minor, method=method, online=False, request_key=request_key,
        created_at=now, created_by=actor.user,
    )
    charges.book(payment, invoice, lines, weights, now=now, by=actor.user,
                 detail="paid from account credit" if method == Method.CREDIT
                 else f"{method} payment" + (" (the excess kept as credit)" if to_credit else ""),
                 customer=customer)
    webhook_events.announce("payment.succeeded", payment, actor=actor.user)
    return payment


# --- deposits: money into a customer's credit, on no invoice ---------------------------------

def take_deposit(
    *, actor: Membership, customer: str, center: str, amount: str, method: str, online: bool,
    source: str | None = None, note: str = "", request_key: str | None = None,
) -> Payment:
    """Take money into the customer's credit before anything is invoiced (a funeral home's
    deposit, a spa's prepaid account): a payment with no invoice. Online, it follows the
    payment rules (recorded, charged outside every lock, booked; declined is 402)."""
    require_writer(actor)
    organization = actor.organization
    owner = get_scoped(Customer.objects.filter(organization=organization), customer)
    where = get_center(organization, center, field="center")
    amount_minor = parse_amount(amount, organization.currency)
    _validate_method(method, online)
    if method == Method.CREDIT:
        raise ValidationFailed("method", "a deposit is money received: not from credit")
    note = (note or "").strip()
    if len(note) > 500:
        raise ValidationFailed("note", "at most 500 characters")
    if not online:
        if source:
            raise ValidationFailed("source", "only an online payment has a source")
        return _record_deposit(actor=actor, customer_id=owner.pk, center=where,
                               amount_minor=amount_minor, method=method, note=note,
                               request_key=request_key or "")
    gateway = current_gateway()
    gateway.check_source(source or "")
    payment, fresh = _open_intent(actor=actor, invoice_id=None, customer_id=owner.pk,
                                  amount_minor=amount_minor, method=method,
                                  source=source or "", gateway=gateway.name,
                                  request_key=request_key or "", center=where, note=note)
    return charges.charge(payment) if fresh else charges.resume(payment)


@money_transaction()
def _record_deposit(*, actor: Membership, customer_id: int, center: Center, amount_minor: int,
                    method: str, note: str, request_key: str) -> Payment:
    customer = lock_customer(customer_id)
    if request_key and (earlier := charges.resumable(
            actor.organization, request_key, invoice_id=None, customer_id=customer_id,
            amount_minor=amount_minor, method=method, online=False, source="")):
        return earlier
    now = timezone.now()
    payment = Payment.objects.create(
        organization_id=customer.organization_id, center=center, invoice=None,
        customer=customer, to_credit_minor=amount_minor, amount_minor=amount_minor,
        method=method, online=False, request_key=request_key, created_at=now,
        created_by=actor.user)
    charges.book_deposit(payment, customer, now=now, by=actor.user,
                         detail=f"{method} deposit" + (f": {note}" if note else ""))
    webhook_events.announce("payment.succeeded", payment, actor=actor.user)
    return payment


# --- credit written off --------------------------------------------------------------------

@money_transaction()
def write_off_credit(*, actor: Membership, customer: str, amount: str, reason: str,
                     ) -> CreditEntry:
    """An admin writes off what of a customer's credit will never be claimed: Dr
    customer_credit · Cr other_income, oldest money first."""
    require_admin(actor)
    organization = actor.organization
    found = get_scoped(Customer.objects.filter(organization=organization), customer)
    amount_minor = parse_amount(amount, organization.currency)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("reason", "is required")
    if len(reason) > 500:
        raise ValidationFailed("reason", "at most 500 characters")
    locked = lock_customer(found.pk)
    locked.organization = organization
    now = timezone.now()
    # The write-off is posted where the credit is held: at each lot's center.
    moved = customer_credit.take_out(
        locked, kind=CreditKind.WRITTEN_OFF, amount_minor=amount_minor,
        center=customer_credit.home_center(locked), at=now, by=actor.user,
        source=customer_credit.ANY, organization=organization, note=reason)
    for center_id, out in sorted(moved.by_center.items()):
        center_obj = get_center(organization, str(center_id), field="center")
        post(organization=organization, center=center_obj, kind="credit_written_off", at=now,
             created_by=actor.user, memo=f"Credit of {locked.name} written off: {reason}",
             lines=[debit("customer_credit", -out, customer_id=locked.pk),
                    credit("other_income", -out)])
    return moved.entry
