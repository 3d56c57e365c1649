"""What `post` costs and when it writes: the chart of accounts read once per process, and the
day totals — rows every entry of a center's day updates — written as a money transaction's
last statement, so that their locks are held from there to the commit only."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from conftest import Tenant
from kassa.core.locks import money_transaction
from kassa.ledger.models import DailyTotal, Posting
from kassa.ledger.services import credit, debit, forget_chart, post
from kassa.tenancy.models import Center

pytestmark = pytest.mark.django_db


def cash_sale(tenant: Tenant, amount: int = 1000) -> None:
    center = Center.objects.get(pk=tenant.center_id)
    post(organization=tenant.organization, center=center, kind="payment_received",
         lines=[debit("cash", amount), credit("receivable", amount)])


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def test_the_day_totals_are_the_last_statement_of_a_money_transaction(tenant: Tenant) -> None:
    with CaptureQueriesContext(connection) as captured, money_transaction():
        cash_sale(tenant, 1000)
        cash_sale(tenant, 250)
        assert not DailyTotal.objects.filter(organization=tenant.organization).exists(), \
            "nothing written to the day totals before the end"
    sql = [s for s in statements(captured) if "ledger_dailytotal" in s]
    assert len(sql) == 2, sql  # the look above, and one upsert for both entries
    # The test's own transaction makes the money transaction a savepoint: around those, the
    # upsert is the last thing done.
    done = [s for s in statements(captured) if not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert done[-1].startswith("INSERT INTO ledger_dailytotal"), done[-3:]
    cash = DailyTotal.objects.get(organization=tenant.organization, code="cash")
    assert (cash.amount_minor, cash.postings) == (1250, 2)


def test_a_money_transaction_that_fails_writes_no_day_total(tenant: Tenant) -> None:
    with pytest.raises(RuntimeError), money_transaction():
        cash_sale(tenant)
        raise RuntimeError("a rule broke after the entry")
    assert not DailyTotal.objects.filter(organization=tenant.organization).exists()
    assert not Posting.objects.filter(organization=tenant.organization).exists()


def test_outside_a_money_transaction_the_day_totals_are_written_at_once(tenant: Tenant) -> None:
    with transaction.atomic():
        cash_sale(tenant, 700)
        cash = DailyTotal.objects.get(organization=tenant.organization, code="cash")
        assert (cash.amount_minor, cash.postings) == (700, 1)


@pytest.mark.django_db(transaction=True)
def test_the_chart_of_accounts_is_read_once_per_process(tenant: Tenant) -> None:
    forget_chart()
    with CaptureQueriesContext(connection) as first, money_transaction():
        cash_sale(tenant)
    with CaptureQueriesContext(connection) as second, money_transaction():
        cash_sale(tenant)
    assert sum("ledger_account" in s for s in statements(first)) == 1
    assert not any("ledger_account" in s for s in statements(second))
    assert Posting.objects.filter(organization=tenant.organization, code="cash").count() == 2


@pytest.mark.django_db(transaction=True)
def test_accounts_opened_by_a_transaction_that_rolls_back_are_not_kept(tenant: Tenant) -> None:
    """Their ids may be handed out again (SQLite), to another organization's accounts."""
    from kassa.ledger.models import Account
    from kassa.ledger.services import _CHARTS

    forget_chart()
    Account.objects.filter(center_id=tenant.center_id, code="check").delete()
    with pytest.raises(RuntimeError), money_transaction():
        center = Center.objects.get(pk=tenant.center_id)
        post(organization=tenant.organization, center=center, kind="payment_received",
             lines=[debit("check", 100), credit("receivable", 100)])  # opens `check`
        raise RuntimeError("the request died")
    assert int(tenant.center_id) not in _CHARTS
    with money_transaction():
        cash_sale(tenant)
    assert int(tenant.center_id) in _CHARTS  # kept once a transaction that read it committed


def test_a_savepoint_rolled_back_inside_a_money_transaction_takes_its_day_totals(
        tenant: Tenant) -> None:
    with money_transaction():
        cash_sale(tenant, 1000)
        try:
            with transaction.atomic():
                cash_sale(tenant, 500)
                raise RuntimeError("a nested block failed and was handled")
        except RuntimeError:
            pass
    cash = DailyTotal.objects.get(organization=tenant.organization, code="cash")
    assert (cash.amount_minor, cash.postings) == (1000, 1)
    assert Posting.objects.filter(organization=tenant.organization, code="cash").count() == 1


def test_a_new_center_under_a_kept_id_gets_its_own_accounts(tenant: Tenant) -> None:
    """A rolled-back center's id can come back (SQLite reuses it); what was kept for the old
    one must not be used for the new one."""
    with transaction.atomic():
        sid = transaction.savepoint()
        center = Center.objects.create(organization=tenant.organization, name="Annex")
        with money_transaction():
            post(organization=tenant.organization, center=center, kind="payment_received",
                 lines=[debit("cash", 100), credit("receivable", 100)])
        transaction.savepoint_rollback(sid)
        again = Center.objects.create(organization=tenant.organization, name="Annex again")
        with money_transaction():
            post(organization=tenant.organization, center=again, kind="payment_received",
                 lines=[debit("cash", 100), credit("receivable", 100)])
        posting = Posting.objects.get(center=again, code="cash")
        assert posting.account.center_id == again.pk


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="SQLite runs one writer at a time: one slot")
@pytest.mark.django_db(transaction=True)
def test_two_connections_add_to_one_days_totals_without_waiting_on_each_other(
        tenant: Tenant) -> None:
    """Each connection upserts its own slot of the day totals (issue 17): a sale of the center
    commits while another connection's sale of the same center, day and accounts is still
    open, and the totals, the reports and verify sum both."""
    from kassa.ledger.services import daily_total_slot
    from kassa.ledger.verify import verify

    with money_transaction():
        cash_sale(tenant, 100)  # today's rows exist in this connection's slot
    mine = daily_total_slot()
    done = threading.Event()
    other: dict[str, Any] = {}

    def seller() -> None:
        try:
            # A connection of another slot (a new backend until its pid's slot differs).
            for _ in range(100):
                if daily_total_slot() != mine:
                    break
                connections.close_all()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                with money_transaction():
                    cash_sale(tenant, 250)
                other["slot"] = daily_total_slot()
            other["committed"] = True
        except OperationalError as exc:
            other["error"] = exc
        finally:
            connections.close_all()
            done.set()

    with transaction.atomic():
        cash_sale(tenant, 1000)
        # Our day totals are written (outside a money transaction, at once), and their row
        # is held until our commit …
        thread = threading.Thread(target=seller)
        thread.start()
        assert done.wait(10)
        # … which the other sale did not wait for.
        assert other.get("committed"), other
    thread.join()
    assert other["slot"] != mine
    rows = DailyTotal.objects.filter(organization=tenant.organization, code="cash")
    assert sorted(r.slot for r in rows) == sorted([mine, other["slot"]])
    assert sum(r.amount_minor for r in rows) == 1350 and sum(r.postings for r in rows) == 3
    assert verify(tenant.organization) == []
