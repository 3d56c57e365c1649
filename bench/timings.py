"""The reports timed beside the plain SQL aggregates they rest on, in the same run.

Each case is a report (the selector a view calls), the same report through the HTTP API (Django's
test client with a bearer token: routing, auth, schema, JSON), and the SQL it rests on — the
aggregate over raw postings, and where the report reads them, over the per-day totals. Every
measurement runs `repeats` times; the table shows the median and the worst. A report's target is
1 s, its worst run included.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

TARGET_SECONDS = 1.0
REVENUE_CODES = ("revenue_service", "revenue_product", "revenue_redemption", "revenue_forfeit")


@dataclass
class Measurement:
    label: str
    kind: str  # report | http | sql
    runs: list[float]
    rows: int | None = None
    queries: int | None = None
    target: float | None = None
    sql: list[tuple[str, Any]] = field(default_factory=list)  # the queries, with params

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def worst(self) -> float:
        return max(self.runs)

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.worst < self.target

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "median_s": round(self.median, 6),
                "max_s": round(self.worst, 6), "runs_s": [round(r, 6) for r in self.runs],
                "rows": self.rows, "queries": self.queries, "target_s": self.target,
                "meets_target": self.meets_target}


@dataclass
class Case:
    title: str
    measurements: list[Measurement] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "measurements": [m.as_json() for m in self.measurements]}


def _count(result: Any) -> int | None:
    if isinstance(result, list):
        return len(result)
    if isinstance(result, dict) and "rows" in result:
        return len(result["rows"])
    return None


def _measure(label: str, kind: str, fn: Callable[[], Any], repeats: int,
             target: float | None = None) -> Measurement:
    from django.db import connection

    queries: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        result = fn()  # untimed: it records the queries (and pays for first imports)
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - began)
    return Measurement(label=label, kind=kind, runs=runs, rows=_count(result),
                       queries=len(queries), target=target, sql=queries)


def _sql(query: str, args: list[Any]) -> Callable[[], list[Any]]:
    from django.db import connection

    def run() -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()
    return run


def _http(client: Any, path: str, params: dict[str, str]) -> Callable[[], Any]:
    def run() -> Any:
        response = client.get(path, params)
        assert response.status_code == 200, (path, response.status_code, response.content[:500])
        return response.json()
    return run


def _month(day: dt.date) -> tuple[dt.date, dt.date]:
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def run_cases(*, org: Any, plan_end: dt.date, token: str, repeats: int) -> list[Case]:
    from django.test import Client

    from kassa.reports import selectors
    from kassa.reports.selectors import Scope
    from kassa.tenancy.models import Center

    centers = list(Center.objects.filter(organization=org).order_by("id"))
    center = centers[2]
    client = Client(headers={"Authorization": f"Bearer {token}"})
    # A running server has its code loaded: one request before timing any.
    assert client.get("/api/v1/settings").status_code == 200

    # Days in the steady state: late enough that every kind of event happens on them.
    day = plan_end - dt.timedelta(days=77)
    recent = _month(plan_end - dt.timedelta(days=75))
    early = _month(plan_end - dt.timedelta(days=990))
    year = (plan_end - dt.timedelta(days=364), plan_end)
    cases: list[Case] = []

    def measure(case: Case, label: str, kind: str, fn: Callable[[], Any]) -> None:
        target = TARGET_SECONDS if kind in ("report", "http") else None
        case.measurements.append(_measure(label, kind, fn, repeats, target))

    # (a) the daily report: one center, and all centers.
    for where in (center, None):
        name = where.name if where else "all centers"
        case = Case(f"(a) daily report, {name}, {day}")
        scope = Scope(org, where, day, day)
        measure(case, "kassa.reports.selectors.daily", "report", partial(selectors.daily, scope))
        params = {"date": day.isoformat(), **({"center": str(where.pk)} if where else {})}
        measure(case, "GET /api/v1/reports/daily", "http",
                _http(client, "/api/v1/reports/daily", params))
        filt, args = (("center_id = %s", [where.pk]) if where
                      else ("organization_id = %s", [org.pk]))
        measure(case, "SQL postings: SUM(amount) GROUP BY code, kind", "sql", _sql(
            f"SELECT code, kind, SUM(amount_minor) FROM ledger_posting WHERE {filt} "
            "AND business_date = %s GROUP BY code, kind", [*args, day]))
        measure(case, "SQL DailyTotal: SUM(amount) GROUP BY code, kind", "sql", _sql(
            f"SELECT code, kind, SUM(amount_minor) FROM ledger_dailytotal WHERE {filt} "
            "AND business_date = %s GROUP BY code, kind", [*args, day]))
        cases.append(case)

    # (b) a month's package liability for one center: a recent month and one two years back.
    for start, end in (recent, early):
        case = Case(f"(b) package liability, {center.name}, {start} … {end}")
        scope = Scope(org, center, start, end)
        measure(case, "kassa.reports.selectors.package_liability (limit 500)", "report",
                partial(selectors.package_liability, scope))
        measure(case, "GET /api/v1/reports/package-liability", "http", _http(
            client, "/api/v1/reports/package-liability",
            {"start": start.isoformat(), "end": end.isoformat(), "center": str(center.pk)}))
        measure(case, "SQL postings: package_liability SUM(amount) GROUP BY package", "sql", _sql(
            "SELECT package_id, SUM(amount_minor) FROM ledger_posting WHERE center_id = %s "
            "AND code = 'package_liability' AND business_date BETWEEN %s AND %s "
            "GROUP BY package_id", [center.pk, start, end]))
        measure(case, "SQL DailyTotal: package_liability SUM(amount) GROUP BY kind", "sql", _sql(
            "SELECT kind, SUM(amount_minor) FROM ledger_dailytotal WHERE center_id = %s "
            "AND code = 'package_liability' AND business_date BETWEEN %s AND %s "
            "GROUP BY kind", [center.pk, start, end]))
        cases.append(case)

    # (c) a year's revenue: one center, and all centers.
    for where in (center, None):
        name = where.name if where else "all centers"
        case = Case(f"(c) revenue, {name}, {year[0]} … {year[1]}")
        scope = Scope(org, where, *year)
        measure(case, "kassa.reports.selectors.revenue", "report",
                partial(selectors.revenue, scope))
        params = {"start": year[0].isoformat(), "end": year[1].isoformat(),
                  **({"center": str(where.pk)} if where else {})}
        measure(case, "GET /api/v1/reports/revenue", "http",
                _http(client, "/api/v1/reports/revenue", params))
        filt, args = (("center_id = %s", [where.pk]) if where
                      else ("organization_id = %s", [org.pk]))
        for table, label in (("ledger_posting", "postings"), ("ledger_dailytotal", "DailyTotal")):
            measure(case, f"SQL {label}: revenue SUM(amount) GROUP BY code", "sql", _sql(
                f"SELECT code, SUM(amount_minor) FROM {table} WHERE {filt} "
                "AND code = ANY(%s) AND business_date BETWEEN %s AND %s GROUP BY code",
                [*args, list(REVENUE_CODES), *year]))
        cases.append(case)
    return cases


def explain(sql: str, params: Any, *, analyze: bool = True) -> str:
    """EXPLAIN (ANALYZE: and run it) of one recorded query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ") + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())
