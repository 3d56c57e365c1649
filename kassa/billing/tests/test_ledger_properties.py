"""The books stay right under any sequence of invoices and payments.

Hypothesis draws an organization's currency, then a random sequence of invoice issues (random
lines, quantities, prices and tax rates) and payments (random amounts up to the balance due,
sometimes beyond it, random methods, online or offline) and runs it through the services. After
every step: every journal entry balances, each invoice's balance due is its receivable
sub-ledger, the lines' paid parts add up to the invoice's paid and each tender account holds
what was paid by it; at the end `verify` finds nothing. A refused overpayment changes nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rolled_back
from kassa.billing.models import Invoice, InvoiceLine, Payment
from kassa.billing.services import LineInput, create_customer, issue_invoice, take_payment
from kassa.core.errors import PaymentExceedsBalance
from kassa.core.money import MAX_MINOR, exponent, format_decimal_string
from kassa.ledger.models import Posting
from kassa.ledger.selectors import balance
from kassa.ledger.verify import verify
from kassa.tenancy.services import create_organization

OFFLINE = ["cash", "check", "insurance", "other"]
ONLINE = ["card", "ach"]

tax_rates = st.one_of(
    st.sampled_from(["0", "5", "7.25", "8.875", "10", "20", "100"]),
    st.decimals(min_value=0, max_value=100, places=4).map(lambda d: f"{d:f}"),
)


@st.composite
def lines(draw, currency):
    unit = 10 ** exponent(currency)
    count = draw(st.integers(1, 4))
    return [
        LineInput(
            kind=draw(st.sampled_from(["service", "product"])),
            description=f"line {i}",
            quantity=draw(st.integers(1, 12)),
            # from one minor unit to 20,000 major units, the odd amounts most likely
            unit_price=format_decimal_string(draw(st.integers(1, 20_000 * unit)), currency),
            tax_rate=draw(tax_rates),
        )
        for i in range(count)
    ]


def check_books(org, invoices):
    unbalanced = (Posting.objects.filter(organization=org).values("entry_id")
                  .annotate(s=Sum("amount_minor")).exclude(s=0))
    assert not unbalanced.exists()
    for inv in Invoice.objects.filter(pk__in=invoices):
        assert inv.balance_due_minor == balance("receivable", invoice_id=inv.pk)
        assert inv.balance_due_minor == inv.total_minor - inv.paid_minor
        assert 0 <= inv.balance_due_minor <= inv.total_minor <= MAX_MINOR
        assert inv.status == ("open" if inv.balance_due_minor else "closed")
        paid_lines = InvoiceLine.objects.filter(invoice=inv).aggregate(
            n=Sum("paid_net_minor"), t=Sum("paid_tax_minor"))
        assert paid_lines["n"] + paid_lines["t"] == inv.paid_minor
        assert inv.paid_minor == sum(p.amount_minor for p in inv.payments.all())
    by_method = Counter()
    for p in Payment.objects.filter(organization=org):
        by_method[p.method] += p.amount_minor
    for method in OFFLINE + ONLINE:
        assert balance(method, organization=org) == by_method[method]
    assert balance("receivable", organization=org) == sum(
        Invoice.objects.filter(organization=org).values_list("balance_due_minor", flat=True))


@pytest.mark.django_db
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_sequence_of_invoices_and_payments_keeps_the_books_right(data):
    currency = data.draw(st.sampled_from(["USD", "JPY", "KWD"]), label="currency")
    # Each example in a savepoint that is rolled back: the next one starts from an empty
    # database, however many examples run.
    with rolled_back():
        org, admin, _ = create_organization(name="Property Spa", currency=currency,
                                            admin_email="admin@property.example")
        center = str(org.centers.get().pk)
        customer = str(create_customer(actor=admin, name="Guest", email="g@example.com").pk)
        invoices: list[int] = []
        for _ in range(data.draw(st.integers(1, 10), label="steps")):
            # In a fixed order: what a draw picks must not depend on where PostgreSQL happens
            # to keep the rows, or Hypothesis sees the same choices make different data.
            payable = list(Invoice.objects.filter(pk__in=invoices, balance_due_minor__gt=0)
                           .order_by("pk").values_list("pk", "balance_due_minor"))
            if not payable or data.draw(st.integers(0, 3), label="issue?") == 0:
                issued = issue_invoice(actor=admin, customer=customer, center=center,
                                       lines=data.draw(lines(currency), label="lines"))
                invoices.append(issued.pk)
            else:
                invoice_id, due = data.draw(st.sampled_from(payable), label="invoice")
                online = data.draw(st.booleans(), label="online")
                method = data.draw(st.sampled_from(ONLINE if online else OFFLINE),
                                   label="method")
                over = data.draw(st.integers(0, 5), label="over?") == 0
                amount = (data.draw(st.integers(due + 1, due + 10**6), label="too much") if over
                          else data.draw(st.one_of(st.just(due), st.integers(1, due)),
                                         label="amount"))
                kwargs = {"actor": admin, "invoice": str(invoice_id), "method": method,
                          "online": online,
                          "amount": format_decimal_string(amount, currency)}
                if over:
                    postings = Posting.objects.order_by("pk").values_list("pk", flat=True)
                    before = list(postings.all())
                    with pytest.raises(PaymentExceedsBalance):
                        take_payment(**kwargs)
                    assert list(postings.all()) == before  # .all(): a fresh query, not the cache
                    assert Invoice.objects.get(pk=invoice_id).balance_due_minor == due
                else:
                    take_payment(**kwargs)
            check_books(org, invoices)
        # every check of every app, once the sequence is done (the step checks are the fast
        # subset that concerns invoices and payments)
        assert verify(org) == []
