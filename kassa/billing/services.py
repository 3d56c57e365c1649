"""Customers, cases, invoices and payments: the writes.

`issue_invoice` posts the sale; `take_payment` charges the gateway (for an online payment)
*before* its transaction, because a charge is a remote call that must never hold a row lock,
then records the payment under the invoice's lock, re-checking the balance due. Should the
invoice have been paid meanwhile, the charge is given back and the payment refused.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from kassa.billing.allocation import split_pro_rata
from kassa.billing.locks import lock_invoice, lock_organization
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
    PaymentAllocation,
    PaymentEvent,
)
from kassa.core.errors import (
    GatewayUnavailable,
    InvalidAmount,
    PaymentExceedsBalance,
    ValidationFailed,
)
from kassa.core.lookup import get_scoped
from kassa.core.money import (
    AMOUNT_GRAMMAR,
    MAX_MINOR,
    display,
    parse_amount,
    round_half_up_minor,
)
from kassa.gateways.base import GatewayError
from kassa.gateways.registry import current_gateway
from kassa.ledger.services import credit, debit, post
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import get_center
from kassa.tenancy.services import require_writer

MAX_LINES = 100
MAX_QUANTITY = 10_000
DESCRIPTION_MAX = InvoiceLine._meta.get_field("description").max_length or 200


@dataclass(frozen=True)
class LineInput:
    kind: str
    description: str
    quantity: int
    unit_price: str | None = None  # a package line defaults to its template's price
    tax_rate: str | None = None  # and tax rate; other lines default to no tax
    package_template: str | None = None


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


@transaction.atomic
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
    templates: dict[int, object] = {}
    for i, line in enumerate(lines):
        where_field = f"lines[{i}]"
        if line.kind not in (LineKind.SERVICE, LineKind.PRODUCT, LineKind.PACKAGE):
            raise ValidationFailed(f"{where_field}.kind", "must be service, product or package")
        if len(line.description) > DESCRIPTION_MAX:  # the column's limit (PostgreSQL enforces it)
            raise ValidationFailed(f"{where_field}.description",
                                   f"at most {DESCRIPTION_MAX} characters")
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise ValidationFailed(f"{where_field}.quantity", f"must be 1 to {MAX_QUANTITY}")
        template = None
        if line.kind == LineKind.PACKAGE:
            from kassa.packages.services import template_for_line

            if not line.package_template:
                raise ValidationFailed(f"{where_field}.package_template",
                                       "a package line names its package template")
            template = template_for_line(organization.pk, line.package_template,
                                         field=f"{where_field}.package_template")
            if line.quantity != 1:
                raise ValidationFailed(f"{where_field}.quantity",
                                       "a package line sells one package: use one line each")
        elif line.package_template:
            raise ValidationFailed(f"{where_field}.package_template",
                                   "only a package line has a package template")
        if line.unit_price is not None:
            unit = parse_amount(line.unit_price, currency, field=f"{where_field}.unit_price")
        elif template is not None:
            unit = template.price_minor
        else:
            raise ValidationFailed(f"{where_field}.unit_price", "is required")
        if line.tax_rate is not None:
            rate = parse_tax_rate(line.tax_rate, field=f"{where_field}.tax_rate")
        else:
            rate = template.tax_rate if template is not None else Decimal(0)
        templates[i] = template
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

    # A package line's net is not revenue yet: it is a package sold, unpaid, until payments
    # turn it into liability and redemptions into revenue.
    revenue = {LineKind.SERVICE: "revenue_service", LineKind.PRODUCT: "revenue_product"}
    entry_lines = [debit("receivable", invoice.total_minor, invoice=invoice)]
    for i, row in enumerate(built):
        if row.kind == LineKind.PACKAGE:
            from kassa.packages.services import open_package

            package = open_package(invoice=invoice, line=row,
                                   template=templates[i])  # type: ignore[arg-type]
            entry_lines.append(credit("package_sold_unpaid", row.net_minor, invoice=invoice,
                                      package=package))
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
    payable = payable_minor(target, owed_by_bucket(target))
    if amount_minor > payable:
        raise PaymentExceedsBalance(
            f"At most {display(payable, organization.currency, organization.locale)} can be paid",
            field="amount")

    charge_reference = gateway_name = ""
    if online:
        gateway = current_gateway()
        # The same request retried (same Idempotency-Key) asks the gateway for the same charge.
        seed = f"{organization.pk}:{request_key}" if request_key else uuid.uuid4().hex
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
    from kassa.billing.tasks import give_back_charge

    try:
        current_gateway().cancel_charge(reference=reference, amount_minor=amount_minor,
                                        idempotency_key=key)
    except GatewayError:
        give_back_charge.enqueue(gateway_name, reference, amount_minor, key)


@transaction.atomic
def _record_payment(
    *, actor: Membership, invoice_id: int, amount_minor: int, method: str, online: bool,
    source: str, gateway: str, reference: str,
) -> Payment:
    invoice = lock_invoice(invoice_id)
    lines = list(invoice.lines.all())
    weights = owed_by_bucket(invoice, lines)
    payable = payable_minor(invoice, weights)
    if amount_minor > payable:
        org = actor.organization
        raise PaymentExceedsBalance(
            f"At most {display(payable, org.currency, org.locale)} can be paid", field="amount")
    now = timezone.now()
    payment = Payment.objects.create(
        organization_id=invoice.organization_id, center_id=invoice.center_id, invoice=invoice,
        amount_minor=amount_minor, method=method, online=online, source=source,
        gateway=gateway, gateway_reference=reference, created_at=now, created_by=actor.user,
    )
    shares = split_pro_rata(amount_minor, weights)
    allocations = []
    package_lines = []
    for line in lines:
        net, tax = shares[(line.pk, "net")], shares[(line.pk, "tax")]
        if line.kind == LineKind.PACKAGE and (net or tax):
            from kassa.packages.services import pay_in

            package_lines += pay_in(line=line, net_minor=net, tax_minor=tax,
                                    refs={"invoice": invoice, "payment": payment})
        if net or tax:
            line.paid_net_minor += net
            line.paid_tax_minor += tax
            line.save(update_fields=["paid_net_minor", "paid_tax_minor"])
            allocations.append(PaymentAllocation(payment=payment, line=line, net_minor=net,
                                                 tax_minor=tax, created_at=now))
    PaymentAllocation.objects.bulk_create(allocations)

    invoice.paid_minor += amount_minor
    refresh_invoice_figures(invoice)
    detail = f"{method} payment" + (f" via {gateway} ({reference})" if online else "")
    PaymentEvent.objects.create(payment=payment, at=now, kind="payment_taken",
                                amount_minor=amount_minor, status="succeeded",
                                by=actor.user, detail=detail)
    post(organization=actor.organization, center=invoice.center, kind="payment", at=now,
         created_by=actor.user, memo=f"Payment on invoice {invoice.number}", lines=[
             debit(method, amount_minor, invoice=invoice, payment=payment),
             credit("receivable", amount_minor, invoice=invoice, payment=payment),
             *package_lines,
         ])
    return payment


def owed_by_bucket(
    invoice: Invoice, lines: list[InvoiceLine] | None = None,
) -> list[tuple[tuple[int, str], int]]:
    """What each line still owes, net and tax apart, that a new payment may cover.

    What a pending online refund re-opened is left out: that money is on its way back to the
    customer, and should the refund fail it was never owed again. (Were it payable, a failed
    refund would leave the invoice paid twice.)
    """
    from django.db.models import Sum

    reopened = {
        row["line_id"]: (-(row["net"] or 0), -(row["tax"] or 0))
        for row in PaymentAllocation.objects.filter(
            line__invoice=invoice, refund__status="pending",
            refund__decrease_balance_owed=False,
        ).values("line_id").annotate(net=Sum("net_minor"), tax=Sum("tax_minor"))
    }
    weights: list[tuple[tuple[int, str], int]] = []
    for line in lines if lines is not None else invoice.lines.all():
        net, tax = reopened.get(line.pk, (0, 0))
        weights.append(((line.pk, "net"), line.owed_net_minor - net))
        weights.append(((line.pk, "tax"), line.owed_tax_minor - tax))
    return weights


def payable_minor(invoice: Invoice, weights: list[tuple[tuple[int, str], int]]) -> int:
    return sum(w for _, w in weights)


def refresh_invoice_figures(invoice: Invoice) -> None:
    """Recompute balance due and status from the stored parts, and save the invoice."""
    invoice.balance_due_minor = (invoice.total_minor - invoice.credits_minor
                                 - invoice.paid_minor + invoice.refunded_minor)
    assert invoice.balance_due_minor >= 0, f"invoice {invoice.pk} balance due below zero"
    invoice.status = InvoiceStatus.OPEN if invoice.balance_due_minor > 0 else InvoiceStatus.CLOSED
    invoice.save(update_fields=["credits_minor", "paid_minor", "refunded_minor",
                                "balance_due_minor", "status"])
