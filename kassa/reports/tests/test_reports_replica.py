"""The reports read from a real PostgreSQL streaming replica when KASSA_REPORTS_DATABASE_URL
names one: their answers are the primary's, the replica ran their queries, the primary ran
none of them, and nothing the reports do writes or locks a row.

The primary and replica are this test's own (initdb + pg_basebackup on loopback, see
postgres_pair); Kassa runs in processes configured from the environment, as deployed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kassa.reports.tests.postgres_pair import Pair, primary_and_replica

# django_db: so that the suite's test database exists, migrated, for `pair` to copy.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[3]
REPORT_TABLES = ("ledger_dailytotal", "ledger_posting", "refunds_refund")
WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|TRUNCATE|FOR UPDATE|FOR NO KEY UPDATE|FOR SHARE)\b",
                    re.IGNORECASE)


def scenario(tmp: Path, *args: str, database: str, reports: str | None) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database, "KASSA_VAR_DIR": str(tmp),
           "KASSA_LOG_LEVEL": "WARNING"}
    env.pop("KASSA_REPORTS_DATABASE_URL", None)
    if reports:
        env["KASSA_REPORTS_DATABASE_URL"] = reports
    done = subprocess.run([sys.executable, "-m", "kassa.reports.tests.replica_scenario", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def statements(log: str, database: str = "kassa") -> list[str]:
    """The statements a server logged for one database (log_statement=all), each whole
    (a statement may span lines): sent as text, or bound on the server (`execute <name>:`,
    prepared or not)."""
    entries = re.split(r"^(?=\d{4}-\d\d-\d\d )", log, flags=re.MULTILINE)
    prefix = re.compile(
        rf"^\S+ \S+ \S+ \[\d+\] {database} LOG:  (?:statement|execute [^:]+): ")
    return [entry[m.end():].strip() for entry in entries if (m := prefix.match(entry))]


@pytest.fixture(scope="module")
def pair(django_db_setup: None) -> Any:
    """The pair, its primary holding the schema of the suite's migrated test database."""
    from django.db import connection

    with primary_and_replica() as pair:
        pair.primary.load(connection.settings_dict)
        yield pair


@pytest.fixture(scope="module")
def written(pair: Pair, tmp_path_factory: Any) -> dict[str, Any]:
    """Everything written (after `migrate`, which finds the schema up to date), and the
    reports answered, with no replica: the reference. Then the seconds the replica took to
    replay it all."""
    tmp = tmp_path_factory.mktemp("write")
    written = scenario(tmp, "write", database=pair.primary.url(), reports=None)
    assert written["reports_database"] == "default"
    assert written["answers"]["daily"]["json"]["refunds"] == {"count": 1, "total": "30.00"}
    assert written["answers"]["liability"]["json"]["rows"], "the package is in the report"
    return {**written, "lag": pair.wait_for_replay()}


def test_reports_read_the_replica_and_answer_as_the_primary_does(
        pair: Pair, written: dict[str, Any], tmp_path: Path) -> None:
    lag = written["lag"]
    replica_before = pair.replica.log_text()
    primary_before = pair.primary.log_text()
    commits_before = pair.replica.query(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = 'kassa'")

    began = time.monotonic()
    read = scenario(tmp_path, "read", json.dumps(written), database=pair.primary.url(),
                    reports=pair.replica.url())
    read_seconds = time.monotonic() - began

    assert read["reports_database"] == "reports"
    # The same figures, the same CSV from the API and from the pages.
    assert read["answers"] == written["answers"]
    for report in read["answers"].values():
        assert report["csv"] == report["page_csv"]
        assert report["page_has_figures"]

    # The replica ran the reports' queries, and nothing that writes or locks.
    on_replica = statements(pair.replica.log_text()[len(replica_before):])
    for table in REPORT_TABLES:
        assert any(table in sql for sql in on_replica), f"no report query read {table}"
    assert not [sql for sql in on_replica if WRITES.search(sql)]
    assert pair.replica.query(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = 'kassa'") > commits_before
    # The primary (sessions, tokens, people) ran none of them.
    on_primary = statements(pair.primary.log_text()[len(primary_before):])
    assert on_primary, "the primary still answers for sign-in and tokens"
    assert not [sql for sql in on_primary if any(t in sql for t in REPORT_TABLES)]

    print(f"\nreplica: started in {pair.started_seconds:.2f} s; replayed the scenario "
          f"{lag * 1000:.1f} ms after it ended; the read process took {read_seconds:.2f} s; "
          f"{len(on_replica)} statements on the replica"
          f"\nreport latency (median ms, API through the test client): "
          f"primary {written['milliseconds']}, replica {read['milliseconds']}")


def test_the_reports_database_refuses_a_write_or_a_row_lock(
        pair: Pair, written: dict[str, Any], tmp_path: Path) -> None:
    # The replica, being in recovery.
    replica = scenario(tmp_path, "refuse", database=pair.primary.url(),
                       reports=pair.replica.url())
    assert replica["reports_database"] == "reports"
    assert replica["said"] == {
        "update": "cannot execute UPDATE in a read-only transaction",
        "select_for_update": "cannot execute SELECT FOR UPDATE in a read-only transaction"}
    # A primary named by mistake: the alias's connections are read-only all the same.
    primary = scenario(tmp_path, "refuse", database=pair.primary.url(),
                       reports=pair.primary.url())
    assert primary["said"] == replica["said"]
