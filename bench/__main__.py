"""Run the bench: make or reuse the data set, time the reports, print and save the table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import bulk_load, database, dataset, refunds, timings
from bench.refunds import DEFAULT_URL as DEFAULT_REFUNDS_URL

RESULTS = database.ROOT / "var" / "bench" / "results.json"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1 = 1,000,000 packages and about 10 M postings (default); "
                             "0.01 for a quick run")
    parser.add_argument("--rebuild", action="store_true",
                        help="drop the bench database and generate the data set again")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip timing `kassa verify` over the data set")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of every query the reports run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    refunds = parser.add_argument_group(
        "the refund API beside the bare SQL refund on pgbench (bench.refunds)")
    refunds.add_argument("--refunds", action="store_true",
                         help="run this part only, in its own database (KASSA_BENCH_REFUNDS_URL,"
                              f" default {DEFAULT_REFUNDS_URL})")
    refunds.add_argument("--seconds", type=float, default=10.0,
                         help="duration of each phase (default 10; 12 phases)")
    refunds.add_argument("--clients", type=int, default=8,
                         help="clients of the concurrent shapes (default 8)")
    refunds.add_argument("--payments", type=int, default=32,
                         help="payments per organization (default 32)")
    refunds.add_argument("--workers", type=int, default=2, help="kassa run --workers (2)")
    refunds.add_argument("--threads", type=int, default=4, help="kassa run --threads (4)")
    args = parser.parse_args(argv)
    if not 0.5 <= args.seconds <= 120:
        parser.error("--seconds must be 0.5 to 120")
    if not 1 <= args.clients <= 64 or not 1 <= args.payments <= 1000:
        parser.error("--clients must be 1 to 64, --payments 1 to 1000")
    if not 0 < args.scale <= 2:
        parser.error("--scale must be in (0, 2]")
    if not 1 <= args.repeats <= 100:
        parser.error("--repeats must be 1 to 100")
    return args


def migrate() -> float:
    from django.core.management import call_command

    began = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    return time.perf_counter() - began


def prepare(url: str, plan: dataset.Plan, rebuild: bool) -> dataset.Built:
    """The data set of `plan` in the bench database: the cached one, or a new one."""
    from django.db import connection

    database.ensure_database(url, drop_first=rebuild)
    database.setup_django(url)
    migrated = migrate()
    with connection.cursor() as cursor:
        built = dataset.cached(cursor)
    if built is not None and built.plan == plan.as_json():
        say(f"bench: reusing the data set built {built.built_at} "
            f"(generated in {built.seconds['total']:.0f} s; --rebuild to regenerate)")
        return built
    from kassa.tenancy.models import Organization

    if built is not None or Organization.objects.exists():
        say("bench: the bench database holds another data set: rebuilding it")
        connection.close()
        database.ensure_database(url, drop_first=True)
        migrated = migrate()
    say(f"bench: migrated the fresh database in {migrated:.1f} s")
    return dataset.generate(plan, say)


def admin_token() -> tuple[Any, str]:
    """The bench organization and a fresh token for its admin (old ones revoked)."""
    from kassa.tenancy.models import ApiToken, Membership
    from kassa.tenancy.services import issue_token

    membership = Membership.objects.select_related("organization").get(
        user__username=dataset.ADMIN_EMAIL)
    ApiToken.objects.filter(membership=membership).delete()
    return membership.organization, issue_token(membership=membership).token


def seconds(value: float) -> str:
    return f"{value * 1000:8.1f} ms" if value < 1 else f"{value:8.2f} s "


def table(cases: list[timings.Case], built: dataset.Built, repeats: int) -> str:
    postings = built.counts["ledger_posting"]
    packages = built.counts["packages_package"]
    lines = [
        f"Kassa reports over {postings:,} postings, {packages:,} packages "
        f"({built.plan['centers']} centers, {built.plan['start']} … "
        f"{dataset.last_day(built.plan)}); "
        f"data set generated in {built.seconds['total']:.0f} s"
        + (" (cached)" if built.reused else ""),
        f"each line: {repeats} timed runs after one untimed run; target for a report: "
        f"< {timings.TARGET_SECONDS:.0f} s in its worst run",
        "",
        f"{'':4}{'what':62}{'median':>11}{'max':>11}{'rows':>8}{'queries':>8}",
    ]
    for case in cases:
        lines.append(case.title)
        for m in case.measurements:
            verdict = {True: "  ok", False: "  MISSES TARGET", None: ""}[m.meets_target]
            rows = "" if m.rows is None else str(m.rows)
            queries = "" if m.kind == "sql" else str(m.queries)
            lines.append(f"  {m.kind:7}{m.label[:57]:57}{seconds(m.median):>11}"
                         f"{seconds(m.worst):>11}{rows:>8}{queries:>8}{verdict}")
    return "\n".join(lines)


# The tables too big for a report to read without an index.
BIG_TABLES = ("ledger_posting", "ledger_dailytotal", "ledger_journalentry", "refunds_refund",
              "packages_package", "billing_invoiceline")


def seq_scans(plan: str) -> list[str]:
    """The big tables a plan reads whole."""
    return [t for t in BIG_TABLES if f"Seq Scan on {t} " in plan + " "]


def check_data_set(org: Any, built: dataset.Built) -> tuple[bool, dict[str, Any]]:
    """What the triggers disabled for the load would have refused, and `kassa verify` (timed,
    the way an operator runs it: the CLI's own code, default batch size)."""
    from django.db import connection

    from kassa.ledger.verify import Run, verify

    began = time.perf_counter()
    with connection.cursor() as cursor:
        checked = bulk_load.dangling(cursor, dataset.LOADED_TABLES)
    dangling = {k: n for k, n in checked.items() if n}
    say(f"bench: references that do not resolve, over {len(checked)} foreign keys: "
        f"{sum(dangling.values())} "
        f"({time.perf_counter() - began:.1f} s) {dangling or ''}")
    began = time.perf_counter()
    run = Run()
    problems = verify(org, run)
    took = time.perf_counter() - began
    postings = built.counts["ledger_posting"]
    say(f"bench: kassa verify: {len(problems)} discrepancies over {postings:,} postings "
        f"({took:.1f} s; linear in the history: ~{took * 10_000_000 / postings:.0f} s at 10 M)")
    for line in problems[:20]:
        say(f"  {line}")
    # Each check's own time, the costliest first: where a run's time goes.
    per_check = dict(sorted(((name, round(s, 2)) for name, s in run.seconds.items()),
                            key=lambda item: -item[1]))
    say("bench: kassa verify by check: " + ", ".join(
        f"{name} {s:.1f} s" for name, s in per_check.items() if s >= 0.05))
    measured = {"seconds": round(took, 2), "postings": postings, "batch": run.batch,
                "jobs": run.jobs,
                "discrepancies": len(problems), "checked": run.checked,
                "checks_s": per_check,
                "extrapolated_10m_postings_s": round(took * 10_000_000 / postings, 1),
                "target_10m_postings_s": 60, "load_average": load()}
    return not dangling and not problems, measured


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.refunds:
        given = sys.argv[1:] if argv is None else argv
        return refunds.run(seconds=args.seconds, payments=args.payments, workers=args.workers,
                           threads=args.threads, clients=args.clients, output=args.output,
                           command=f"make bench BENCH_ARGS='{' '.join(given)}'")
    url = database.bench_url()
    database.ensure_server(url)
    plan = dataset.Plan.at(args.scale)
    built = prepare(url, plan, args.rebuild)

    from django.db import connection

    org, token = admin_token()
    verified: dict[str, Any] | None = None
    if not args.no_verify:
        clean, verified = check_data_set(org, built)
        if not clean:
            return 1

    load_before = load()
    say(f"bench: timing the reports (load average {load_before[0]} on {os.cpu_count()} cores)")
    end = dataset.last_day(built.plan)
    cases = timings.run_cases(org=org, plan_end=end, token=token, repeats=args.repeats)
    load_after = load()
    report = table(cases, built, args.repeats)
    print(report, flush=True)

    # Every report query on an index, over this data set's statistics (not a test's ten
    # rows): the plan the server picks must read no big table whole.
    whole: list[str] = []
    for case in cases:
        for m in case.measurements:
            if m.kind == "report":
                for sql, params in m.sql:
                    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                        continue  # the snapshot's SET TRANSACTION
                    chosen = timings.explain(sql, params, analyze=args.explain)
                    whole += [f"{case.title}: {m.label}: {t}" for t in seq_scans(chosen)]
                    if args.explain:
                        print(f"\n--- {case.title}: {m.label}\n{sql}\n{params}\n{chosen}",
                              flush=True)
    say(f"bench: report queries that read a big table whole: {len(whole)}")
    for line in whole:
        say(f"  {line}")
    if verified:
        print(f"\nkassa verify over {verified['postings']:,} postings: "
              f"{verified['seconds']:.1f} s (batch {verified['batch']}; linear, so "
              f"~{verified['extrapolated_10m_postings_s']:.0f} s at 10 M postings, "
              "target < 60 s)", flush=True)

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        server = cursor.fetchone()[0]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'"
                                   if sys.argv[1:] else ""),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "postgresql": server,
                    "load_average_before": load_before, "load_average_after": load_after},
        "database": database.database_name(url),
        "dataset": {"plan": built.plan, "counts": built.counts, "seconds": built.seconds,
                    "built_at": built.built_at, "reused": built.reused},
        "repeats": args.repeats,
        "target_s": timings.TARGET_SECONDS,
        "cases": [case.as_json() for case in cases],
        "verify": verified,
        "report_queries_reading_a_big_table_whole": whole,
    }, indent=2) + "\n")
    say(f"bench: results written to {args.output}")
    missed = [m.label for c in cases for m in c.measurements if m.meets_target is False]
    return 1 if missed or whole else 0


if __name__ == "__main__":
    sys.exit(main())
