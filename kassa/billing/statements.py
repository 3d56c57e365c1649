"""Statements of account (kassa.documents): what a customer, or a case, owed as of a moment,
drawn from the ledger — every journal entry up to that moment that moved the receivable of
their invoices, with the running balance, and (for a customer) the credit they held.

Entries are never edited, so a statement as of a moment past always gives the same figures
and the same code; the books have moved since when the same statement as of now differs.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from kassa.billing.models import Case, Customer, Invoice
from kassa.billing.selectors import get_case, get_customer
from kassa.core.money import display
from kassa.documents import codes
from kassa.documents.pdf import Document, render
from kassa.ledger.models import Posting
from kassa.tenancy.models import Organization

MAX_ROWS = 500  # a statement lists at most this many entries (the oldest are summed up)


@dataclass(frozen=True)
class Issued:
    document: Document
    code: str
    total_minor: int
    as_of: dt.datetime
    figures: tuple[object, ...]
    moved_since: bool = False

    def pdf(self) -> bytes:
        return render(self.document)


def _rows(org: Organization, invoice_ids: list[int],
          as_of: dt.datetime) -> list[dict[str, Any]]:
    return list(Posting.objects.filter(
        organization=org, code="receivable", invoice_id__in=invoice_ids,
        entry__created_at__lte=as_of)
        .values("entry_id", "entry__created_at", "entry__kind", "entry__memo",
                "invoice__number")
        .annotate(amount=Sum("amount_minor")).order_by("entry__created_at", "entry_id",
                                                       "invoice__number"))  # type: ignore[arg-type]


def _credit(org: Organization, customer: Customer, as_of: dt.datetime) -> int:
    held = Posting.objects.filter(organization=org, code="customer_credit",
                                  customer=customer, entry__created_at__lte=as_of
                                  ).aggregate(s=Sum("amount_minor"))["s"] or 0
    return -held  # a liability: credited when the customer's credit grows


def _statement(org: Organization, kind: str, obj_id: int, title: str, customer: Customer,
               invoice_ids: list[int], as_of: dt.datetime, with_credit: bool) -> Issued:
    money = lambda minor: display(minor, org.currency, org.locale)  # noqa: E731
    zone = zoneinfo.ZoneInfo(org.timezone)
    rows = _rows(org, invoice_ids, as_of)
    owed = sum(r["amount"] for r in rows)
    credit = _credit(org, customer, as_of) if with_credit else 0
    figures = (owed, credit, len(rows), rows[-1]["entry_id"] if rows else 0)
    code = codes.code_for(codes.Coded(kind, org.pk, obj_id, as_of), figures)
    running, table = 0, list[tuple[str, ...]]()
    for r in rows:
        running += r["amount"]
        table.append((r["entry__created_at"].astimezone(zone).strftime("%Y-%m-%d"),
                      r["invoice__number"] or "", (r["entry__memo"] or r["entry__kind"])[:40],
                      money(r["amount"]), money(running)))
    facts = [("Customer", customer.name)]
    if with_credit:
        facts.append(("Credit held", money(credit)))
    document = Document(
        kind="Statement of account", organization=org.name, title=title,
        as_of=as_of.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"), facts=facts,
        columns=("Date", "Invoice", "Entry", "Amount", "Balance"),
        rows=table[-MAX_ROWS:], total_label="Balance owed", total=money(owed), code=code)
    return Issued(document, code, owed, as_of, figures)


def _of_customer(customer: Customer, as_of: dt.datetime) -> Issued:
    org = customer.organization
    ids = list(Invoice.objects.filter(organization=org, customer=customer)
               .values_list("pk", flat=True))
    return _statement(org, "C", customer.pk, f"Statement for {customer.name}", customer, ids,
                      as_of, with_credit=True)


def _of_case(case: Case, as_of: dt.datetime) -> Issued:
    org = case.organization
    ids = list(Invoice.objects.filter(organization=org, case=case).values_list("pk", flat=True))
    return _statement(org, "K", case.pk, f"Statement for {case.name}", case.customer, ids,
                      as_of, with_credit=False)


def _moment(as_of: dt.datetime | None) -> dt.datetime:
    return (as_of or timezone.now()).astimezone(dt.UTC)


def customer_statement(organization: Organization, customer_id: object,
                       as_of: dt.datetime | None = None) -> Issued:
    return _of_customer(get_customer(organization, customer_id), _moment(as_of))


def case_statement(organization: Organization, case_id: object,
                   as_of: dt.datetime | None = None) -> Issued:
    return _of_case(get_case(organization, case_id), _moment(as_of))


def verify(coded: codes.Coded, code: str) -> Issued | None:
    """The statement a code names, if the code is its code, with whether the books moved since."""
    if coded.kind == "C":
        customer = (Customer.objects.select_related("organization")
                    .filter(organization_id=coded.organization_id, pk=coded.object_id).first())
        if customer is None:
            return None
        then, now = _of_customer(customer, coded.as_of), _of_customer(customer, _moment(None))
    else:
        case = (Case.objects.select_related("organization", "customer")
                .filter(organization_id=coded.organization_id, pk=coded.object_id).first())
        if case is None:
            return None
        then, now = _of_case(case, coded.as_of), _of_case(case, _moment(None))
    if then.code != code:
        return None
    return Issued(then.document, then.code, then.total_minor, then.as_of, then.figures,
                  moved_since=now.figures != then.figures)
