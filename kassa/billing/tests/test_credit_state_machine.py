"""A hypothesis state machine over a customer's credit: deposits (cash and card), overpayments,
payments from credit, refunds to credit, refunds out of credit (offline and to a card, some of
which fail), split refunds and write-offs, across two centers.

The machine keeps its own model of the customer's credit — what each lot holds, which lots are
card money — and after every step holds the database to it: the credit never below zero, equal
to the sum of the customer's entries and to minus their customer_credit sub-ledger, card money
never paid out other than to its card, and `kassa verify` clean. A refused step must change
nothing. Each example runs inside a savepoint rolled back at its end.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import rolled_back, run_tasks
from kassa.billing.models import CreditDraw, CreditEntry, Customer, Invoice, Payment
from kassa.billing.services import (
    LineInput,
    issue_invoice,
    take_deposit,
    take_payment,
    write_off_credit,
)
from kassa.core.errors import (
    CardRefundMustGoToCard,
    CreditInsufficient,
    DomainError,
    PaymentExceedsBalance,
    RefundExceedsRefundable,
    RefundPending,
)
from kassa.ledger.models import Posting
from kassa.ledger.verify import verify
from kassa.refunds.lifecycle import apply_gateway_result
from kassa.refunds.models import Refund
from kassa.refunds.services import Part, refund_credit, refund_invoice, refund_payment
from kassa.tenancy.services import create_center


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def snapshot() -> tuple[Any, ...]:
    return (CreditEntry.objects.count(), CreditDraw.objects.count(), Posting.objects.count(),
            Refund.objects.count(), Payment.objects.count(),
            list(Customer.objects.values_list("credit_minor", flat=True)))


amounts = st.integers(min_value=1, max_value=30_000)


class CreditMachine(RuleBasedStateMachine):
    tenant: ClassVar[Any] = None

    def __init__(self) -> None:
        super().__init__()
        self._savepoint = rolled_back()
        self._savepoint.__enter__()
        self.actor = self.tenant.admin
        self.org = self.tenant.organization
        self.customer = Customer.objects.create(organization=self.org, name="Ann Guest",
                                                email="ann@example.com")
        self.centers = [str(self.tenant.center_id),
                        str(create_center(organization=self.org, name="North").pk)]
        self.credit = 0  # the model: what the customer holds
        self.card_money: dict[int, int] = {}  # card payment id → its money still in credit
        self.card_deposits: list[int] = []  # card payments whose money went into credit
        self.invoices: list[int] = []
        self.pending_out: list[tuple[int, int, int]] = []  # (refund, card payment, amount)
        self.paid: list[int] = []  # offline payments on invoices

    def teardown(self) -> None:
        self._savepoint.__exit__(None, None, None)

    def refused(self, fn: Any, *errors: type[DomainError], **kwargs: Any) -> None:
        before = snapshot()
        with pytest.raises(errors):
            fn(**kwargs)
        assert snapshot() == before, "a refused step changed something"
        event(f"refused {fn.__name__}")

    def _invoice(self, price: int, center: int) -> int:
        invoice = issue_invoice(actor=self.actor, customer=str(self.customer.pk),
                                center=self.centers[center % 2],
                                lines=[LineInput(kind="service", description="Visit", quantity=1,
                                                 unit_price=money(price), tax_rate="8.875")])
        self.invoices.append(invoice.pk)
        return invoice.pk

    # Money in ----------------------------------------------------------------------------------

    @rule(amount=amounts, center=st.integers(0, 1), card=st.booleans())
    def deposit(self, amount: int, center: int, card: bool) -> None:
        payment = take_deposit(actor=self.actor, customer=str(self.customer.pk),
                               center=self.centers[center], amount=money(amount),
                               method="card" if card else "cash", online=card)
        self.credit += amount
        if card:
            self.card_money[payment.pk] = self.card_money.get(payment.pk, 0) + amount
            self.card_deposits.append(payment.pk)

    @rule(price=amounts, excess=st.integers(1, 10_000), center=st.integers(0, 1))
    def overpay(self, price: int, excess: int, center: int) -> None:
        invoice = self._invoice(price, center)
        owed = Invoice.objects.get(pk=invoice).balance_due_minor
        self.refused(take_payment, PaymentExceedsBalance, actor=self.actor,
                     invoice=str(invoice), amount=money(owed + excess), method="cash",
                     online=False)
        payment = take_payment(actor=self.actor, invoice=str(invoice),
                               amount=money(owed + excess), method="cash", online=False,
                               excess_to_credit=True)
        assert payment.to_credit_minor == excess
        self.credit += excess
        self.paid.append(payment.pk)

    # Money used ----------------------------------------------------------------------------------

    @rule(price=amounts, share=st.integers(1, 100), center=st.integers(0, 1))
    def pay_from_credit(self, price: int, share: int, center: int) -> None:
        invoice = self._invoice(price, center)
        owed = Invoice.objects.get(pk=invoice).balance_due_minor
        amount = max(1, owed * share // 100)
        if amount > self.credit:
            self.refused(take_payment, CreditInsufficient, actor=self.actor,
                         invoice=str(invoice), amount=money(amount), method="credit",
                         online=False)
            return
        payment = take_payment(actor=self.actor, invoice=str(invoice), amount=money(amount),
                               method="credit", online=False)
        self._take_oldest(amount)
        self.paid.append(payment.pk)

    def _take_oldest(self, amount: int) -> None:
        """Oldest money first: which card lots an application or write-off emptied is the
        database's business; the model keeps only the total and checks card money below,
        reading again what of each card's money is left (a payment from credit may have
        taken card money: the next refund out of credit can then pay out more in cash)."""
        self.credit -= amount
        self._resync_card_money()

    # Money back into credit ------------------------------------------------------------------

    @rule(index=st.integers(0, 1000), share=st.integers(1, 100))
    @precondition(lambda self: self.paid)
    def refund_a_payment_to_credit(self, index: int, share: int) -> None:
        payment = Payment.objects.get(pk=self.paid[index % len(self.paid)])
        if not payment.refundable_minor:
            return
        amount = max(1, payment.refundable_minor * share // 100)
        refund_payment(actor=self.actor, payment=payment.pk, type="credit",
                       amount=money(amount), reason="Keep it for later")
        self.credit += amount

    @rule(index=st.integers(0, 1000), a=st.integers(1, 100), b=st.integers(1, 100))
    @precondition(lambda self: len(self.invoices) > 0)
    def split_refund(self, index: int, a: int, b: int) -> None:
        invoice = self.invoices[index % len(self.invoices)]
        payments = list(Payment.objects.filter(invoice_id=invoice, status="succeeded")
                        .order_by("pk"))
        if not payments:
            return
        parts, into_credit = [], 0
        for payment, share in zip(payments, (a, b), strict=False):
            amount = max(1, payment.refundable_minor * share // 100)
            to_credit = payment.method == "credit" or share % 2 == 0
            parts.append(Part(payment=str(payment.pk), type="credit" if to_credit else "offline",
                              amount=money(amount), method=None if to_credit else "check"))
            into_credit += amount if to_credit else 0
        if any(p.refundable_minor == 0 for p in payments[:2]):
            self.refused(refund_invoice, RefundExceedsRefundable, DomainError, actor=self.actor,
                         invoice=str(invoice), reason="Cancelled", parts=parts)
            return
        refund_invoice(actor=self.actor, invoice=str(invoice), reason="Cancelled", parts=parts)
        self.credit += into_credit

    # Money out of credit ---------------------------------------------------------------------

    @rule(share=st.integers(1, 120), method=st.sampled_from(["cash", "check"]),
          override=st.booleans())
    def refund_out_offline(self, share: int, method: str, override: bool) -> None:
        amount = max(1, self.credit * share // 100)
        cash_money = self.credit - sum(self.card_money.values())
        kwargs = {"actor": self.actor, "customer": str(self.customer.pk),
                  "amount": money(amount), "reason": "Giving it back",
                  "refund_to": {"method": method},
                  "override_reason": "The card is closed" if override else None}
        if amount > self.credit:
            self.refused(refund_credit, CreditInsufficient, **kwargs)
            return
        if amount > cash_money and not override:
            self.refused(refund_credit, CardRefundMustGoToCard, **kwargs)
            return
        refund_credit(**kwargs)
        self.credit -= amount
        self._resync_card_money()

    @rule(index=st.integers(0, 1000), share=st.integers(1, 100))
    @precondition(lambda self: self.card_deposits)
    def refund_out_to_card(self, index: int, share: int) -> None:
        payment = Payment.objects.get(pk=self.card_deposits[index % len(self.card_deposits)])
        own = self.card_money.get(payment.pk, 0)
        cash_money = self.credit - sum(self.card_money.values())
        amount = max(1, min(payment.refundable_online_minor, own + cash_money) * share // 100)
        kwargs = {"actor": self.actor, "customer": str(self.customer.pk),
                  "amount": money(amount), "reason": "Back to the card",
                  "refund_to": {"payment": str(payment.pk)}}
        if payment.refund_pending:
            self.refused(refund_credit, RefundPending, **kwargs)
            return
        if not payment.refundable_online_minor or not (own + cash_money):
            return
        refund = refund_credit(**kwargs)
        self.credit -= amount
        self.pending_out.append((refund.pk, payment.pk, amount))
        self._resync_card_money()

    @rule(fails=st.booleans())
    @precondition(lambda self: self.pending_out)
    def a_refund_out_settles(self, fails: bool) -> None:
        refund_id, _payment, amount = self.pending_out.pop(0)
        run_tasks()
        apply_gateway_result(refund_id=refund_id, state="failed" if fails else "succeeded",
                             failure_reason="card expired")
        if fails:
            self.credit += amount
        self._resync_card_money()

    @rule(share=st.integers(1, 120))
    def write_off(self, share: int) -> None:
        amount = max(1, self.credit * share // 100)
        if amount > self.credit:
            self.refused(write_off_credit, CreditInsufficient, actor=self.actor,
                         customer=str(self.customer.pk), amount=money(amount),
                         reason="Unclaimed")
            return
        write_off_credit(actor=self.actor, customer=str(self.customer.pk), amount=money(amount),
                         reason="Unclaimed")
        self._take_oldest(amount)

    def _resync_card_money(self) -> None:
        """What of each card's money is still in credit, as the lots say (which lots a movement
        took is the oldest-first rule's; the invariants check the rule's consequences)."""
        left = (CreditDraw.objects.filter(lot__customer=self.customer,
                                          lot__card_payment__isnull=False)
                .values("lot__card_payment_id").annotate(s=Sum("amount_minor")))
        self.card_money = {r["lot__card_payment_id"]: int(r["s"]) for r in left if r["s"]}

    # Invariants ----------------------------------------------------------------------------------

    @invariant()
    def the_credit_is_what_the_model_and_the_books_say(self) -> None:
        customer = Customer.objects.get(pk=self.customer.pk)
        assert customer.credit_minor == self.credit >= 0
        entries = CreditEntry.objects.filter(customer=customer).aggregate(
            s=Sum("amount_minor"))["s"] or 0
        ledger = Posting.objects.filter(code="customer_credit", customer=customer).aggregate(
            s=Sum("amount_minor"))["s"] or 0
        assert entries == customer.credit_minor == -ledger
        intercenter = Posting.objects.filter(organization=self.org,
                                             code="intercenter").aggregate(
            s=Sum("amount_minor"))["s"] or 0
        assert intercenter == 0

    @invariant()
    def card_money_left_only_to_its_card(self) -> None:
        """No lot of card money ever paid out offline without an override: every offline
        refund out that drew on a card lot names an override reason."""
        for refund in Refund.objects.filter(from_credit=True, type="offline",
                                            override_reason=""):
            drew_card = CreditDraw.objects.filter(entry__refund=refund, amount_minor__lt=0,
                                                  lot__card_payment__isnull=False).exists()
            assert not drew_card, f"refund {refund.pk} paid card money out offline"

    @invariant()
    def the_books_verify(self) -> None:
        assert verify(self.org) == []


@pytest.fixture
def machine_tenant(tenant: Any, settings: Any) -> Any:
    settings.KASSA_SANDBOX_SETTLE_SECONDS = 24 * 3600
    return tenant


def test_a_customers_credit_stays_right_whatever_happens(machine_tenant: Any) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    CreditMachine.tenant = machine_tenant
    try:
        run_state_machine_as_test(CreditMachine, settings=settings(
            max_examples=20, stateful_step_count=15, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ))
    finally:
        CreditMachine.tenant = None
