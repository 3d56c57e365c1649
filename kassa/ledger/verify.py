"""`kassa verify`: prove that the books balance and that every stored figure is what the ledger
says.

The ledger's own check (every entry sums to zero, every posting's copied fields agree with its
entry and account) lives here; each domain app registers the checks of its own figures with
`@check` in its `checks.py` (imported when the app is ready). A check yields one line per
discrepancy, naming the object, the figure, what is stored and what the ledger says.

It has to stay fast over years of history (ten million postings), so every check is set-based
SQL: the per-object sums are grouped in the database over the indexed sub-ledgers (postings by
invoice, payment, package, refund, entry), compared there with the stored figures, and only the
rows that disagree come back. The objects are taken `Run.batch` ids at a time (keyset over the
object's table, `batches`), so neither the database nor Python ever holds more than one batch.

`--since DATE` checks only what *moved* on or after DATE: an object that has a posting in a
journal entry of a business day on or after DATE, or that was created on or after DATE (its
start in the organization's time zone); entries and per-day totals of those days. A change
that posted nothing (a hand edit, a charge state moving without booking) of an object that
did not otherwise move is not seen: only a full run is the guarantee.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import connection

from kassa.audit.chain import broken_links
from kassa.tenancy.models import Organization


@dataclass(frozen=True)
class Kind:
    """What a check batches over: a table of objects with an `organization_id`, the posting
    column of its sub-ledger, and whether it has a `created_at`."""

    noun: str  # for the summary: "invoices"
    table: str
    posting_column: str | None
    created: bool = True


ENTRIES = Kind("journal entries", "ledger_journalentry", None, created=False)
INVOICES = Kind("invoices", "billing_invoice", "invoice_id")
PAYMENTS = Kind("payments", "billing_payment", "payment_id")
PACKAGES = Kind("packages", "packages_package", "package_id")
REFUNDS = Kind("refunds", "refunds_refund", "refund_id")
CUSTOMERS = Kind("customers", "billing_customer", "customer_id")


def _batch_default() -> int:
    return int(getattr(settings, "KASSA_VERIFY_BATCH", 10000))


def _jobs_default() -> int:
    return int(getattr(settings, "KASSA_VERIFY_JOBS", 2))


@dataclass
class Run:
    """How a run checks: the batch size (objects per query), `since` (only what moved on or
    after that business day), a progress callback, and what it checked (kind → objects)."""

    since: dt.date | None = None
    batch: int = field(default_factory=_batch_default)
    # Checks run at once, each on its own connection (PostgreSQL, outside a transaction: see
    # `lines`); 1 runs them one after the other.
    jobs: int = field(default_factory=_jobs_default)
    progress: Callable[[str, int, int], None] | None = None  # (check, objects done, of about)
    checked: dict[str, int] = field(default_factory=dict)
    # Set by `verify` for the check being run (progress names it).
    current: str = ""
    # The ledger pass of `entries_balance`, by organization, for `postings_agree_with_entries`.
    ledger: dict[int, Any] = field(default_factory=dict)
    # The per-day pass's span and movements by account code, by organization, for the reports'
    # reconciliation (kassa/reports/checks.py).
    moved: dict[int, Any] = field(default_factory=dict)
    # Seconds each check took, over every organization (the bench reports them).
    seconds: dict[str, float] = field(default_factory=dict)
    # Each batch's last id and size, by (organization, table): the batches are stepped
    # through once a run, not once a check.
    bounds: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert 1 <= self.batch <= 1_000_000, self.batch
        assert 1 <= self.jobs <= 64, self.jobs


Check = Callable[..., Iterable[str]]  # (organization, run: Run = Run()) -> lines
CHECKS: list[Check] = []
# The checks that take over the pass of the check registered just before them (kept on the
# run): they run right after it, on the same connection.
FOLLOWS: set[str] = set()


def check(fn: Check | None = None, *, follows: bool = False) -> Any:
    """Register a check (`@check`); `@check(follows=True)`: one that reads what the check
    registered before it left on the run."""
    def register(fn: Check) -> Check:
        CHECKS.append(fn)
        if follows:
            FOLLOWS.add(fn.__name__)
        return fn
    return register(fn) if fn is not None else register


def fetch(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _moved(kind: Kind) -> str:
    """The ids of `kind` that moved since %(since)s: SQL over the entries' (organization,
    business_date) index and the postings' entry index."""
    if kind is ENTRIES:
        return ("SELECT id FROM ledger_journalentry "
                "WHERE organization_id = %(org)s AND business_date >= %(since)s")
    sql = (f"SELECT p.{kind.posting_column} AS id FROM ledger_posting p "
           f"WHERE p.{kind.posting_column} IS NOT NULL AND p.entry_id IN ("
           "SELECT id FROM ledger_journalentry "
           "WHERE organization_id = %(org)s AND business_date >= %(since)s)")
    if kind.created:
        sql += (f" UNION SELECT id FROM {kind.table} "
                "WHERE organization_id = %(org)s AND created_at >= %(since_at)s")
    return sql


def within(column: str, kind: Kind, run: Run) -> str:
    """The SQL condition that `column` (an id of `kind`) is in the current batch."""
    sql = f"{column} BETWEEN %(lo)s AND %(hi)s"
    if run.since is not None:
        sql += f" AND {column} IN ({_moved(kind)})"
    return sql


def spans(column: str, kind: Kind, key: str, table: str | None = None,
          by: str = "id") -> str:
    """The SQL condition that `column` lies between the least and the greatest `key` of the
    rows of `table` (default: `kind`'s own) whose `by` is in the current batch of `kind` — say
    the ids of a batch of packages' lines, or of a batch of invoices' lines. A bound that drops
    no row a join on `key` needs, and lets the database read the other table's index by range
    rather than the whole table once a batch (which grows with the square of the history).
    Rows made with their objects (a package's line, an invoice's lines) have ids that grow
    with them, so the range is about the batch's own."""
    # (`+ 0`: the least and greatest of the batch's rows, read by `by`, and not the first of
    # `key`'s own index that falls in the batch, which walks that index from its start.)
    of = (f"FROM {table or kind.table} b WHERE b.organization_id = %(org)s "
          f"AND b.{by} BETWEEN %(lo)s AND %(hi)s")
    return (f"{column} BETWEEN (SELECT MIN(b.{key} + 0) {of}) "
            f"AND (SELECT MAX(b.{key} + 0) {of})")


def batches(org: Organization, kind: Kind, run: Run) -> Iterator[dict[str, Any]]:
    """The SQL parameters of each batch of `kind`'s objects of `org`: `run.batch` ids at a time,
    in id order (with `since`, only the ids that moved). Each batch is a keyset step, so a run's
    memory does not grow with the history."""
    params = base_params(org, run)
    source = (_moved(kind) if run.since is not None
              else f"SELECT id FROM {kind.table} WHERE organization_id = %(org)s")
    step = (f"SELECT COUNT(*), MAX(id) FROM (SELECT id FROM ({source}) AS m "
            "WHERE id > %(after)s ORDER BY id LIMIT %(n)s) AS s")
    about = fetch(f"SELECT COUNT(*) FROM {kind.table} WHERE organization_id = %(org)s",
                  params)[0][0] if run.progress and run.since is None else 0
    # The batches the run already stepped through for another check of the same objects
    # (a few numbers each), then steps on from the last of them: what was made since is
    # still checked.
    key = (org.pk, kind.table)
    known = run.bounds.get(key, [])
    stepped: list[tuple[int, int]] = []
    after, done = 0, 0
    while True:
        if len(stepped) < len(known):
            last, count = known[len(stepped)]
        else:
            count, last = fetch(step, {**params, "after": after, "n": run.batch})[0]
            if not count:
                break
        stepped.append((last, count))
        yield {**params, "lo": after + 1, "hi": last}
        after, done = last, done + count
        run.checked[kind.noun] = max(run.checked.get(kind.noun, 0), done)
        if run.progress:
            run.progress(run.current, done, max(about, done))
    if len(stepped) >= len(known):
        run.bounds[key] = stepped


def base_params(org: Organization, run: Run) -> dict[str, Any]:
    params: dict[str, Any] = {"org": org.pk}
    if run.since is not None:
        start = dt.datetime.combine(run.since, dt.time(), zoneinfo.ZoneInfo(org.timezone))
        params["since"] = connection.ops.adapt_datefield_value(run.since)
        params["since_at"] = connection.ops.adapt_datetimefield_value(start)
    return params


def each(org: Organization, kind: Kind, run: Run, sql: str,
         extra: dict[str, Any] | None = None) -> Iterator[tuple[Any, ...]]:
    """The rows `sql` returns for every batch of `kind` (the rows that disagree)."""
    for params in batches(org, kind, run):
        yield from fetch(sql, {**params, **(extra or {})})


def in_list(values: Sequence[str]) -> str:
    """A SQL list of constant words (account codes, kinds): never user input."""
    assert all(v.replace("_", "").isalnum() for v in values), values
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# At most this many lines per ledger check: a broken load could name millions of postings.
LEDGER_LINES = 100


# A posting's copies that disagree with its entry or its account (the reports and the other
# checks read the copies). `p`, `e`, `a`: the posting, its entry, its account.
_COPIES_DIFFER = """p.organization_id = %(org)s
    AND (p.center_id <> e.center_id OR p.business_date <> e.business_date OR p.kind <> e.kind
         OR p.code <> a.code OR p.center_id <> a.center_id)"""


@dataclass
class _Ledger:
    """What the one pass over the entries and their postings found, for the two checks that
    report it."""

    unbalanced: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


def _ledger_pass(org: Organization, run: Run) -> _Ledger:
    """One read of every posting, a batch of entries at a time over the postings' entry index:
    each entry's count and sum and how many of its postings' copies differ, grouped in the
    database; only the entries that are wrong come back. The postings that differ are then
    named from those few entries alone."""
    found = _Ledger()
    flagged = each(org, ENTRIES, run, f"""
        SELECT e.id, COUNT(p.id), SUM(p.amount_minor),
               SUM(CASE WHEN {_COPIES_DIFFER} THEN 1 ELSE 0 END)
        FROM ledger_journalentry e
        LEFT JOIN ledger_posting p
               ON p.entry_id = e.id AND {within('p.entry_id', ENTRIES, run)}
        LEFT JOIN ledger_account a ON a.id = p.account_id
        WHERE e.organization_id = %(org)s AND {within('e.id', ENTRIES, run)}
        GROUP BY e.id
        HAVING COUNT(p.id) = 0 OR SUM(p.amount_minor) <> 0
            OR SUM(CASE WHEN {_COPIES_DIFFER} THEN 1 ELSE 0 END) > 0
        ORDER BY e.id""")
    differing: list[int] = []
    for entry_id, postings, total, wrong in flagged:
        if postings and total and len(found.unbalanced) < LEDGER_LINES:
            found.unbalanced.append(f"journal entry {entry_id}: postings sum to {total}, not 0")
        elif not postings and len(found.empty) < LEDGER_LINES:
            found.empty.append(f"journal entry {entry_id}: has no postings")
        if wrong and len(differing) < LEDGER_LINES:
            differing.append(entry_id)
    # Each entry named holds at least one posting that differs: these ids, at most
    # LEDGER_LINES of them, name every posting the lines may show.
    if differing:
        rows = fetch(f"""
            SELECT p.id FROM ledger_posting p
            JOIN ledger_journalentry e ON e.id = p.entry_id
            JOIN ledger_account a ON a.id = p.account_id
            WHERE p.entry_id IN ({", ".join(str(int(i)) for i in differing)})
              AND {_COPIES_DIFFER}
            ORDER BY p.id LIMIT {LEDGER_LINES}""", {"org": org.pk})
        found.wrong = [f"posting {posting_id}: center, day, kind or account code differs from "
                       "its entry" for (posting_id,) in rows]
    return found


@check
def entries_balance(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    # The pass serves the next check too (it runs right after this one in a `verify`): it
    # keeps what it found on the run, so every posting is read once.
    found = run.ledger[org.pk] = _ledger_pass(org, run)
    yield from found.unbalanced
    yield from found.empty


@check(follows=True)
def postings_agree_with_entries(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A posting's copies of its entry's center, day and kind and of its account's code and
    center are what they copy (the reports and the other checks read the copies)."""
    run = run or Run()
    found = run.ledger.pop(org.pk, None) or _ledger_pass(org, run)
    yield from found.wrong


@check
def audit_chain_holds(org: Organization, run: Run | None = None) -> Iterable[str]:
    """The organization's audit log, its hash chain recomputed entry by entry: the first
    broken link is named (kassa.audit.chain). Always the whole chain, `--since` or not: each
    link needs the one before it."""
    run = run or Run()
    yield from broken_links(org.pk, batch=max(run.batch, 1000))


def checks_of(run: Run) -> Iterator[tuple[Check, Run]]:
    for fn in CHECKS:
        run.current = fn.__name__
        yield fn, run


# PostgreSQL settings of a run, for its session only (put back after): no JIT compilation (a
# check's queries are many and short: compiling each cost more than it saved, ~0.1 s a query
# over ten million postings), and room to group a batch in memory (hash aggregates rather
# than sorts on disk, the planner's estimates of a batch's groups being far too high).
SESSION = {"jit": "off", "work_mem": "64MB"}


@contextmanager
def _session() -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield
        return
    names = list(SESSION)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
        before = cursor.fetchone()
        for name, value in SESSION.items():
            cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for name, value in zip(names, before, strict=True):
                cursor.execute("SELECT set_config(%s, %s, false)", [name, value])


def _chains() -> list[list[Check]]:
    """The checks in their order, each with those that follow it."""
    chains: list[list[Check]] = []
    for fn in CHECKS:
        if fn.__name__ in FOLLOWS and chains:
            chains[-1].append(fn)
        else:
            chains.append([fn])
    return chains


def _timed(org: Organization, fn: Check, run: Run) -> Iterator[str]:
    began = time.perf_counter()
    for line in fn(org, run):
        yield f"organization {org.pk}: {line}"
    run.seconds[fn.__name__] = run.seconds.get(fn.__name__, 0.0) + time.perf_counter() - began


def _at_once(org: Organization, run: Run) -> Iterator[str]:
    """The checks of `org` on `run.jobs` connections at once: each thread takes the next
    chain of checks (in their order) on its own connection; the lines come out in the checks'
    order all the same, each check's once it is done. Every connection sees the committed
    rows, as a run one check after the other does (each of its queries its own snapshot)."""
    chains = _chains()
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(chains)):
        todo.put(i)
    done = [threading.Event() for _ in chains]
    found: list[list[str]] = [[] for _ in chains]
    failed: list[BaseException | None] = [None] * len(chains)
    # What each chain checked, kept apart so that the summary lists the kinds in the checks'
    # order whichever thread ran which chain first (as a run one check after the other does).
    checked: list[dict[str, int]] = [{} for _ in chains]
    runs: list[Run] = []

    def work() -> None:
        mine = replace(run, checked={}, ledger={}, moved={}, seconds={})
        runs.append(mine)
        try:
            with _session():
                while True:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    mine.checked = checked[i]
                    try:
                        for fn in chains[i]:
                            mine.current = fn.__name__
                            found[i].extend(_timed(org, fn, mine))
                    except BaseException as exc:  # raised where the lines are read
                        failed[i] = exc
                    finally:
                        done[i].set()
        finally:
            connection.close()

    threads = [threading.Thread(target=work, name=f"verify-{n}", daemon=True)
               for n in range(min(run.jobs, len(chains)))]
    for thread in threads:
        thread.start()
    for i in range(len(chains)):
        done[i].wait()
        if failed[i] is not None:
            raise failed[i]  # type: ignore[misc]
        yield from found[i]
    for thread in threads:
        thread.join()
    for of_chain in checked:
        for noun, n in of_chain.items():
            run.checked[noun] = max(run.checked.get(noun, 0), n)
    for mine in runs:
        for name, took in mine.seconds.items():
            run.seconds[name] = run.seconds.get(name, 0.0) + took


def lines(organization: Organization | None = None, run: Run | None = None) -> Iterator[str]:
    """Every discrepancy, as it is found (organization by organization, check by check).
    With `run.jobs` above 1 on PostgreSQL, outside a transaction, the checks run that many
    at once on their own connections (another connection could not see a transaction's
    uncommitted rows, so inside one they run one after the other)."""
    run = run or Run()
    organizations = ([organization] if organization
                     else Organization.objects.order_by("id").iterator())
    at_once = (run.jobs > 1 and connection.vendor == "postgresql"
               and not connection.in_atomic_block)
    with _session():
        for org in organizations:
            if at_once:
                yield from _at_once(org, run)
                continue
            for fn, r in checks_of(run):
                yield from _timed(org, fn, r)


def verify(organization: Organization | None = None, run: Run | None = None) -> list[str]:
    return list(lines(organization, run))
