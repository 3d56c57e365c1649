"""Customers, cases, invoices and payments: the reads, scoped to one organization."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from kassa.billing.models import Case, CreditEntry, Customer, Invoice, Payment
from kassa.core.lookup import get_scoped, parse_id
from kassa.tenancy.models import Organization


def customers(organization: Organization) -> QuerySet[Customer]:
    return Customer.objects.filter(organization=organization).order_by("id")


def cases(organization: Organization) -> QuerySet[Case]:
    return Case.objects.filter(organization=organization).order_by("id")


def invoices(organization: Organization) -> QuerySet[Invoice]:
    return (Invoice.objects.filter(organization=organization)
            .select_related("organization").order_by("-id"))


def find_invoices(
    organization: Organization, *, number: str | None = None, customer: str | None = None,
    query: str | None = None,
) -> QuerySet[Invoice]:
    """Find an invoice or receipt: by number, by customer id, or by a guest's name."""
    found = invoices(organization)
    if number:
        found = found.filter(number=number.strip())
    if customer:
        # Not an id of ours ("abc", "²", 20 digits): no customer has it, so nothing is found.
        found = found.filter(customer_id=parse_id(customer.strip()) or -1)
    if query:
        query = query.strip()
        found = found.filter(number=query) | found.filter(customer__name__icontains=query)
    return found


def get_customer(organization: Organization, customer_id: object) -> Customer:
    return get_scoped(customers(organization), customer_id)


def get_case(organization: Organization, case_id: object) -> Case:
    return get_scoped(cases(organization), case_id)


def get_invoice(organization: Organization, invoice_id: object) -> Invoice:
    return get_scoped(
        invoices(organization).prefetch_related("lines", "payments"), invoice_id)


def payments(organization: Organization) -> QuerySet[Payment]:
    return Payment.objects.filter(organization=organization).select_related("invoice")


def get_payment(organization: Organization, payment_id: object) -> Payment:
    return get_scoped(payments(organization), payment_id)


def find_customers(organization: Organization, query: str) -> QuerySet[Customer]:
    """The front desk's search for a family or guest: by name, contact name or e-mail."""
    query = query.strip()
    return customers(organization).filter(
        Q(name__icontains=query) | Q(contact_name__icontains=query)
        | Q(email__icontains=query))


def find_cases(organization: Organization, query: str) -> QuerySet[Case]:
    """A funeral home's cases by the decedent's name (the case's name) or the family's."""
    query = query.strip()
    return cases(organization).select_related("customer").filter(
        Q(name__icontains=query) | Q(customer__name__icontains=query))


def find_payment(organization: Organization, number: str) -> Payment | None:
    """A payment by its receipt number (its id), or None."""
    pk = parse_id(number.strip())
    return payments(organization).filter(pk=pk).first() if pk else None


def credit_entries(customer: Customer) -> QuerySet[CreditEntry]:
    """The customer's credit entries, oldest first, with who made each."""
    return customer.credit_entries.select_related("by").order_by("at", "id")
