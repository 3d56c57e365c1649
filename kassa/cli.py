"""`kassa`: the command line of DESIGN.md's public interface.

Create commands print one JSON object on stdout. `kassa run` is the whole product in one
command: migrate, load the demo on a fresh database, then serve web + API with gunicorn and run
a worker beside it; Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kassa.settings")
    import django

    django.setup()


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"kassa: {message}\n")
    return code


def _organizations(args: argparse.Namespace) -> list[Any] | None:
    """The organization `--org` names, or every one without it; None when it names none."""
    from kassa.tenancy.models import Organization

    if args.org is None:
        return list(Organization.objects.order_by("id"))
    one = _organization(args.org)
    return [one] if one is not None else None


def _organization(org_id: str) -> Any:
    """The organization an --org names, or None ("abc", "²" or a 30-digit id name none)."""
    from kassa.core.lookup import parse_id
    from kassa.tenancy.models import Organization

    pk = parse_id(org_id)
    return Organization.objects.filter(pk=pk).first() if pk is not None else None


def cmd_migrate(args: argparse.Namespace) -> int:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=1 if args.verbose else 0)
    return 0


def cmd_org_create(args: argparse.Namespace) -> int:
    from kassa.core.errors import DomainError
    from kassa.tenancy.services import create_organization

    try:
        org, membership, token = create_organization(
            name=args.name, currency=args.currency, timezone=args.timezone,
            admin_email=args.admin_email, admin_password=args.admin_password,
        )
    except DomainError as exc:
        return _fail(exc.detail)
    _print({"organization": str(org.pk), "admin": {
        "id": str(membership.user_id), "email": membership.user.email, "token": token.token}})
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    from kassa.core.errors import DomainError
    from kassa.tenancy.services import create_user

    org = _organization(args.org)
    if org is None:
        return _fail(f"no organization {args.org}")
    try:
        membership, token = create_user(organization=org, email=args.email, role=args.role,
                                        password=args.password)
    except DomainError as exc:
        return _fail(exc.detail)
    _print({"id": str(membership.user_id), "email": membership.user.email,
            "role": membership.role, "token": token.token})
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from kassa.ledger.verify import Run, lines

    if args.gateway:
        return _verify_gateway(args)
    if args.date is not None:
        return _fail("--date is for --gateway (the books are checked as they stand)")
    org = None
    if args.org is not None:
        org = _organization(args.org)
        if org is None:
            return _fail(f"no organization {args.org}")
    run = Run(since=args.since, **({"batch": args.batch_size} if args.batch_size else {}))
    if sys.stderr.isatty():
        run.progress = _progress
    found = 0
    for line in lines(org, run):
        if run.progress:
            sys.stderr.write("\r\033[K")
        sys.stdout.write(line + "\n")
        found += 1
    if run.progress:
        sys.stderr.write("\r\033[K")
    if args.since is not None:
        # Only what moved was checked: say how much, and what a clean answer does not prove.
        what = ", ".join(f"{n:,} {noun}" for noun, n in run.checked.items() if n)
        sys.stdout.write(f"checked what moved since {args.since.isoformat()}: {what or 'nothing'}"
                         " (objects with a journal entry on or after that business day, or "
                         "created since; only a run without --since checks everything)\n")
    if found:
        sys.stdout.write(f"{found} discrepancies\n")
        return 1
    sys.stdout.write("the books balance and every figure agrees with the ledger\n")
    return 0


def _verify_gateway(args: argparse.Namespace) -> int:
    """`kassa verify --gateway`: each organization's business day (default today) reconciled
    with the gateway; exit 1 naming every line that is not matched."""
    import datetime as dt

    from kassa.core.errors import DomainError
    from kassa.gateways.base import GatewayError
    from kassa.gateways.registry import current_gateway
    from kassa.reports import reconciliation

    if args.since is not None:
        return _fail("--since is for the books; the gateway is checked by --date")
    organizations = _organizations(args)
    if organizations is None:
        return _fail(f"no organization {args.org}")
    if args.date is not None:
        try:
            reconciliation.check_day(args.date)
        except DomainError as exc:
            return _fail(exc.detail)
    found = checked = 0
    gateway = current_gateway()
    utc_day = args.date or dt.datetime.now(dt.UTC).date()
    days = {org.pk: args.date or reconciliation.today_of(org) for org in organizations}
    try:
        listed = None
        if gateway.account_wide and organizations:  # one listing of the account for the run
            spans = [reconciliation.day_bounds(org, days[org.pk]) for org in organizations]
            start = min([s for s, _ in spans] + [dt.datetime.combine(utc_day, dt.time(),
                                                                     tzinfo=dt.UTC)])
            end = max([e for _, e in spans] + [dt.datetime.combine(
                utc_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)])
            listed = reconciliation.listing(gateway, None, start - reconciliation.EDGE,
                                            end + reconciliation.EDGE)
        for org in organizations:
            day = days[org.pk]
            lines = reconciliation.reconcile(org, day, gateway, listed)
            checked += len(lines)
            for line in reconciliation.exceptions(lines):
                sys.stdout.write(f"organization {org.pk} ({org.name}), {day.isoformat()}: "
                                 f"{reconciliation.describe(line, org.currency)}\n")
                found += 1
        if args.org is None:  # the account's own lines, when it serves every organization
            for line in reconciliation.exceptions(
                    reconciliation.reconcile_account(utc_day, gateway, listed)):
                sys.stdout.write(f"the gateway account, {utc_day.isoformat()} (UTC): "
                                 f"{reconciliation.describe(line, line.currency)}\n")
                found += 1
    except GatewayError as exc:
        return _fail(f"the gateway did not list its balance: {exc}")
    except DomainError as exc:
        return _fail(exc.detail)
    if found:
        sys.stdout.write(f"{found} gateway lines not matched\n")
        return 1
    sys.stdout.write(f"every gateway line matched ({checked} lines)\n")
    return 0


def _progress(check: str, done: int, of: int) -> None:
    share = f" {100 * done // of:3d} %" if of else ""
    sys.stderr.write(f"\r\033[Kverify: {check} {done:,}{share}")
    sys.stderr.flush()


def _date(value: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _batch_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise argparse.ArgumentTypeError("a batch size is 1 to 1000000")
    return int(value)


def cmd_demo(args: argparse.Namespace) -> int:
    from kassa.core.errors import DomainError
    from kassa.demo import load_demo

    try:
        demo = load_demo()
    except DomainError as exc:  # its e-mail addresses are taken: it is loaded already
        return _fail(f"the demo cannot load here: {exc.detail}")
    _print(demo)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from kassa.worker import run_worker

    run_worker(once=args.once)
    return 0


def cmd_sandbox_settle(args: argparse.Namespace) -> int:
    from kassa.refunds.sandbox import settle

    _print(settle(refund_ids=args.refund_ids, everything=args.all))
    return 0


def cmd_sandbox_heal(args: argparse.Namespace) -> int:
    from kassa.refunds.sandbox import heal

    found = heal(payment_id=args.payment_id)
    if found is None:
        return _fail(f"no sandbox payment {args.payment_id}")
    _print(found)
    return 0


def cmd_sandbox_decide(args: argparse.Namespace) -> int:
    from kassa.billing.sandbox import NotDeciding, decide

    try:
        found = decide(payment_id=args.payment_id, outcome=args.outcome)
    except NotDeciding as exc:
        return _fail(str(exc))
    if found is None:
        return _fail(f"no sandbox payment {args.payment_id}")
    _print(found)
    return 0


def _on_a_sandbox_payment(args: argparse.Namespace, act: Any) -> tuple[int, Any]:
    """Run a sandbox action on PAYMENT_ID: (exit code, what it returned); a broken rule or an
    unknown payment is said on stderr with exit 2."""
    from kassa.core.errors import DomainError

    try:
        found = act()
    except DomainError as exc:
        return _fail(exc.detail), None
    if found is None:
        return _fail(f"no sandbox payment {args.payment_id}"), None
    _print(found)
    return 0, found


def cmd_sandbox_dispute(args: argparse.Namespace) -> int:
    from kassa.refunds.sandbox import dispute

    code, _ = _on_a_sandbox_payment(args, lambda: dispute(
        payment_id=args.payment_id, amount=args.amount, outcome=args.outcome))
    return code


def cmd_sandbox_refund(args: argparse.Namespace) -> int:
    from kassa.refunds.sandbox import gateway_refund

    code, found = _on_a_sandbox_payment(args, lambda: gateway_refund(
        payment_id=args.payment_id, amount=args.amount))
    return code if found is None else (0 if found["booked"] else 1)


def cmd_sandbox_payout(args: argparse.Namespace) -> int:
    from kassa.core.money import format_decimal_string
    from kassa.gateways.sandbox_balance import payout

    organizations = _organizations(args)
    if organizations is None:
        return _fail(f"no organization {args.org}")
    paid = []
    for org in organizations:
        line = payout(org.pk)
        if line is not None:
            paid.append({"organization": str(org.pk), "gateway_id": line.source,
                         "amount": format_decimal_string(-line.amount_minor, line.currency)})
    _print({"payouts": paid})
    return 0


def cmd_refunds_stuck(args: argparse.Namespace) -> int:
    from kassa.core.money import format_decimal_string
    from kassa.refunds.attention import stuck_refunds

    organizations = _organizations(args)
    if organizations is None:
        return _fail(f"no organization {args.org}")
    _print({"refunds": [
        {"id": str(r.pk), "organization": str(r.organization_id), "payment": str(r.payment_id),
         "status": r.status, "total": format_decimal_string(r.total_minor, org.currency),
         "attempts": r.attempts,
         "last_error": r.last_error, "created_at": r.created_at.isoformat()}
        for org in organizations for r in stuck_refunds(org)]})
    return 0


# The web server's own limits (gunicorn's defaults, made explicit): a longer request line is
# answered 414, a longer header field or more of them 431, by gunicorn itself.
REQUEST_LINE_LIMIT = 4094
HEADER_FIELD_LIMIT = 8190
HEADER_FIELDS_LIMIT = 100


def cmd_run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.core.management import call_command

    from kassa.tenancy.models import Organization

    if settings.KASSA_SECURE and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        return _fail("KASSA_SECURE=1 needs a secret key of its own: set KASSA_SECRET_KEY (50 "
                     "or more random characters)")
    call_command("migrate", interactive=False, verbosity=0)
    if settings.STATIC_MANIFEST:  # the hashed, compressed static files the pages will name
        call_command("collectstatic", interactive=False, verbosity=0)
    # The demo's logins are published in the README: never on a deployment that is secure.
    if not args.no_demo and not settings.KASSA_SECURE and not Organization.objects.exists():
        from kassa.demo import load_demo

        demo = load_demo()
        sys.stderr.write(f"kassa: demo loaded; sign in as {demo['sign_in']['email']} / "
                         f"{demo['sign_in']['password']}\n")
    bind = f"{args.host}:{args.port}"
    names = ["web server", "worker"]
    # Threads keep connections alive between requests (gthread); a request may wait up to the
    # gateway's 30 s and a lock's 20 s, so gunicorn must not kill it before (its default is
    # 30 s): a killed request is recovered, but it is not what an operator wants.
    server = [sys.executable, "-m", "gunicorn", "kassa.wsgi:application", "--bind", bind,
              "--workers", str(args.workers), "--worker-class", "gthread",
              "--threads", str(args.threads), "--keep-alive", "5", "--timeout", "75",
              "--graceful-timeout", "5",
              # gunicorn refuses these before Kassa sees the request, with its own HTML (not a
              # problem document): the limits are stated here, in the README and in the
              # OpenAPI document's description (kassa.api.SERVER_LIMITS), and tested.
              "--limit-request-line", str(REQUEST_LINE_LIMIT),
              "--limit-request-field_size", str(HEADER_FIELD_LIMIT),
              "--limit-request-fields", str(HEADER_FIELDS_LIMIT)]
    if not args.no_access_log:
        server += ["--access-logfile", "-"]
    children = [subprocess.Popen(server)]
    if not args.no_worker:
        children.append(subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker"]))
    sys.stderr.write(f"kassa: serving http://{bind}/ (Ctrl-C stops)\n")

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                name = names[children.index(child)]
                sys.stderr.write(f"kassa: the {name} exited with {child.returncode}\n")
                stopping, code = True, child.returncode or 1
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kassa", description="Kassa: payments, packages, refunds.")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    run = sub.add_parser("run", help="migrate, load the demo, serve web + API and a worker")
    run.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    run.add_argument("--workers", type=int, default=2,
                     help="web server processes (default 2: one per core is a good start)")
    run.add_argument("--threads", type=int, default=4,
                     help="threads per web server process (default 4)")
    run.add_argument("--no-access-log", action="store_true",
                     help="no access log line per request (the app's own JSON log remains)")
    run.add_argument("--no-demo", action="store_true",
                     help="do not load the demo organizations (they load only into an empty "
                     "database anyway)")
    run.add_argument("--no-worker", action="store_true",
                     help="serve only; run `kassa worker` elsewhere for receipts and refunds")
    run.set_defaults(fn=cmd_run)

    migrate = sub.add_parser("migrate", help="apply migrations")
    migrate.add_argument("-v", "--verbose", action="store_true",
                         help="name each migration as it is applied")
    migrate.set_defaults(fn=cmd_migrate)

    worker = sub.add_parser("worker", help="run tasks")
    worker.add_argument("--once", action="store_true", help="until the queue is empty, then exit")
    worker.set_defaults(fn=cmd_worker)

    org = sub.add_parser("org", help="organizations").add_subparsers(dest="sub", required=True)
    create = org.add_parser("create", help="create an organization and its admin")
    create.add_argument("--name", required=True, help="the organization's name")
    create.add_argument("--currency", default="USD",
                        help="ISO 4217 code; it cannot change once invoices exist "
                        "(default USD)")
    create.add_argument("--timezone", default="UTC",
                        help="IANA zone of its business days, such as America/Chicago "
                        "(default UTC)")
    create.add_argument("--admin-email", required=True,
                        help="e-mail of its first admin (the sign-in name)")
    create.add_argument("--admin-password",
                        help="the admin's password for the pages (default: none; API "
                        "token only)")
    create.set_defaults(fn=cmd_org_create)

    user = sub.add_parser("user", help="users").add_subparsers(dest="sub", required=True)
    ucreate = user.add_parser("create", help="add a user to an organization")
    ucreate.add_argument("--org", required=True, help="the organization's id")
    ucreate.add_argument("--email", required=True, help="the sign-in e-mail")
    ucreate.add_argument("--role", required=True, choices=["admin", "front_desk", "accountant"],
                         help="what they may do: accountants only read")
    ucreate.add_argument("--password",
                         help="password for the pages (default: none; API token only)")
    ucreate.set_defaults(fn=cmd_user_create)

    sandbox = sub.add_parser("sandbox", help="the sandbox gateway").add_subparsers(
        dest="sub", required=True)
    settle = sandbox.add_parser("settle", help="settle pending sandbox refunds now")
    settle.add_argument("refund_ids", nargs="*", metavar="REFUND_ID",
                        help="the pending refunds to settle")
    settle.add_argument("--all", action="store_true", help="settle every pending refund")
    settle.set_defaults(fn=cmd_sandbox_settle)
    heal = sandbox.add_parser("heal", help="make a payment's refunds reachable at the sandbox "
                              "again (source sandbox_refund_unreachable)")
    heal.add_argument("payment_id", metavar="PAYMENT_ID")
    heal.set_defaults(fn=cmd_sandbox_heal)
    decide = sandbox.add_parser("decide", help="decide a processing sandbox charge (source "
                                "sandbox_processing) and book the outcome")
    decide.add_argument("payment_id", metavar="PAYMENT_ID")
    decide.add_argument("--outcome", required=True, choices=["succeeded", "failed"])
    decide.set_defaults(fn=cmd_sandbox_decide)
    dispute = sandbox.add_parser(
        "dispute", help="the cardholder's bank disputes a sandbox card payment (funds "
        "withdrawn); with --outcome, decide its open dispute (or open and decide one)")
    dispute.add_argument("payment_id", metavar="PAYMENT_ID")
    dispute.add_argument("--amount", metavar="A",
                         help="the disputed amount (default: what the charge has not refunded)")
    dispute.add_argument("--outcome", choices=["won", "lost"],
                         help="decide the dispute (default: open it, needs a response)")
    dispute.set_defaults(fn=cmd_sandbox_dispute)
    grefund = sandbox.add_parser(
        "refund", help="refund a sandbox payment at the processor's dashboard, not in Kassa; "
        "Kassa books it (origin gateway) if it fits the payment's refundable, exit 1 if not")
    grefund.add_argument("payment_id", metavar="PAYMENT_ID")
    grefund.add_argument("amount", metavar="AMOUNT", help="e.g. 25.00")
    grefund.set_defaults(fn=cmd_sandbox_refund)
    payout = sandbox.add_parser(
        "payout", help="pay out what the sandbox balance holds to the bank (a payout line)")
    payout.add_argument("--org", help="one organization's id (default: every one)")
    payout.set_defaults(fn=cmd_sandbox_payout)

    refunds = sub.add_parser("refunds", help="refunds").add_subparsers(dest="sub", required=True)
    stuck = refunds.add_parser("stuck", help="list the refunds that need a person (retry or "
                               "resolve them in the API or on /attention/)")
    stuck.add_argument("--org", help="one organization's id (default: every one)")
    stuck.set_defaults(fn=cmd_refunds_stuck)

    verify = sub.add_parser("verify", help="check the books; exit 1 naming each discrepancy")
    verify.add_argument("--org", help="one organization's id (default: every one)")
    verify.add_argument("--since", type=_date, metavar="DATE",
                        help="check only what moved on or after this business day "
                             "(a journal entry on it or later, or created since); a run "
                             "without --since is the guarantee")
    verify.add_argument("--batch-size", type=_batch_size, metavar="N",
                        help="objects checked per query (default: the setting "
                             "KASSA_VERIFY_BATCH, 10000)")
    verify.add_argument("--gateway", action="store_true",
                        help="reconcile the gateway's balance lines of a business day with "
                             "Kassa's payments, refunds and disputes instead")
    verify.add_argument("--date", type=_date, metavar="DATE",
                        help="with --gateway: the business day (default: each organization's "
                             "today)")
    verify.set_defaults(fn=cmd_verify)

    demo = sub.add_parser("demo", help="load the demo organization")
    demo.set_defaults(fn=cmd_demo)
    return p


COMMANDS = ("run", "migrate", "worker", "org", "user", "sandbox", "refunds", "verify", "demo")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        return _django_command(argv)
    args = parser().parse_args(argv)
    _setup()
    from django.db import OperationalError, ProgrammingError

    try:
        return int(args.fn(args) or 0)
    except (OperationalError, ProgrammingError) as exc:
        # No server, no such database, no tables yet: the operator's to fix, not a traceback.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"the database is not ready: {first_line} "
                     "(is DATABASE_URL right, and has `kassa migrate` run?)")


def _django_command(argv: list[str]) -> int:
    """Anything else is one of Django's management commands (`kassa createsuperuser`,
    `kassa clearsessions`), or a mistake that lists what there is."""
    _setup()
    from django.core.management import execute_from_command_line, get_commands

    if argv[0] in get_commands():
        execute_from_command_line(["kassa", *argv])
        return 0
    parser().print_usage(sys.stderr)
    return _fail(f"unknown command {argv[0]!r}: kassa's commands are {', '.join(COMMANDS)}, "
                 "and Django's management commands (`kassa help` lists them)")


if __name__ == "__main__":
    sys.exit(main())
