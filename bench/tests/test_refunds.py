"""The refund bench's pieces, so that they cannot rot between two runs of `make bench`.

The whole bench takes about a minute even at one second a phase (a database of its own, the
server's migrate and collectstatic, twelve phases), so this tests its parts: the bare SQL
refund on pgbench against the test database (its rows valid: the constraints, the deferred
balance trigger and the checks it answers to all hold), the load generator against a stub
server, and the report.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from bench import refunds
from kassa.billing.models import Payment
from kassa.ledger.models import Posting
from kassa.refunds.models import Receipt, Refund


def url_of(settings_dict: dict[str, Any]) -> str:
    port = settings_dict.get("PORT") or 5432
    return (f"postgres://{settings_dict['USER']}@{settings_dict['HOST'] or '127.0.0.1'}:"
            f"{port}/{settings_dict['NAME']}")


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which(refunds.PGBENCH) is None, reason="no pgbench")
@pytest.mark.django_db(transaction=True)
def test_the_bare_sql_refund_writes_valid_rows_that_balance(tmp_path: Path) -> None:
    anchor = refunds.make_tenant("Anchor Spa", 3)
    script = tmp_path / "refund.sql"
    script.write_text(refunds.ANCHOR_SQL)
    url = url_of(connection.settings_dict)
    spread = refunds.drive_pgbench(url, script, anchor, 2, False, 1)
    hot = refunds.drive_pgbench(url, script, anchor, 2, True, 1)

    done = spread.done + hot.done
    assert spread.done > 0 and hot.done > 0 and spread.errors == hot.errors == 0
    mine = Refund.objects.filter(organization_id=anchor.organization)
    assert mine.count() == done
    assert Posting.objects.filter(refund__in=mine).count() == 2 * done
    assert Receipt.objects.filter(refund__in=mine).count() == done
    refunded = {p.pk: p.refunded_minor for p in Payment.objects.filter(pk__in=anchor.payments)}
    assert sum(refunded.values()) == done and refunded[anchor.payments[0]] >= hot.done
    assert refunds.verify_anchor(anchor) == []


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which(refunds.PGBENCH) is None, reason="no pgbench")
@pytest.mark.django_db(transaction=True)
def test_lock_hold_is_measured_for_the_api_and_the_bare_sql(tmp_path: Path) -> None:
    tenant = refunds.make_tenant("Api Spa", 3)
    api = refunds.api_lock_hold(tenant, samples=5)
    assert api["samples"] == 5 and 0 < api["p50_ms"] <= api["p99_ms"] <= api["max_ms"]
    # Every sample is a refund that was made, and held its locks for a measured while.
    assert Refund.objects.filter(organization_id=tenant.organization).count() == 6
    script = tmp_path / "refund.sql"
    script.write_text(refunds.ANCHOR_SQL)
    bare = refunds.anchor_lock_hold(url_of(connection.settings_dict), script,
                                    refunds.make_tenant("Anchor Spa", 3), 1)
    assert bare["avg_ms"] > 0 and bare["statements"] >= 9


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn's gthread
    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers["Idempotency-Key"]))
        status = 409 if self.path.endswith("/13/refunds") else 201
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_load_generator_counts_every_answer_and_never_reuses_a_key() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Stub.seen = []
        ok = refunds.drive_api(server.server_address[1], "t", [11, 12], 2, 0.5)
        refused = refunds.drive_api(server.server_address[1], "t", [13], 1, 0.3)
    finally:
        server.shutdown()
    assert ok.done > 0 and ok.errors == 0 and ok.statuses == {"201": ok.done}
    assert refused.done == 0 and refused.errors == refused.statuses["409"] > 0
    keys = [key for _, key in Stub.seen]
    assert len(keys) == len(set(keys)) == ok.done + refused.errors
    assert {path for path, _ in Stub.seen} == {
        "/api/v1/payments/11/refunds", "/api/v1/payments/12/refunds",
        "/api/v1/payments/13/refunds"}


PGBENCH_OUTPUT = """\
transaction type: refund.sql
number of clients: 8
number of transactions actually processed: 15000
number of failed transactions: 0 (0.000%)
latency average = 5.321 ms
initial connection time = 12.345 ms
tps = 1500.123456 (without initial connection time)
"""


def test_the_report_puts_each_shape_beside_its_anchor(tmp_path: Path) -> None:
    assert refunds.parse_pgbench(PGBENCH_OUTPUT) == {
        "done": 15000, "failed": 0, "latency_avg_ms": 5.321, "tps": 1500.123456}
    shape = refunds.Shape("8 clients, random payments", 8, False)
    for _ in range(2):
        shape.phases.append(refunds.Phase(
            "api", 8, 10.0, 300, 1, [float(n) for n in range(1, 101)], {"201": 300, "500": 1},
            {"commits": 330, "rollbacks": 0, "inserted": 2700, "updated": 1800}))
        shape.phases.append(refunds.Phase("pgbench", 8, 10.0, 15000, 0, latency_avg_ms=5.3))
    summary = shape.summary()
    assert (summary["api_per_s"], summary["pgbench_tps"], summary["ratio"]) == (30, 1500, 0.02)
    assert (summary["api_p50_ms"], summary["api_p99_ms"], summary["api_errors"]) == (51, 100, 2)
    assert summary["api_server_per_refund"] == {
        "commits": 1.1, "rollbacks": 0, "inserted": 9, "updated": 6}
    text = refunds.table([summary], 21)
    assert "8 clients, random payments" in text and "2.0%" in text and "API 21" in text

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"cases": [1, 2]}))
    refunds.merge_results(results, {"shapes": [summary]})
    assert json.loads(results.read_text()).keys() == {"cases", "refunds"}
