"""The refund API under load beside its anchor, the bare SQL refund on pgbench, in one run.

`python -m bench --refunds`. Its own small database (`kassa_bench_refunds`), migrated, with two
organizations made through the product's API: one whose payments the API refunds, one whose
payments the anchor refunds. The anchor's rows are the bare money transaction (lock the
payment, an entry, the refund, its two postings, the payment's figure, an outbox row): valid
rows, every constraint and the ledger's balance trigger holding, but not the whole book-keeping
of a Kassa refund (no allocation, no line or invoice figures, no day totals), so `kassa verify`
is run over the API's organization, and over the anchor's only the checks its rows answer to.

`kassa run` serves the API as a process on a free loopback port (no access log, no worker: the
receipts wait in the outbox); a load generator of threads, one http.client keep-alive
connection each, posts offline refunds of 0.01 with a fresh Idempotency-Key. Each shape (8
clients on random payments, 1 client, 8 clients on one payment) runs A/B/A/B: API, pgbench,
API, pgbench, each for the same duration.

Statements per refund are counted in this process, with Django's test client on the same
database (exact, every statement); the server's view is the `pg_stat_database` deltas of each
phase: commits, rows inserted and rows updated per refund.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kassa_bench_refunds"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
SHAPES = (("8 clients, random payments", 8, False), ("1 client", 1, False),
          ("8 clients, one hot payment", 8, True))
BODY = {"type": "offline", "method": "cash", "amount": "0.01", "reason": "bench"}
PAYMENT_MINOR = 1_000_000  # $10,000.00 each: room for a million refunds of 0.01

# The bare refund transaction (see the file), and its statements, BEGIN and COMMIT included.
ANCHOR_SQL = (Path(__file__).parent / "refund.sql").read_text()
ANCHOR_STATEMENTS = sum(1 for line in ANCHOR_SQL.splitlines()
                        if not line.startswith("--") and line.rstrip().endswith((";", "\\gset")))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def refunds_url() -> str:
    url = os.environ.get("KASSA_BENCH_REFUNDS_URL") or DEFAULT_URL
    name = database.database_name(url)
    if "bench" not in name or name.startswith("test"):
        raise database.BenchDatabaseError(
            f"refusing database {name!r}: the refund bench drops and rebuilds its database, so "
            f"its name must contain 'bench' (default {DEFAULT_URL})")
    return url


# --- the data: two organizations, N payments each, through the product's API ---------------

@dataclass
class Tenant:
    organization: int
    center: int
    user: int
    token: str
    payments: list[int]
    accounts: dict[str, int]


def _api_client(token: str) -> Callable[..., dict[str, Any]]:
    from django.test import Client

    client = Client(headers={"Authorization": f"Bearer {token}"})

    def post(path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        r = client.post(f"/api/v1{path}", body, content_type="application/json",
                        headers=headers)
        assert r.status_code == 201, (path, r.status_code, r.content[:500])
        return dict(r.json())
    return post


def make_tenant(name: str, payments: int) -> Tenant:
    from kassa.ledger.models import Account
    from kassa.tenancy.services import create_organization

    org, admin, token = create_organization(
        name=name, currency="USD", timezone="UTC",
        admin_email=f"admin@{name.split()[0].lower()}.example", admin_password=uuid.uuid4().hex)
    center = org.centers.get()
    post = _api_client(token.token)
    customer = post("/customers", {"name": "Bench Guest", "email": "bench@example.com"})["id"]
    made = []
    amount = f"{PAYMENT_MINOR // 100}.00"
    for _ in range(payments):
        invoice = post("/invoices", {"customer": customer, "center": str(center.pk), "lines": [
            {"kind": "service", "description": "Bench", "unit_price": amount}]})
        made.append(int(post(f"/invoices/{invoice['id']}/payments",
                             {"amount": amount, "method": "cash", "online": False})["id"]))
    accounts = dict(Account.objects.filter(center=center).values_list("code", "id"))
    return Tenant(org.pk, center.pk, admin.user_id, token.token, made, accounts)


def count_statements(tenant: Tenant) -> int:
    """Statements of one keyed offline refund through the API, counted in this process (after
    one untimed refund, so no count pays for a cache filled once per process)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    post = _api_client(tenant.token)
    path = f"/payments/{tenant.payments[-1]}/refunds"
    post(path, BODY, **{"Idempotency-Key": uuid.uuid4().hex})
    with CaptureQueriesContext(connection) as captured:
        post(path, BODY, **{"Idempotency-Key": uuid.uuid4().hex})
    return len(captured.captured_queries)


LOCK_SAMPLES = 50  # keyed refunds whose lock hold time is measured in this process


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return _round(ordered[min(len(ordered) - 1, int(q * len(ordered)))]) if ordered else None

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": _round(max(ordered, default=0.0))}


def api_lock_hold(tenant: Tenant, samples: int = LOCK_SAMPLES) -> dict[str, Any]:
    """How long one keyed offline refund through the API holds its row locks: from its money
    transaction's first `SELECT … FOR UPDATE` to the end of its COMMIT (a callback run once
    the commit returned), in this process with Django's test client, one refund at a time (no
    waiting on other refunds' locks: the hold itself)."""
    from django.db import connection, transaction

    post = _api_client(tenant.token)
    path = f"/payments/{tenant.payments[-2]}/refunds"
    holds: list[float] = []
    began: list[float] = []

    def committed() -> None:
        holds.append((time.perf_counter() - began.pop()) * 1000)

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not began and connection.in_atomic_block and "FOR UPDATE" in sql.upper():
            began.append(time.perf_counter())
            transaction.on_commit(committed)
        return execute(sql, params, many, context)

    post(path, BODY, **{"Idempotency-Key": uuid.uuid4().hex})  # untimed: warm caches
    longest: list[float] = []
    for _ in range(samples):
        holds.clear()
        began.clear()
        with connection.execute_wrapper(wrapper):
            post(path, BODY, **{"Idempotency-Key": uuid.uuid4().hex})
        longest.append(max(holds, default=0.0))
    return {"samples": samples, **_percentiles(longest),
            "measured": "in-process, one refund at a time: first row lock to COMMIT returned"}


def anchor_lock_hold(url: str, script: Path, tenant: Tenant, seconds: float) -> dict[str, Any]:
    """The bare SQL refund's lock hold on pgbench, one client: the sum of its statements'
    average latencies (`pgbench -r`) from the payment's `FOR UPDATE` through `COMMIT`."""
    command = pgbench_command(url, script, tenant, 1, False, seconds)
    run = subprocess.run([*command[:-1], "-r", command[-1]], capture_output=True, text=True,
                         check=False)
    if run.returncode != 0:
        raise SystemExit(f"bench: pgbench -r failed ({run.returncode}):\n{run.stdout}")
    per_statement = re.findall(r"^\s+([\d.]+)\s+\d+\s+(.+)$", run.stdout, re.MULTILINE) or \
        re.findall(r"^\s+([\d.]+)\s+(.+)$", run.stdout, re.MULTILINE)
    held, holding = 0.0, False
    for latency, statement in per_statement:
        holding = holding or "FOR UPDATE" in statement.upper() or statement.strip().upper(
        ).startswith("SELECT INVOICE_ID")
        if holding:
            held += float(latency)
    return {"avg_ms": _round(held), "statements": len(per_statement),
            "measured": "pgbench -r, 1 client: per-statement average latencies summed from "
                        "the FOR UPDATE through COMMIT"}


# --- the server ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    runtime: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.runtime, ignore_errors=True)


def start_server(url: str, workers: int, threads: int, log: Path) -> Server:
    """`kassa run` on a free loopback port; its stderr (gunicorn's and the app's JSON log, a
    line per refund) goes to `log`."""
    port = free_port()
    # gunicorn keeps a control socket under $XDG_RUNTIME_DIR: one of its own per instance.
    runtime = tempfile.mkdtemp(prefix="kassa-bench-run-")
    env = {**os.environ, "DATABASE_URL": url, "XDG_RUNTIME_DIR": runtime}
    env.pop("KASSA_REPORTS_DATABASE_URL", None)
    env.pop("EMAIL_URL", None)
    command = [sys.executable, "-m", "kassa.cli", "run", "--port", str(port), "--workers",
               str(workers), "--threads", str(threads), "--no-access-log", "--no-demo",
               "--no-worker"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    server = Server(process, port, runtime)
    deadline = time.monotonic() + 120  # migrate and collectstatic come first
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: kassa run exited with {process.returncode} (see {log})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise SystemExit("bench: kassa run did not answer within 120 s")


# --- the load ------------------------------------------------------------------------------

@dataclass
class Phase:
    """One timed phase: the API's or pgbench's."""
    kind: str  # api | pgbench
    clients: int
    seconds: float
    done: int
    errors: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    server: dict[str, int] = field(default_factory=dict)  # pg_stat_database deltas
    latency_avg_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "clients": self.clients, "seconds": round(self.seconds, 2),
                "done": self.done, "errors": self.errors, "rate": round(self.rate, 1),
                "p50_ms": _round(self.percentile(0.50)), "p99_ms": _round(self.percentile(0.99)),
                "latency_avg_ms": _round(self.latency_avg_ms), "statuses": self.statuses,
                "server_per_refund": per_refund(self.server, self.done)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def per_refund(deltas: dict[str, int], done: int) -> dict[str, float]:
    return {k: round(v / done, 2) for k, v in deltas.items()} if done else {}


STATS_SQL = ("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated "
             "FROM pg_stat_database WHERE datname = current_database()")
STATS = ("commits", "rollbacks", "inserted", "updated")


def server_stats(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1),
                         autocommit=True) as conn:
        row = conn.execute(STATS_SQL).fetchone()
    assert row is not None
    return dict(zip(STATS, (int(x) for x in row), strict=True))


def settled_stats(url: str) -> dict[str, int]:
    # A backend flushes its counters to the shared statistics at most once a second, and an
    # idle one within about a second: wait that long before reading them.
    time.sleep(1.2)
    return server_stats(url)


def drive_api(port: int, token: str, payments: list[int], clients: int,
              seconds: float) -> Phase:
    """`clients` threads, one keep-alive connection each, refunding for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[dict[str, int]] = [{} for _ in range(clients)]
    body = json.dumps(BODY).encode()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
        mine, seen = latencies[n], statuses[n]
        start.wait()
        while time.perf_counter() < deadline[0]:
            payment = payments[0] if len(payments) == 1 else rng.choice(payments)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": uuid.uuid4().hex}
            began = time.perf_counter()
            try:
                conn.request("POST", f"/api/v1/payments/{payment}/refunds", body, headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
            mine.append((time.perf_counter() - began) * 1000)
            seen[status] = seen.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - began
    merged: dict[str, int] = {}
    for seen in statuses:
        for k, v in seen.items():
            merged[k] = merged.get(k, 0) + v
    done = merged.get("201", 0)
    return Phase("api", clients, took, done, sum(merged.values()) - done,
                 [x for mine in latencies for x in mine], merged)


def pgbench_command(url: str, script: Path, tenant: Tenant, clients: int, hot: bool,
                    seconds: float) -> list[str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    first, last = ((tenant.payments[0], tenant.payments[0]) if hot
                   else (min(tenant.payments), max(tenant.payments)))
    assert last - first + 1 == (1 if hot else len(tenant.payments)), "payment ids are a range"
    variables = {"org": tenant.organization, "user": tenant.user, "pmin": first, "pmax": last,
                 "cash": tenant.accounts["cash"], "receivable": tenant.accounts["receivable"]}
    return [PGBENCH, "-n", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres", "-c", str(clients), "-j", str(min(clients, 2)),
            "-T", str(max(1, round(seconds))), "-f", str(script),
            *[f"-D{k}={v}" for k, v in variables.items()], parts.path.lstrip("/")]


def parse_pgbench(output: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, pattern in (("done", r"number of transactions actually processed: (\d+)"),
                         ("failed", r"number of failed transactions: (\d+)"),
                         ("latency_avg_ms", r"latency average = ([\d.]+) ms"),
                         ("tps", r"tps = ([\d.]+) \(without initial connection time\)")):
        match = re.search(pattern, output)
        if match:
            found[key] = float(match.group(1))
    return found


def drive_pgbench(url: str, script: Path, tenant: Tenant, clients: int, hot: bool,
                  seconds: float) -> Phase:
    run = subprocess.run(pgbench_command(url, script, tenant, clients, hot, seconds),
                         capture_output=True, text=True, check=False)
    found = parse_pgbench(run.stdout)
    if run.returncode != 0 or "tps" not in found:
        raise SystemExit(f"bench: pgbench failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    done = int(found["done"])
    return Phase("pgbench", clients, done / found["tps"] if found["tps"] else seconds, done,
                 int(found.get("failed", 0)), latency_avg_ms=found.get("latency_avg_ms"))


# --- the run -------------------------------------------------------------------------------

@dataclass
class Shape:
    title: str
    clients: int
    hot: bool
    phases: list[Phase] = field(default_factory=list)

    def of(self, kind: str) -> list[Phase]:
        return [p for p in self.phases if p.kind == kind]

    def summary(self) -> dict[str, Any]:
        api, sql = self.of("api"), self.of("pgbench")
        api_rate = sum(p.done for p in api) / sum(p.seconds for p in api)
        sql_rate = sum(p.done for p in sql) / sum(p.seconds for p in sql)
        latencies = [x for p in api for x in p.latencies_ms]
        merged = Phase("api", self.clients, 0, 0, 0, latencies)
        server: dict[str, int] = {}
        for p in api:
            for k, v in p.server.items():
                server[k] = server.get(k, 0) + v
        return {"title": self.title, "clients": self.clients, "hot_payment": self.hot,
                "api_per_s": round(api_rate, 1), "pgbench_tps": round(sql_rate, 1),
                "ratio": round(api_rate / sql_rate, 4) if sql_rate else None,
                "api_p50_ms": _round(merged.percentile(0.5)),
                "api_p99_ms": _round(merged.percentile(0.99)),
                "api_errors": sum(p.errors for p in api),
                "pgbench_failed": sum(p.errors for p in sql),
                "api_server_per_refund": per_refund(server, sum(p.done for p in api)),
                "phases": [p.as_json() for p in self.phases]}


def table(summaries: list[dict[str, Any]], statements: int) -> str:
    lines = [f"{'shape':30}{'API req/s':>10}{'pgbench tps':>13}{'ratio':>8}{'p50 ms':>8}"
             f"{'p99 ms':>8}{'errors':>8}"]
    for s in summaries:
        lines.append(f"{s['title']:30}{s['api_per_s']:>10.1f}{s['pgbench_tps']:>13.1f}"
                     f"{100 * (s['ratio'] or 0):>7.1f}%{s['api_p50_ms'] or 0:>8.1f}"
                     f"{s['api_p99_ms'] or 0:>8.1f}{s['api_errors']:>8}")
    first = summaries[0]["api_server_per_refund"] if summaries else {}
    lines.append(f"SQL statements per keyed refund: API {statements} (counted in-process, "
                 f"BEGIN and COMMIT included), bare SQL {ANCHOR_STATEMENTS}; on the server "
                 f"per API refund: {first.get('commits', '?')} commits, "
                 f"{first.get('inserted', '?')} rows inserted, "
                 f"{first.get('updated', '?')} updated")
    return "\n".join(lines)


def verify_api(url: str, tenant: Tenant) -> tuple[bool, str]:
    """`kassa verify` as an operator runs it, over the API's organization."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("KASSA_REPORTS_DATABASE_URL", None)
    run = subprocess.run([sys.executable, "-m", "kassa.cli", "verify", "--org",
                          str(tenant.organization)], env=env, capture_output=True, text=True,
                         check=False)
    return run.returncode == 0, (run.stdout + run.stderr).strip()


# The checks the anchor's bare rows answer to: the books balance, every posting agrees with
# its entry, each payment's refunded figure is the sum of its refunds.
ANCHOR_CHECKS = ("entries_balance", "postings_agree_with_entries", "payments_refunded_agree")


def verify_anchor(tenant: Tenant) -> list[str]:
    from kassa.ledger.verify import CHECKS, Run
    from kassa.tenancy.models import Organization

    org = Organization.objects.get(pk=tenant.organization)
    chosen = [fn for fn in CHECKS if fn.__name__ in ANCHOR_CHECKS]
    assert len(chosen) == len(ANCHOR_CHECKS), [fn.__name__ for fn in CHECKS]
    return [line for fn in chosen for line in fn(org, Run())]


def merge_results(path: Path, refunds: dict[str, Any]) -> None:
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError:
            existing = {}
    existing["refunds"] = refunds
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=2) + "\n")


def run(*, seconds: float, payments: int, workers: int, threads: int, clients: int,
        output: Path, command: str) -> int:
    url = refunds_url()
    database.ensure_server(url)
    began = time.perf_counter()
    database.ensure_database(url, drop_first=True)
    database.setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    api = make_tenant("Api Spa", payments)
    anchor = make_tenant("Anchor Spa", payments)
    statements = count_statements(api)
    lock_hold = {"api": api_lock_hold(api)}
    connection.close()
    say(f"bench: refunds: database {database.database_name(url)} ready with 2 × {payments} "
        f"payments in {time.perf_counter() - began:.0f} s; API refund: {statements} statements")
    shapes = [Shape(title.replace("8", str(clients)), clients if n > 1 else 1, hot)
              for title, n, hot in SHAPES]
    load_before = [round(x, 2) for x in os.getloadavg()]
    log = output.parent / "refunds-server.log"
    server = start_server(url, workers, threads, log)
    say(f"bench: kassa run serving on port {server.port} (its log: {log})")
    try:
        with tempfile.TemporaryDirectory(prefix="kassa-bench-sql-") as tmp:
            script = Path(tmp) / "refund.sql"
            script.write_text(ANCHOR_SQL)  # a copy: pgbench reads it at every phase
            # One untimed second of each, so neither side's first phase pays for a cold start.
            drive_api(server.port, api.token, api.payments, 2, 1.0)
            drive_pgbench(url, script, anchor, 2, False, 1)
            lock_hold["bare_sql"] = anchor_lock_hold(url, script, anchor, 3)
            say(f"bench: lock hold per refund: API p50 {lock_hold['api']['p50_ms']} ms, p99 "
                f"{lock_hold['api']['p99_ms']} ms; bare SQL {lock_hold['bare_sql']['avg_ms']} "
                "ms")
            for shape in shapes:
                targets = api.payments[:1] if shape.hot else api.payments
                for _ in range(2):  # A/B/A/B
                    before = settled_stats(url)
                    phase = drive_api(server.port, api.token, targets, shape.clients, seconds)
                    after = settled_stats(url)
                    phase.server = {k: after[k] - before[k] for k in STATS}
                    shape.phases.append(phase)
                    say(f"bench: {shape.title}: API {phase.rate:.1f} req/s "
                        f"(p99 {phase.percentile(0.99) or 0:.0f} ms, {phase.errors} errors)")
                    phase = drive_pgbench(url, script, anchor, shape.clients, shape.hot,
                                          seconds)
                    shape.phases.append(phase)
                    say(f"bench: {shape.title}: pgbench {phase.rate:.1f} tps")
    finally:
        server.stop()
    load_after = [round(x, 2) for x in os.getloadavg()]
    ok, verified = verify_api(url, api)
    say(f"bench: kassa verify --org {api.organization}: {verified}")
    anchor_problems = verify_anchor(anchor)
    say(f"bench: the anchor's rows: {len(anchor_problems)} discrepancies over "
        f"{', '.join(ANCHOR_CHECKS)}")
    for line in anchor_problems[:10]:
        say(f"  {line}")
    summaries = [shape.summary() for shape in shapes]
    print(table(summaries, statements), flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
    merge_results(output, {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
        "database": database.database_name(url), "seconds_per_phase": seconds,
        "payments_per_organization": payments, "server": {"workers": workers,
                                                          "threads": threads},
        "machine": {"cpus": os.cpu_count(), "postgresql": version,
                    "load_average_before": load_before, "load_average_after": load_after},
        "statements_per_refund": {"api_keyed_offline": statements,
                                  "bare_sql": ANCHOR_STATEMENTS,
                                  "counted": "in-process with Django's test client on the "
                                             "bench database, BEGIN and COMMIT included"},
        "lock_hold": lock_hold,
        "shapes": summaries,
        "verify": {"api_clean": ok, "api_output": verified,
                   "anchor_checks": list(ANCHOR_CHECKS), "anchor_discrepancies":
                   len(anchor_problems)},
        "total_seconds": round(time.perf_counter() - began, 1),
    })
    say(f"bench: refunds: results under 'refunds' in {output} "
        f"({time.perf_counter() - began:.0f} s in all)")
    errors = sum(s["api_errors"] + s["pgbench_failed"] for s in summaries)
    return 0 if ok and not anchor_problems and not errors else 1
