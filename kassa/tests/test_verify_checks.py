"""Every check of `kassa verify` catches what it guards: on books that verify clean, corrupt
exactly the figure one check holds (as a bug or a hand edit would, past the services) and see
that check name it. A check without a case here fails `test_every_check_has_a_case`. The same
corruptions are found a batch of one object at a time, and by `--since` a day on which every
object of the books moved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.db.models import F

from conftest import Tenant, is_postgres
from kassa.audit.models import AuditEntry
from kassa.billing.models import (
    CreditDraw,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
)
from kassa.ledger.models import Account, DailyTotal, JournalEntry, Posting
from kassa.ledger.verify import CHECKS, Run, verify
from kassa.packages.models import Benefit, Package
from kassa.refunds import sandbox
from kassa.refunds.models import Dispute, PaymentReturn, Refund


@dataclass
class Books:
    tenant: Tenant
    invoice: dict[str, Any]  # a package and a service line, partly paid
    cash: dict[str, Any]  # a cash payment on it, partly refunded with a credit
    card: dict[str, Any]  # a card payment on it, with a pending online refund
    package: dict[str, Any]  # redeemed once, refunded once
    closed: dict[str, Any]  # another package, closed by its refund while not paid in full
    customer: str  # with credit: a deposit at another center, partly used, partly refunded


def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def books(tenant: Tenant) -> Books:
    api = tenant.api
    tpl = ok(api.post("/package-templates", {
        "name": "Five facials", "price": "500.00", "tax_rate": "8.875",
        "benefits": [{"name": "Facial", "quantity": 5, "unit_value": "100.00"}]}))
    customer = tenant.customer()
    invoice = tenant.invoice(
        {"kind": "package", "description": "Five facials", "package_template": tpl["id"]},
        {"kind": "service", "description": "Massage", "unit_price": "100.00",
         "tax_rate": "8.875"}, customer=customer)
    cash = tenant.pay(invoice["id"], "300.00")
    card = tenant.pay(invoice["id"], "200.00", method="card", online=True)
    package = invoice["packages"][0]
    ok(api.post(f"/packages/{package['id']}/redemptions",
                {"benefit": package["benefits"][0]["id"], "quantity": 1}))
    ok(api.post(f"/packages/{package['id']}/refunds", {
        "amount": "20.00", "reason": "Moving away", "refund_to": {"method": "cash"}}))
    ok(api.post(f"/payments/{cash['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "10.00", "reason": "Goodwill",
        "decrease_balance_owed": True}))
    ok(api.post(f"/payments/{card['id']}/refunds", {
        "type": "online", "amount": "5.00", "reason": "Overcharged"}))
    other = tenant.invoice({"kind": "package", "description": "Five facials",
                            "package_template": tpl["id"]}, customer=customer)
    tenant.pay(other["id"], "100.00")
    closed = other["packages"][0]
    ok(api.post(f"/packages/{closed['id']}/refunds", {
        "amount": "10.00", "reason": "Cancelled", "close_package": True,
        "refund_to": {"method": "cash"}}))
    # Credit: a deposit taken at a second center, part of it used on the invoice at the first
    # (cleared through intercenter), part refunded out by check.
    north = ok(api.post("/centers", {"name": "North"}))
    ok(api.post(f"/customers/{customer}/deposits", {
        "center": north["id"], "amount": "80.00", "method": "cash"}))
    ok(api.post(f"/invoices/{invoice['id']}/payments", {"amount": "30.00", "method": "credit"}))
    ok(api.post(f"/customers/{customer}/credit/refunds", {
        "amount": "10.00", "reason": "Part of the deposit back",
        "refund_to": {"method": "check", "payee": "Ann's sister"}}))
    # A check the bank returned, with a fee; a card payment whose dispute was lost and
    # re-billed.
    returned = tenant.invoice(customer=customer)
    check = tenant.pay(returned["id"], "50.00", method="check")
    ok(api.post(f"/payments/{check['id']}/returns", {"reason": "NSF", "fee": "5.00"}))
    disputed = tenant.invoice(customer=customer)
    charged = tenant.pay(disputed["id"], "40.00", method="card", online=True)
    lost = sandbox.dispute(payment_id=charged["id"], amount=None, outcome="lost")
    ok(api.post(f"/disputes/{lost['dispute']}/settle", {"action": "rebill",
                                                        "reason": "Not fraud"}), 200)
    assert verify(tenant.organization) == []
    return Books(tenant, invoice, cash, card, package, closed, customer)


def _copy_posting(books: Books, **changes: Any) -> None:
    """A posting added past `post()`. On PostgreSQL the deferred balance trigger would refuse it
    when the test's constraints are checked: the checks of the books so far are run now, and a
    superuser's replica role fires no trigger for the corrupt row."""
    posting = Posting.objects.filter(organization=books.tenant.organization,
                                     code="receivable").first()
    assert posting is not None
    posting.pk = None
    for name, value in changes.items():
        setattr(posting, name, value)
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET LOCAL session_replication_role = replica")
    posting.save()
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = origin")


def _line(books: Books, kind: str) -> Any:
    return InvoiceLine.objects.filter(invoice_id=books.invoice["id"], kind=kind)


def unbalanced_entry(books: Books) -> None:
    _copy_posting(books, amount_minor=1)


def posting_on_another_account(books: Books) -> None:
    cash = Account.objects.get(center_id=books.tenant.center_id, code="cash")
    # A balanced pair, one of them on an account that is not its code's.
    _copy_posting(books, amount_minor=1, account_id=cash.pk)
    _copy_posting(books, amount_minor=-1)


def invoice_paid_moved(books: Books) -> None:
    Invoice.objects.filter(pk=books.invoice["id"]).update(
        paid_minor=F("paid_minor") - 1, balance_due_minor=F("balance_due_minor") + 1)


def payment_amount_changed(books: Books) -> None:
    Payment.objects.filter(pk=books.cash["id"]).update(amount_minor=F("amount_minor") + 1)


def payment_left_charging(books: Books) -> None:
    Payment.objects.filter(pk=books.card["id"]).update(charge_state="charging")


def customer_credit_moved(books: Books) -> None:
    Customer.objects.filter(pk=books.customer).update(credit_minor=F("credit_minor") + 1)


def credit_draw_moved(books: Books) -> None:
    draw = CreditDraw.objects.filter(entry__customer_id=books.customer,
                                     amount_minor__lt=0).first()
    assert draw is not None
    CreditDraw.objects.filter(pk=draw.pk).update(amount_minor=F("amount_minor") - 1)


def credit_lot_overdrawn(books: Books) -> None:
    draw = CreditDraw.objects.filter(entry__customer_id=books.customer,
                                     amount_minor__lt=0).order_by("-pk").first()
    assert draw is not None
    CreditDraw.objects.filter(pk=draw.pk).update(amount_minor=-10_000_000)
    CreditEntry.objects.filter(pk=draw.entry_id).update(amount_minor=-10_000_000)


def credit_balance_after_moved(books: Books) -> None:
    entry = CreditEntry.objects.filter(customer_id=books.customer).order_by("-pk").first()
    assert entry is not None
    CreditEntry.objects.filter(pk=entry.pk).update(
        balance_after_minor=F("balance_after_minor") + 1)


def intercenter_left_open(books: Books) -> None:
    _copy_posting(books, code="intercenter", amount_minor=1)
    _copy_posting(books, amount_minor=-1)


def credit_posting_without_customer(books: Books) -> None:
    _copy_posting(books, code="customer_credit", amount_minor=1)
    _copy_posting(books, amount_minor=-1)


def payment_to_credit_moved(books: Books) -> None:
    deposit = Payment.objects.filter(customer_id=books.customer, invoice__isnull=True).get()
    Payment.objects.filter(pk=deposit.pk).update(to_credit_minor=F("to_credit_minor") - 1)


def unbooked_payment_booked(books: Books) -> None:
    """A payment marked failed although its money was booked (and allocated)."""
    Payment.objects.filter(pk=books.cash["id"]).update(status="failed")


def sandbox_charge_given_back_behind_kassas_back(books: Books) -> None:
    from kassa.gateways.models import SandboxCharge

    reference = Payment.objects.get(pk=books.card["id"]).gateway_reference
    SandboxCharge.objects.filter(reference=reference).update(cancelled=True)


def line_paid_moved(books: Books) -> None:
    _line(books, "service").update(paid_net_minor=F("paid_net_minor") - 1)


def line_credited_moved(books: Books) -> None:
    _line(books, "service").update(credited_net_minor=F("credited_net_minor") - 1)


def line_refunded_moved(books: Books) -> None:
    _line(books, "package").update(refunded_net_minor=F("refunded_net_minor") + 1)


def invoice_credits_moved(books: Books) -> None:
    Invoice.objects.filter(pk=books.invoice["id"]).update(
        credits_minor=F("credits_minor") + 1, balance_due_minor=F("balance_due_minor") - 1)


def package_redeemed_moved(books: Books) -> None:
    Package.objects.filter(pk=books.package["id"]).update(redeemed_minor=F("redeemed_minor") + 1)


def benefit_used_moved(books: Books) -> None:
    Benefit.objects.filter(package_id=books.package["id"]).update(used=F("used") + 1)


def payment_refunded_moved(books: Books) -> None:
    Payment.objects.filter(pk=books.cash["id"]).update(refunded_minor=F("refunded_minor") - 1)


def invoice_refunded_moved(books: Books) -> None:
    Invoice.objects.filter(pk=books.invoice["id"]).update(
        refunded_minor=F("refunded_minor") + 1, balance_due_minor=F("balance_due_minor") + 1)


def package_refund_amount_moved(books: Books) -> None:
    Refund.objects.filter(package_id=books.package["id"]).update(
        amount_minor=F("amount_minor") + 1)


def refund_credit_moved(books: Books) -> None:
    Refund.objects.filter(payment_id=books.cash["id"]).update(
        credit_net_minor=F("credit_net_minor") + 1)


def payment_refund_amount_moved(books: Books) -> None:
    Refund.objects.filter(payment_id=books.card["id"]).update(amount_minor=F("amount_minor") + 1)


def daily_total_moved(books: Books) -> None:
    row = DailyTotal.objects.filter(organization=books.tenant.organization, code="cash").first()
    assert row is not None
    DailyTotal.objects.filter(pk=row.pk).update(amount_minor=F("amount_minor") + 1)


def taken_back_moved(books: Books) -> None:
    Payment.objects.filter(method="check", taken_back_minor=5000).update(taken_back_minor=4999)


def dispute_settled_unposted(books: Books) -> None:
    Dispute.objects.filter(organization=books.tenant.organization).update(settle_entry=None)


def return_amount_moved(books: Books) -> None:
    PaymentReturn.objects.filter(organization=books.tenant.organization).update(
        amount_minor=F("amount_minor") + 1)


def payment_requested_moved(books: Books) -> None:
    Payment.objects.filter(pk=books.cash["id"]).update(requested_minor=F("requested_minor") + 1)


def package_requested_moved(books: Books) -> None:
    Package.objects.filter(pk=books.package["id"]).update(requested_minor=F("requested_minor") + 1)


def customer_requested_moved(books: Books) -> None:
    Customer.objects.filter(pk=books.customer).update(requested_minor=F("requested_minor") + 1)


def audit_entry_edited(books: Books) -> None:
    """An entry of the audit log changed by hand (on PostgreSQL past its append-only trigger,
    as a superuser could)."""
    entry = AuditEntry.objects.filter(organization=books.tenant.organization,
                                      action="refund.created").order_by("seq").first()
    assert entry is not None
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditentry SET detail = %s WHERE id = %s",
                       ['{"amount_minor": 1}', entry.pk])
        if is_postgres():
            cursor.execute("SET LOCAL session_replication_role = origin")


# check → (the corruption it must catch, words its report must contain)
CASES: dict[str, tuple[Callable[[Books], None], str]] = {
    "entries_balance": (unbalanced_entry, "postings sum to 1, not 0"),
    "postings_agree_with_entries": (posting_on_another_account, "account code differs"),
    "invoices_agree_with_ledger": (invoice_paid_moved, "the ledger says"),
    "payments_agree_with_ledger": (payment_amount_changed, "amount is 30001"),
    "payments_charges_agree": (payment_left_charging, "with its charge charging"),
    "sandbox_charges_agree": (sandbox_charge_given_back_behind_kassas_back,
                              "the sandbox keeps no charge"),
    "allocations_agree_with_lines": (line_paid_moved, "its allocations"),
    "line_credits_agree": (line_credited_moved, "its credits"),
    "invoices_agree_with_lines": (invoice_credits_moved, "its lines' credits"),
    "packages_agree": (package_redeemed_moved, "redeemed is 10001"),
    "benefits_agree": (benefit_used_moved, "used 2, redeemed 1"),
    "payments_refunded_agree": (payment_refunded_moved, "refunded is 999"),
    "invoices_refunded_agree": (invoice_refunded_moved, "its refunds add up to"),
    "package_refunds_agree_with_lines": (package_refund_amount_moved, "the refunds of its"),
    "refund_credits_agree_with_ledger": (refund_credit_moved, "its entry posted"),
    "refunds_agree_with_ledger": (payment_refund_amount_moved, "refunds in transit holds"),
    "daily_totals_agree_with_postings": (daily_total_moved, "daily totals of center"),
    "reports_reconcile_with_balances": (daily_total_moved, "collections net"),
    "customers_credit_agree": (customer_credit_moved, "their credit entries add up to"),
    "credit_lots_agree": (credit_draw_moved, "its lots moved"),
    "intercenter_nets_to_zero": (intercenter_left_open, "intercenter sums to 1"),
    "credit_postings_name_their_customer": (credit_posting_without_customer,
                                            "names no customer"),
    "payments_credit_agree": (payment_to_credit_moved, "its credit entries brought in 8000"),
    "payments_taken_back_agree": (taken_back_moved, "taken back is 4999"),
    "disputed_funds_agree": (dispute_settled_unposted, "has no settling entry"),
    "reopened_agrees_with_lines": (return_amount_moved, "expected -5001"),
    "audit_chain_holds": (audit_entry_edited, "the first broken link"),
    "payments_requested_agree": (payment_requested_moved,
                                 "requested is 1, its open refund requests reserve 0"),
    "packages_requested_agree": (package_requested_moved,
                                 "requested is 1, its open refund request reserves 0"),
    "customers_requested_agree": (customer_requested_moved,
                                  "the open refund requests of their credit reserve 0"),
}
EXTRA: dict[str, tuple[Callable[[Books], None], str, str]] = {
    # figure → (corruption, the check that holds it, words of its report)
    "a line's refunded": (line_refunded_moved, "line_credits_agree",
                          "its credits that gave money back"),
    "what a payment not succeeded has booked": (
        unbooked_payment_booked, "payments_agree_with_ledger",
        "is failed, yet 30000 of it is booked and allocated to lines"),
    "a credit lot below zero": (credit_lot_overdrawn, "credit_lots_agree", "below zero"),
    "a credit entry's balance after": (credit_balance_after_moved, "credit_lots_agree",
                                       "balance after is"),
    "the credit sub-ledger": (customer_credit_moved, "customers_credit_agree",
                              "the customer_credit sub-ledger says"),
}


def test_every_check_has_a_case():
    assert {fn.__name__ for fn in CHECKS} == set(CASES)


def _run(books: Books, corrupt: Callable[[Books], None], check_name: str, words: str,
         run: Callable[[], Run] = Run) -> None:
    corrupt(books)
    (check,) = [fn for fn in CHECKS if fn.__name__ == check_name]
    found = list(check(books.tenant.organization, run()))
    assert any(words in line for line in found), found
    assert any(words in line for line in verify(books.tenant.organization, run()))


def _books_day(books: Books) -> Any:
    """The business day the books were written on (the organization's today)."""
    days = JournalEntry.objects.filter(organization=books.tenant.organization).values_list(
        "business_date", flat=True).distinct()
    (day,) = days
    return day


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_each_check_names_the_figure_it_holds_when_it_is_corrupted(books, check_name):
    corrupt, words = CASES[check_name]
    _run(books, corrupt, check_name, words)


@pytest.mark.parametrize("figure", sorted(EXTRA))
def test_figures_held_by_a_shared_check_are_caught_too(books, figure):
    corrupt, check_name, words = EXTRA[figure]
    _run(books, corrupt, check_name, words)


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_a_batch_of_one_object_still_finds_each_corruption(books, check_name):
    corrupt, words = CASES[check_name]
    _run(books, corrupt, check_name, words, run=lambda: Run(batch=1))


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_since_the_day_the_books_moved_finds_each_corruption(books, check_name):
    corrupt, words = CASES[check_name]
    day = _books_day(books)
    _run(books, corrupt, check_name, words, run=lambda: Run(since=day, batch=2))


def test_since_says_how_much_it_checked_and_sees_nothing_that_did_not_move(books):
    day = _books_day(books)
    run = Run(since=day, batch=2)
    assert verify(books.tenant.organization, run) == []
    assert run.checked == {"journal entries": JournalEntry.objects.filter(
        organization=books.tenant.organization).count(), "invoices": 4, "payments": 7,
        "refunds": 5, "packages": 2, "customers": 1, "business days": 1}
    # A corruption of an object that has not moved since the day asked for is not seen (and
    # nothing is counted as checked): only a run without --since is the guarantee.
    invoice_paid_moved(books)
    later = Run(since=day + dt.timedelta(days=1))
    assert verify(books.tenant.organization, later) == []
    assert not any(later.checked.values())
    assert verify(books.tenant.organization)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checks_run_at_once_find_what_they_find_one_after_the_other_in_the_same_order(books):
    """Outside a transaction, on PostgreSQL, `kassa verify` runs two checks at a time on their
    own connections (`Run.jobs`): the same lines come out, in the same order."""
    for corrupt in (invoice_paid_moved, payment_amount_changed, package_redeemed_moved,
                    daily_total_moved, line_paid_moved, customer_credit_moved):
        corrupt(books)
    org = books.tenant.organization
    one = Run(jobs=1, batch=2)
    serial = verify(org, one)
    two = Run(jobs=2, batch=2)
    assert verify(org, two) == serial
    assert len(serial) >= 6
    assert list(two.checked.items()) == list(one.checked.items())  # the summary's order too
    assert set(two.seconds) == {fn.__name__ for fn in CHECKS}
