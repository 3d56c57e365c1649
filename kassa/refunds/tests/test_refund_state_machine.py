"""A hypothesis state machine over invoices, payments, refunds, settlements and failures.

The machine keeps its own small model of what must be true — each payment's refunds and the
status each must have — and after every step holds the database to it and to the books:
refundable never negative and equal to the amount less the refunds that did not fail, at most
one pending refund per payment, every invoice's balance due what its receivable sub-ledger
says, and `kassa verify` clean. A step the rules refuse must raise the right error and change
nothing at all.

Each example runs inside a savepoint of the test's transaction and is rolled back at its end, so
examples do not see each other and one organization serves them all; this works alike on
SQLite and PostgreSQL (the services' own transactions nest as savepoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import make_all_tasks_due, rolled_back, run_tasks
from kassa.billing.models import Invoice, InvoiceLine, LineCredit, Payment, PaymentAllocation
from kassa.billing.services import LineInput, issue_invoice, take_payment
from kassa.core.errors import (
    DomainError,
    NoteRequired,
    OnlineRefundNotAllowed,
    PaymentExceedsBalance,
    RefundExceedsRefundable,
    RefundPending,
    ValidationFailed,
)
from kassa.ledger.models import JournalEntry, Posting
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import verify
from kassa.refunds.lifecycle import apply_gateway_result
from kassa.refunds.models import Receipt, Refund
from kassa.refunds.sandbox import settle
from kassa.refunds.services import refund_payment


@dataclass
class PaymentModel:
    id: int
    invoice_id: int
    step: int
    amount: int
    online: bool
    refund_fails: bool  # sandbox_refund_fails: its refunds fail when they settle


@dataclass
class RefundModel:
    id: int
    payment: PaymentModel
    amount: int
    online: bool
    decrease: bool
    status: str
    called: bool = False  # the gateway has it (after the worker ran the call)
    succeeded_at: int | None = None  # the step it succeeded at
    held: bool = False  # failed after it succeeded, but what it re-opened was paid since


@dataclass
class Model:
    invoices: dict[int, int] = field(default_factory=dict)  # id → total
    payments: list[PaymentModel] = field(default_factory=list)
    refunds: list[RefundModel] = field(default_factory=list)

    def live(self, payment: PaymentModel) -> list[RefundModel]:
        return [r for r in self.refunds if r.payment is payment and r.status != "failed"]

    def refundable(self, payment: PaymentModel) -> int:
        return payment.amount - sum(r.amount for r in self.live(payment))

    def pending(self, payment: PaymentModel) -> bool:
        return any(r.status == "pending" for r in self.refunds if r.payment is payment)

    def balance_due(self, invoice_id: int) -> int:
        payments = [p for p in self.payments if p.invoice_id == invoice_id]
        live = [r for p in payments for r in self.live(p)]
        return (self.invoices[invoice_id] - sum(r.amount for r in live if r.decrease)
                - sum(p.amount for p in payments) + sum(r.amount for r in live))


def snapshot() -> tuple[Any, ...]:
    """Everything a refused step must leave as it was."""
    return (
        Refund.objects.count(), JournalEntry.objects.count(), Posting.objects.count(),
        Receipt.objects.count(), PaymentAllocation.objects.count(), LineCredit.objects.count(),
        Payment.objects.count(),
        sorted(Payment.objects.values_list("id", "refunded_minor", "refund_pending")),
        sorted(Invoice.objects.values_list("id", "balance_due_minor", "paid_minor",
                                           "refunded_minor", "credits_minor", "status")),
        sorted(InvoiceLine.objects.values_list("id", "paid_net_minor", "paid_tax_minor",
                                               "credited_net_minor", "credited_tax_minor")),
        sorted(Refund.objects.values_list("id", "status", "gateway_state")),
    )


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


amounts = st.integers(min_value=1, max_value=10_000)  # basis points of what is available
picks = st.integers(min_value=0, max_value=10_000)
prices = st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=3)
rates = st.sampled_from(["0", "5", "8.875", "20"])
# Online payments twice as often: they have the longer life (pending, settled, failed).
kinds = st.sampled_from(["sandbox_ok", "sandbox_ok", "sandbox_refund_fails",
                         "sandbox_refund_fails", "cash", "check", "insurance"])
overs = st.integers(min_value=0, max_value=3).map(lambda n: n == 0)  # a quarter ask too much
REASONS = ("Guest changed plans", "Service not delivered", "Duplicate charge")


class RefundMachine(RuleBasedStateMachine):
    tenant: ClassVar[Any] = None

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.step = 0
        self._verified: Any = None
        self.actor = self.tenant.admin
        self.org = self.tenant.organization
        self.customer = self.tenant.customer_id
        self._savepoint = rolled_back()
        self._savepoint.__enter__()

    def teardown(self) -> None:
        self._savepoint.__exit__(None, None, None)

    # Helpers ---------------------------------------------------------------------------------

    def refused(self, error: type[DomainError], fn: Any, **kwargs: Any) -> DomainError:
        before = snapshot()
        with pytest.raises(error) as caught:
            fn(**kwargs)
        assert snapshot() == before, f"{error.__name__} changed something"
        event(f"refused: {error.__name__}")
        return caught.value

    def pick(self, items: list[Any], index: int) -> Any:
        return items[index % len(items)]

    # Rules: invoices and payments ------------------------------------------------------------

    def _issue(self, prices: list[int], rate: str) -> int:
        inv = issue_invoice(actor=self.actor, customer=self.customer,
                            center=self.tenant.center_id,
                            lines=[LineInput(kind="service", description=f"Service {i}",
                                             quantity=1, unit_price=money(p), tax_rate=rate)
                                   for i, p in enumerate(prices)])
        self.model.invoices[inv.pk] = inv.total_minor
        return inv.pk

    def _pay(self, invoice_id: int, share: int, kind: str) -> None:
        invoice = Invoice.objects.get(pk=invoice_id)
        if invoice.balance_due_minor == 0:
            self.refused(PaymentExceedsBalance, take_payment, actor=self.actor,
                         invoice=str(invoice.pk), amount="0.01", method="cash", online=False)
            return
        amount = max(1, invoice.balance_due_minor * share // 10_000)
        online = kind.startswith("sandbox")
        before = snapshot()
        try:
            payment = take_payment(actor=self.actor, invoice=str(invoice.pk),
                                   amount=money(amount), method="card" if online else kind,
                                   online=online, source=kind if online else None)
        except PaymentExceedsBalance:
            # What a pending refund re-opened is not payable (it is on its way back).
            assert Refund.objects.filter(invoice=invoice, status="pending",
                                         decrease_balance_owed=False).exists()
            assert snapshot() == before
            event("refused: PaymentExceedsBalance (re-opened by a pending refund)")
            return
        self.model.payments.append(PaymentModel(payment.pk, invoice.pk, self.step, amount,
                                                online, kind == "sandbox_refund_fails"))

    @initialize(prices=prices, rate=rates, payments=st.lists(
        st.tuples(amounts, kinds), min_size=1, max_size=3))
    def an_invoice_with_payments(self, prices: list[int], rate: str,
                                 payments: list[tuple[int, str]]) -> None:
        invoice_id = self._issue(prices, rate)
        for share, kind in payments:
            self._pay(invoice_id, share, kind)

    @rule(prices=prices, rate=rates)
    def issue_an_invoice(self, prices: list[int], rate: str) -> None:
        self._issue(prices, rate)

    @precondition(lambda self: self.model.invoices)
    @rule(which=picks, share=amounts, kind=kinds)
    def take_a_payment(self, which: int, share: int, kind: str) -> None:
        self._pay(self.pick(sorted(self.model.invoices), which), share, kind)

    # Rules: refunds --------------------------------------------------------------------------

    def _refund(self, payment: PaymentModel, *, online: bool, amount: int, decrease: bool,
                method: str | None = None, note: str = "", reason: str = REASONS[0]) -> None:
        kwargs = dict(actor=self.actor, payment=str(payment.id),
                      type="online" if online else "offline", amount=money(amount),
                      reason=reason, method=method, note=note, decrease_balance_owed=decrease)
        # The rules in the order the service checks them.
        if not reason.strip():
            self.refused(ValidationFailed, refund_payment, **kwargs)
        elif online and not payment.online:
            self.refused(OnlineRefundNotAllowed, refund_payment, **kwargs)
        elif method == "other" and not note:
            self.refused(NoteRequired, refund_payment, **kwargs)
        elif self.model.pending(payment):
            self.refused(RefundPending, refund_payment, **kwargs)
        elif amount > self.model.refundable(payment):
            error = self.refused(RefundExceedsRefundable, refund_payment, **kwargs)
            assert error.field == "amount"
        else:
            refund = refund_payment(**kwargs)  # type: ignore[arg-type]
            event(f"{'online' if online else 'offline'} refund made")
            assert refund.status == ("pending" if online else "recorded")
            self.model.refunds.append(RefundModel(refund.pk, payment, amount, online, decrease,
                                                  refund.status))

    def _amount(self, payment: PaymentModel, share: int, over: bool) -> int:
        refundable = self.model.refundable(payment)
        if over or refundable == 0:
            return refundable + 1 + share % 500
        return max(1, refundable * share // 10_000)

    @precondition(lambda self: self.model.payments)
    @rule(which=picks, share=amounts, over=overs, decrease=st.booleans())
    def refund_online(self, which: int, share: int, over: bool, decrease: bool) -> None:
        payment = self.pick(self.model.payments, which)
        self._refund(payment, online=True, amount=self._amount(payment, share, over),
                     decrease=decrease)

    @precondition(lambda self: self.model.payments)
    @rule(which=picks, share=amounts, over=overs, decrease=st.booleans(),
          method=st.sampled_from(["check", "cash", "insurance", "other"]),
          note=st.sampled_from(["", "check #1042 mailed", "petty cash"]),
          reason=st.sampled_from([*REASONS, *REASONS, "   "]))
    def refund_offline(self, which: int, share: int, over: bool, decrease: bool, method: str,
                       note: str, reason: str) -> None:
        payment = self.pick(self.model.payments, which)
        self._refund(payment, online=False, amount=self._amount(payment, share, over),
                     decrease=decrease, method=method, note=note, reason=reason)

    # Rules: the online refund's life ---------------------------------------------------------

    @rule(later=st.booleans())
    def run_the_worker(self, later: bool) -> None:
        if later:
            make_all_tasks_due()
        run_tasks()
        for r in self.model.refunds:
            if r.online:
                r.called = True  # the sandbox never errs here: every due call was made

    def _settled(self, refund: RefundModel) -> None:
        # `settle` makes a call still due first: the gateway then has every pending refund.
        if refund.status == "pending":
            refund.called = True
        if refund.status == "pending" and refund.called:
            refund.status = "failed" if refund.payment.refund_fails else "succeeded"
            refund.succeeded_at = self.step

    @precondition(lambda self: any(r.online for r in self.model.refunds))
    @rule(which=picks, everything=st.booleans())
    def the_sandbox_settles(self, which: int, everything: bool) -> None:
        """`kassa sandbox settle ID` or `--all`: the calls still due are made, the sandbox
        settles, Kassa hears of it."""
        if everything:
            settle(refund_ids=[], everything=True)
            for refund in self.model.refunds:
                if refund.online:
                    self._settled(refund)
            return
        refund = self.pick([r for r in self.model.refunds if r.online], which)
        settle(refund_ids=[str(refund.id)], everything=False)
        self._settled(refund)

    @precondition(lambda self: any(r.online for r in self.model.refunds))
    @rule(which=picks, state=st.sampled_from(["failed", "succeeded"]))
    def gateway_reports(self, which: int, state: str) -> None:
        """A webhook or a poll brings the gateway's word, in any order, maybe again."""
        self._report(self.pick([r for r in self.model.refunds if r.online], which), state)

    @precondition(lambda self: any(r.status == "succeeded" and not r.held
                                   for r in self.model.refunds))
    @rule(which=picks, share=st.one_of(st.just(10_000), amounts))  # often all that is due
    def customer_pays_again_then_a_refund_fails_late(self, which: int, share: int) -> None:
        """The case that takes many random steps to reach: a refund succeeded (re-opening some
        balance), the customer pays part or all of it again, then the gateway fails the refund."""
        refund = self.pick([r for r in self.model.refunds
                            if r.status == "succeeded" and not r.held], which)
        event(f"customer pays again (refund decreased the balance owed: {refund.decrease})")
        self._pay(refund.payment.invoice_id, share, "cash")
        self._report(refund, "failed")

    def _report(self, refund: RefundModel, state: str) -> None:
        changes = ((state == "succeeded" and refund.status == "pending")
                   or (state == "failed" and refund.status in ("pending", "succeeded")
                       and not refund.held))
        if not changes:
            before = snapshot()
            assert apply_gateway_result(refund_id=refund.id, state=state) is False
            assert snapshot() == before
            return
        assert apply_gateway_result(refund_id=refund.id, state=state,
                                    failure_reason="reported by the gateway") is True
        instead = Refund.objects.filter(replaces_id=refund.id).first()
        if state == "failed" and instead is not None:
            # Into credit: the balance it re-opened was paid again since it succeeded, so a
            # refund to credit of the same amount takes its place and the invoice stands.
            assert refund.status == "succeeded" and not refund.decrease
            assert refund.succeeded_at is not None
            assert any(p.invoice_id == refund.payment.invoice_id and p.step > refund.succeeded_at
                       for p in self.model.payments)
            assert (instead.type, instead.status, instead.amount_minor) == (
                "credit", "recorded", refund.amount)
            refund.status = "failed"
            self.model.refunds.append(RefundModel(
                id=instead.pk, payment=refund.payment, amount=refund.amount, online=False,
                decrease=False, status="recorded"))
            event("late failure kept as credit")
            return
        if state == "failed" and refund.status == "succeeded" and not refund.decrease:
            # Not held: its money fits back, so the balance it re-opened was not paid since.
            assert self.model.balance_due(refund.payment.invoice_id) >= refund.amount
        event(f"gateway reports {state} of a {refund.status} refund")
        refund.status = state
        if state == "succeeded":
            refund.succeeded_at = self.step

    # Invariants ------------------------------------------------------------------------------
    # One invariant, in a handful of queries whatever the number of rows, because it runs after
    # every step.

    @invariant()
    def the_money_and_the_books_hold(self) -> None:
        self.step += 1
        refunds = {r["id"]: r for r in Refund.objects.filter(organization=self.org)
                   .values("id", "payment_id", "status", "amount_minor", "gateway_state")}

        # Every refund has the status the model says; those held for a person are flagged.
        assert {i: r["status"] for i, r in refunds.items()} == {
            r.id: r.status for r in self.model.refunds}
        assert {i for i, r in refunds.items() if r["gateway_state"] == "stuck"} == {
            r.id for r in self.model.refunds if r.held}

        # Each payment: refundable ≥ 0 and = amount − its refunds that did not fail; at most
        # one of them pending, and the payment knows it.
        payments = Payment.objects.in_bulk([p.id for p in self.model.payments])
        for pm in self.model.payments:
            p = payments[pm.id]
            mine = [r for r in refunds.values() if r["payment_id"] == pm.id]
            live = sum(r["amount_minor"] for r in mine if r["status"] != "failed")
            pending = sum(r["status"] == "pending" for r in mine)
            assert p.refundable_minor >= 0
            assert p.refundable_minor == p.amount_minor - live == self.model.refundable(pm)
            assert pending <= 1
            assert p.refund_pending == (pending == 1) == self.model.pending(pm)

        # Each invoice: balance due ≥ 0, what its receivable sub-ledger says and what the model
        # expects from its payments and live refunds.
        receivable = balances_by("invoice_id", "receivable", organization=self.org)
        for inv in Invoice.objects.filter(pk__in=self.model.invoices):
            expected = self.model.balance_due(inv.pk)
            assert inv.balance_due_minor >= 0
            assert inv.balance_due_minor == receivable.get(inv.pk, 0) == expected
            assert inv.status == ("open" if expected else "closed")

        # The books: `kassa verify`, whenever the step wrote anything (a step that wrote nothing
        # leaves them as they were last verified).
        written = (JournalEntry.objects.filter(organization=self.org).count(),
                   sorted((i, r["status"], r["gateway_state"]) for i, r in refunds.items()),
                   len(payments))
        if written != self._verified:
            assert verify(self.org) == []
            self._verified = written


@pytest.fixture
def machine_tenant(tenant: Any, settings: Any) -> Any:
    # Sandbox refunds settle only when a rule settles them, never because the clock moved.
    settings.KASSA_SANDBOX_SETTLE_SECONDS = 24 * 3600
    tenant.customer_id = tenant.customer()
    return tenant


def test_refunds_keep_the_books_right_whatever_happens(machine_tenant: Any) -> None:
    RefundMachine.tenant = machine_tenant
    try:
        run_state_machine_as_test(RefundMachine, settings=settings(
            max_examples=25, stateful_step_count=20, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ))
    finally:
        RefundMachine.tenant = None
