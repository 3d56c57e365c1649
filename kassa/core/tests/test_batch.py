"""Writes held back and sent with the next statement (kassa.core.batch): every statement
still sees the writes before it, nothing held outlives a rollback, and on PostgreSQL what
reads none of the held tables carries them in its own round trip."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import is_postgres
from kassa.core import batch, rows
from kassa.core.locks import money_transaction
from kassa.core.models import IdempotentRequest
from kassa.tenancy.models import Center, Organization

pytestmark = pytest.mark.django_db

KEYS = IdempotentRequest._meta.db_table
ORGS = Organization._meta.db_table


def claim(tenant, key):
    now = timezone.now()
    rows.insert([IdempotentRequest(organization_id=tenant.organization.pk, key=key,
                                   fingerprint="f", created_at=now, claimed_at=now)],
                returning=False)


def rename(tenant, name):
    batch.hold(f"UPDATE {ORGS} SET name = %s WHERE id = %s",
               [name, tenant.organization.pk], writes=ORGS, changes=True)


def keys(tenant):
    return sorted(IdempotentRequest.objects.filter(organization=tenant.organization)
                  .values_list("key", flat=True))


def statements(captured):
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_a_statement_after_a_held_write_sees_it(tenant):
    with money_transaction():
        claim(tenant, "a")
        assert keys(tenant) == ["a"]  # the ORM's read: the held INSERT went first
        rename(tenant, "Renamed")
        assert rows.get(Organization, tenant.organization.pk).name == "Renamed"
        claim(tenant, "b")
    assert keys(tenant) == ["a", "b"]  # the last held write was sent before the end


def test_a_write_held_when_the_use_case_fails_is_never_sent(tenant):
    with CaptureQueriesContext(connection) as captured, pytest.raises(RuntimeError), \
            money_transaction():
        claim(tenant, "a")
        rename(tenant, "Renamed")
        raise RuntimeError("refused")
    assert keys(tenant) == []
    if connection.vendor == "postgresql":  # (SQLite runs them at once: rolled back)
        assert not [sql for sql in statements(captured) if KEYS in sql or "UPDATE" in sql]
    assert not batch.holding()
    claim(tenant, "outside")  # outside a money transaction: written at once
    assert keys(tenant) == ["outside"]


def test_a_savepoint_rolled_back_takes_its_held_writes_along(tenant):
    with money_transaction():
        claim(tenant, "kept")
        try:
            with transaction.atomic():
                claim(tenant, "undone")
                raise RuntimeError
        except RuntimeError:
            pass
    assert keys(tenant) == ["kept"]


def test_two_changes_of_one_table_are_not_one_statement(tenant):
    before = tenant.organization.next_invoice_number
    with money_transaction():
        for _ in range(3):  # each adds one: none may be lost, none sent twice
            batch.hold(f"UPDATE {ORGS} SET next_invoice_number = next_invoice_number + 1 "
                       "WHERE id = %s", [tenant.organization.pk], writes=ORGS, changes=True)
            claim(tenant, f"k{_}")
    tenant.organization.refresh_from_db()
    assert tenant.organization.next_invoice_number == before + 3
    assert keys(tenant) == ["k0", "k1", "k2"]


@pytest.mark.postgres
def test_held_writes_go_along_with_a_statement_that_reads_other_tables(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs each write at once")
    center_id = tenant.organization.centers.get().pk
    with CaptureQueriesContext(connection) as captured, money_transaction():
        claim(tenant, "a")
        rename(tenant, "Renamed")
        center = rows.get(Center, center_id)  # reads neither table: both go along
        assert center.organization_id == tenant.organization.pk
        claim(tenant, "b")
        rename(tenant, "Again")
        rename(tenant, "Last")  # a second change of the table: the held ones go first
        found = rows.get(Organization, tenant.organization.pk)  # reads the held table
    sent = statements(captured)
    assert len(sent) == 4, "\n".join(q[-120:] for q in sent)
    assert sent[0].startswith("WITH kassa_held_0 AS (INSERT") and '"tenancy_center"' in sent[0]
    assert sent[1].startswith("WITH kassa_held_0 AS (INSERT") and "Again" in sent[1]
    assert sent[2].startswith("UPDATE") and "Last" in sent[2]
    assert sent[3].startswith("SELECT")
    assert found.name == "Last"
    assert keys(tenant) == ["a", "b"]


def _pipelined(seen):
    """An execute wrapper noting, for each statement, whether psycopg sent it in pipeline
    mode (libpq's own status), i.e. in the round trip of what follows it."""

    def wrapper(execute, sql, params, many, context):
        from psycopg import pq

        raw = context["connection"].connection
        seen.append((sql, raw.pgconn.pipeline_status != pq.PipelineStatus.OFF))
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="SQLite runs each write at once")
def test_the_last_held_writes_go_in_the_commits_round_trip(tenant):
    seen: list[tuple[str, bool]] = []
    with connection.execute_wrapper(_pipelined(seen)):
        with money_transaction():
            claim(tenant, "a")
            rename(tenant, "Renamed")
    assert [pipelined for sql, pipelined in seen if KEYS in sql] == [True]
    assert not connection.in_atomic_block
    assert keys(tenant) == ["a"]  # committed, and seen by the next transaction
    assert Organization.objects.get(pk=tenant.organization.pk).name == "Renamed"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="SQLite runs each write at once")
def test_a_last_held_write_that_fails_rolls_the_whole_transaction_back(tenant):
    with pytest.raises(IntegrityError), money_transaction():
        rename(tenant, "Renamed")
        claim(tenant, "a")
        assert keys(tenant) == ["a"]  # sent (with the rename) before this read
        claim(tenant, "a")  # held to the commit, where the key's uniqueness refuses it
    assert keys(tenant) == []
    assert Organization.objects.get(pk=tenant.organization.pk).name != "Renamed"
    with money_transaction():  # the connection is fine for the next transaction
        claim(tenant, "b")
    assert keys(tenant) == ["b"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="SQLite runs each write at once")
def test_two_holdings_closed_before_one_commit_send_both(tenant):
    with transaction.atomic():
        for key in ("a", "b"):
            batch.open_holding()
            claim(tenant, key)
            batch.close_holding(send=True)  # the second sends the first's on its own first
    assert keys(tenant) == ["a", "b"]


@pytest.mark.skipif(not is_postgres(), reason="SQLite runs each write at once")
def test_a_write_held_first_is_the_main_query_whatever_was_held_before_it(tenant):
    """PostgreSQL runs a statement's main query before the WITH queries it does not read: the
    write held `first` (the audit chain's link) takes its locks before the others."""
    with CaptureQueriesContext(connection) as captured, money_transaction():
        claim(tenant, "a")
        batch.hold(f"UPDATE {ORGS} SET name = %s WHERE id = %s",
                   ["First", tenant.organization.pk], writes=ORGS, changes=True, first=True)
        claim(tenant, "b")
        assert keys(tenant) == ["a", "b"]  # one statement, sent before this read
    [sent] = [sql for sql in statements(captured) if "UPDATE" in sql]
    assert sent.startswith("WITH kassa_held_0 AS (INSERT"), sent  # the claims: WITH queries
    assert sent.split(")) ")[-1].startswith(f"UPDATE {ORGS} SET name"), sent  # the main one
    assert Organization.objects.get(pk=tenant.organization.pk).name == "First"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="SQLite runs each write at once")
def test_a_savepoint_rolled_back_drops_what_it_left_for_the_commit(tenant):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        claim(tenant, "kept")
        with money_transaction():
            claim(tenant, "undone")
            transaction.set_rollback(True)  # left for the commit, then rolled back with it
    assert keys(tenant) == ["kept"]
    assert not [sql for sql in statements(captured) if "'undone'" in sql], "never sent"
