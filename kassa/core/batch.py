"""Writes whose answer nobody waits for, sent to PostgreSQL together with the next statement.

A money transaction's postings, allocations, payment history, outbox rows, day totals,
stored answer and audit entries return nothing the use case reads. Each was a round trip of
its own, inside the transaction and so under its row locks (issue 17). On PostgreSQL they are
held here instead and sent with the next statement, as data-modifying `WITH` queries of it,
or on their own as one statement when the next one reads what they write: so a refund's
writes go in a handful of statements.

PostgreSQL runs the queries of one statement on one snapshot: none of them sees what another
writes. So what is held is sent along only with a statement that reads none of the tables it
writes (`run`, told what a statement reads), and a write that changes rows already there (an
UPDATE, an upsert) is not held beside another change to its table (one statement must not
change a row twice). Any other statement on the connection — the ORM's, a savepoint's —
first sends what is held on its own (an execute wrapper), so every statement still runs after
the writes before it, as if each had been sent at once. What is left when the money
transaction ends goes in the commit's own round trip (`close_holding`, and the backend's
`_commit`); a transaction that fails drops what it held.

Only inside a money transaction (kassa.core.locks opens and closes the holding), and only on
PostgreSQL: SQLite, in the process, has no round trip to save and runs each write at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection as default_connection


@dataclass
class _Held:
    texts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    writes: set[str] = field(default_factory=set)
    changes: set[str] = field(default_factory=set)
    sizes: list[int] = field(default_factory=list)  # each text's share of `params`
    first: int | None = None  # the text that must run before the others (`hold(first=True)`)


def _held() -> _Held | None:
    return getattr(default_connection, "kassa_held", None)


def _set(held: _Held | None) -> None:
    connection: Any = default_connection  # the holder lives on the connection, one per thread
    connection.kassa_held = held


def holding() -> bool:
    """Whether this connection holds writes back now (inside a money transaction, PostgreSQL)."""
    return _held() is not None


def open_holding() -> None:
    """Hold writes back from now on (a money transaction begins; PostgreSQL only)."""
    # Only on Kassa's PostgreSQL backend, whose commit sends what is left held (`_commit`):
    # on another, it would never be sent.
    if getattr(default_connection, "sends_held_with_commit", False):
        # Every other statement on the connection sends what is held first. The wrappers'
        # list is the connection object's, which outlives a reconnection: installed once.
        if _sends_held_first not in default_connection.execute_wrappers:
            default_connection.execute_wrappers.append(_sends_held_first)
        if _held() is None:  # a second use case in a claimed request keeps the first's
            _set(_Held())


def close_holding(*, send: bool) -> None:
    """Stop holding: leave what is held to go with the commit, or drop it (a rollback)."""
    if send:
        _with_commit()
    _set(None)


def _with_commit() -> None:
    """What is held, as one statement, to be sent in the commit's round trip (the backend's
    `_commit`, kassa.core.postgresql.base: psycopg's pipeline sends it and the COMMIT at once).
    So the last rows a money transaction locks (its organization's audit chain, its payment)
    are held for one round trip less. Until then any other statement sends it first (the
    execute wrapper), as `flush` would have; a rollback drops it."""
    held: _Held | None = _held()
    if held is None or not held.texts:
        return
    sql, params = _one_statement(held)
    _set(_Held())
    send_before_commit(default_connection)
    connection: Any = default_connection
    connection.kassa_with_commit = (sql, params)


def with_commit(connection: Any) -> tuple[str, list[Any]] | None:
    """Take the statement left to go with the commit (the backend's `_commit` sends it)."""
    pending = getattr(connection, "kassa_with_commit", None)
    connection.kassa_with_commit = None
    return pending


def forget(connection: Any) -> None:
    """Drop whatever this connection holds or left for its commit (it is being closed)."""
    connection.kassa_with_commit = None
    connection.kassa_held = None


def send_before_commit(connection: Any) -> None:
    """Send the statement left for the commit now, on its own (another statement comes first)."""
    pending = with_commit(connection)
    if pending is not None:
        with connection.cursor() as cursor:
            cursor.execute(*pending)


def hold(sql: str, params: Sequence[Any], *, writes: str | tuple[str, ...],
         changes: bool = False, first: bool = False) -> None:
    """Run a statement that returns nothing and reads no table but those it writes: held back
    while holding, else now. `writes`: its table (or tables, when a function it calls writes
    more: the audit chain's link); `changes`: it changes rows already there (UPDATE, upsert);
    `first`: it runs before the writes held with it, whatever order they were held in (it takes
    a lock that must come before theirs: the audit chain's head before the day totals)."""
    held: _Held | None = _held()
    if held is None:
        with default_connection.cursor() as cursor:
            cursor.execute(sql, list(params))
        return
    tables = (writes,) if isinstance(writes, str) else writes
    if (changes and not held.changes.isdisjoint(tables)) or (first and held.first is not None):
        flush()
        held = _held()  # flush() empties by a new holder
        assert held is not None
    if first:
        held.first = len(held.texts)
    held.texts.append(sql)
    held.params.extend(params)
    held.sizes.append(len(params))
    held.writes.update(tables)
    if changes:
        held.changes.update(tables)


def run(sql: str, params: Sequence[Any], *, reads: Iterable[str], writes: str = "",
        changes: bool = False) -> list[Any]:
    """Run a statement and return its rows; what is held goes along when the statement reads
    none of the tables held writes write (`reads`: every table it reads, its own included
    when it reads it) and changes no table held writes change."""
    held: _Held | None = _held()
    if held is not None and held.texts:
        # (A write that must run first is sent as the main query of a statement of its own:
        # along with this one it would run after it.)
        if (held.writes.isdisjoint(reads) and not (changes and writes in held.changes)
                and held.first is None):
            sql, params = _along(held, sql, params)
        else:
            flush()
    with default_connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        # (Every caller's statement returns rows. Not `cursor.description`: psycopg builds
        # an object per column for it, a hundred for the invoice's lock.)
        return cursor.fetchall()


def flush() -> None:
    """Send what is held, as one statement."""
    held: _Held | None = _held()
    if held is None or not held.texts:
        return
    sql, params = _one_statement(held)
    _set(_Held())  # emptied first: the statement below passes the wrapper
    with default_connection.cursor() as cursor:
        cursor.execute(sql, params)


def _one_statement(held: _Held) -> tuple[str, list[Any]]:
    """What is held as one statement: the last text (or the one held `first`) its main query,
    the others WITH queries before it. PostgreSQL runs the main query first and then the WITH
    queries it does not read, in their order: so the one held `first` takes its locks before
    the others take theirs."""
    parts, at = [], 0
    for text, size in zip(held.texts, held.sizes, strict=True):
        parts.append((text, held.params[at:at + size]))
        at += size
    if held.first is not None:
        parts.append(parts.pop(held.first))
    *before, (main, main_params) = parts
    return _along(_Held([text for text, _ in before],
                        [p for _, params in before for p in params]), main, main_params)


def _along(held: _Held, sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """`sql` with the held texts as WITH queries before it (their parameters come first)."""
    if not held.texts:
        return sql, list(params)
    queries = ", ".join(f"kassa_held_{n} AS ({text})" for n, text in enumerate(held.texts))
    # A statement with WITH queries of its own (kassa.core.rows.insert_linked): one list.
    combined = ((f"WITH {queries}, {sql[5:]}" if sql.startswith("WITH ") else
                 f"WITH {queries} {sql}"), [*held.params, *params])
    _set(_Held())
    return combined


def _sends_held_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """Every other statement runs after the writes held before it."""
    connection = context["connection"]
    held = getattr(connection, "kassa_held", None)
    if held is not None and held.texts:
        flush()
    if getattr(connection, "kassa_with_commit", None) is not None:
        send_before_commit(connection)
    return execute(sql, params, many, context)

