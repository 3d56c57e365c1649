"""Fixtures shared by every test: organizations, people with tokens, an API client, and the
small builders (customer, invoice, payment) that most tests start from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from kassa.tenancy.models import Membership, Organization

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@dataclass
class Api:
    """The v1 API as a client program sees it: JSON in, status and JSON out."""

    token: str | None
    client: Client

    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params, headers=self._headers())

    def post(self, path: str, body: Any = None, *, key: str | None = None) -> Any:
        return self.client.post(f"/api/v1{path}", json.dumps(body if body is not None else {}),
                                content_type="application/json", headers=self._headers(key))

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(f"/api/v1{path}", json.dumps(body),
                                 content_type="application/json", headers=self._headers())


@dataclass
class Tenant:
    organization: Organization
    admin: Membership
    token: str
    api: Api
    center_id: str

    def user(self, role: str) -> tuple[Membership, Api]:
        from kassa.tenancy.services import create_user

        n = Membership.objects.count()
        membership, token = create_user(organization=self.organization,
                                        email=f"{role}{n}@{self.organization.pk}.example",
                                        role=role, password="pw-123456")
        return membership, Api(token.token, Client())

    def customer(self, name: str = "Ann Guest", email: str = "ann@example.com") -> str:
        r = self.api.post("/customers", {"name": name, "email": email})
        assert r.status_code == 201, r.content
        return r.json()["id"]

    def invoice(self, *lines: dict[str, Any], customer: str | None = None,
                case: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer": customer or self.customer(), "center": self.center_id,
            "lines": list(lines) or [{"kind": "service", "description": "Facial",
                                      "unit_price": "100.00"}],
        }
        if case:
            body["case"] = case
        r = self.api.post("/invoices", body)
        assert r.status_code == 201, r.content
        return r.json()

    def pay(self, invoice_id: str, amount: str, method: str = "cash", online: bool = False,
            source: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"amount": amount, "method": method, "online": online}
        if source:
            body["source"] = source
        r = self.api.post(f"/invoices/{invoice_id}/payments", body)
        assert r.status_code == 201, r.content
        return r.json()


def make_tenant(name: str = "Acme Spa", currency: str = "USD", timezone: str = "UTC") -> Tenant:
    from kassa.tenancy.services import create_organization

    n = Organization.objects.count()
    org, admin, token = create_organization(
        name=name, currency=currency, timezone=timezone,
        admin_email=f"admin{n}-{name.split()[0].lower()}@example.com", admin_password="pw-123456")
    return Tenant(org, admin, token.token, Api(token.token, Client()),
                  str(org.centers.get().pk))


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> None:
    """Sign-ins and new users in tests need no costly hash: PBKDF2 is for real passwords."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def forgotten_caches() -> Iterator[None]:
    """Each test starts with nothing kept by the process (charts of accounts, tokens, webhook
    endpoints): a test's rolled-back rows may come back under the same ids in the next one
    (SQLite reuses them)."""
    from kassa.ledger.services import forget_chart
    from kassa.tenancy.selectors import clear_kept_tokens
    from kassa.webhooks.events import forget_endpoints

    forget_chart()
    clear_kept_tokens()
    forget_endpoints()
    yield


def plain_static_files() -> Any:
    """Settings under which pages name the apps' own static files, not collected ones (for
    the suite, and for the scenario processes that render pages without `collectstatic`)."""
    from django.test import override_settings

    return override_settings(
        STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                  "staticfiles": {
                      "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}},
        WHITENOISE_USE_FINDERS=True)


@pytest.fixture(autouse=True, scope="session")
def static_files_from_the_apps() -> Iterator[None]:
    """Outside DEBUG (as tests run) the pages name hashed static files from a manifest that
    `collectstatic` writes; the suite renders pages without collecting, so it names the apps'
    own files. The manifest storage itself runs in the tests that start the product as a
    process (test_wheel.py, test_cli_run.py), as a deployment does."""
    plain = plain_static_files()
    plain.enable()
    yield
    plain.disable()


@pytest.fixture
def tenant(db: None) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return make_tenant("Other Home")


@pytest.fixture
def anonymous() -> Api:
    return Api(None, Client())


@contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint that a test rolls back at the end (one per Hypothesis example). Marked as
    the test's own, as Django marks a test case's, so that code which asserts it runs outside
    any transaction (an outbound call) does not count it."""
    with transaction.atomic():
        transaction.get_connection().atomic_blocks[-1]._from_testcase = True
        yield
        transaction.set_rollback(True)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_configure(config: Any) -> None:
    """The suite reads the reports from its own test database; a replica it needs it starts
    itself (kassa/reports/tests/test_reports_replica.py). A reports alias from the shell would
    be a second connection that no test may use."""
    if os.environ.get("KASSA_REPORTS_DATABASE_URL"):
        raise pytest.UsageError("unset KASSA_REPORTS_DATABASE_URL to run the tests: the "
                                "replica test starts a replica of its own")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """`postgres` tests need real row locks: they run in the PostgreSQL pass of `make test`."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: runs in the PostgreSQL pass of make test")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def run_tasks(max_rounds: int = 50) -> int:
    """Run every task that is ready now, in this process, as `kassa worker --once` would, until
    none is left (tasks may enqueue more). Works inside a test's transaction, where the real
    worker's connection handling would not. Returns how many ran."""
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    worker = Worker(queue_names=["*"], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test-worker",
                    excluded_queue_names=[])
    ran = 0
    for _ in range(max_rounds):
        ready = list(DBTaskResult.objects.ready().order_by("enqueued_at"))
        if not ready:
            break
        for result in ready:
            result.claim(worker.worker_id)
            worker.run_task(result)
            ran += 1
    return ran


def make_all_tasks_due() -> None:
    """Time passes: the sweeps see a day gone by (expired claims, overdue rows), then every
    outbox row and every delayed task is due now."""
    import datetime as dt

    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from kassa.billing.models import Payment
    from kassa.core.outbox import SWEEPS
    from kassa.refunds.models import GatewayState, Receipt, Refund

    later = timezone.now() + dt.timedelta(days=1)
    for sweep in SWEEPS:
        sweep(later)  # type: ignore[call-arg]
    now = timezone.now()
    # A task acts only on a row that is due, so the rows' own due times pass too.
    Refund.objects.filter(gateway_state__in=[GatewayState.TO_CALL, GatewayState.CALLED],
                          next_attempt_at__gt=now).update(next_attempt_at=now)
    Receipt.objects.filter(status="pending", next_attempt_at__gt=now).update(next_attempt_at=now)
    Payment.objects.filter(charge_state__in=["charging", "awaiting", "give_back"],
                           next_attempt_at__gt=now).update(next_attempt_at=now)
    DBTaskResult.objects.filter(status="READY").update(run_after=now)


# --- "a refused request changes nothing": the database's state, to compare before and after ---

def database_state() -> dict[str, Any]:
    """Row counts of every table Kassa and its task queue own, and the full rows of those whose
    figures a refused request could wrongly change in place (settings, invoice numbers,
    balances, allocations). Equal before and after means nothing was written."""
    from django.apps import apps

    in_place = {"tenancy.Organization", "billing.Invoice", "billing.InvoiceLine",
                "billing.Payment", "billing.Customer", "packages.Package"}
    state: dict[str, Any] = {}
    for model in apps.get_models():
        if not model.__module__.startswith(("kassa.", "django_tasks_db.")) and \
                model._meta.label != "auth.User":
            continue
        label = model._meta.label
        if label in in_place:
            state[label] = list(model.objects.order_by("pk").values())
        else:
            state[label] = model.objects.count()
    return state


# The audit log's tables: a refusal that still records a row (a declined card's payment) has
# that row's entry in the log, so such a test names these beside the row.
AUDIT = ("audit.AuditEntry", "audit.AuditChain")


@pytest.fixture
def unchanged(db: None) -> Any:
    """`with unchanged(): <a refused request>` asserts that nothing was written."""
    from contextlib import contextmanager

    @contextmanager
    def check(but: tuple[str, ...] = ()) -> Any:
        """`but`: the tables it may write (a declined card's payment row and its history:
        recorded, nothing booked)."""
        before = database_state()
        yield
        after = database_state()
        # The installation's key is made the first time a gateway key is (not business data).
        ignored = {*but, "core.Installation"}
        changed = sorted(k for k in before.keys() | after.keys()
                         if before.get(k) != after.get(k) and k not in ignored)
        assert not changed, f"a refused request wrote to {changed}"

    return check


def race(n: int, work: Any) -> list[Any]:
    """Run `work(i)` in n real threads released together (concurrency tests on PostgreSQL);
    return each one's result or exception. Each thread closes its own connection."""
    import threading

    from django.db import connection as thread_connection

    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # reported by the test, not lost
            results[i] = exc
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def outcome(result: Any) -> str:
    """A raced call's result as a word: ok, a DomainError's code, or what went wrong."""
    from kassa.core.errors import DomainError

    if isinstance(result, DomainError):
        return result.code
    if isinstance(result, BaseException):
        return f"unexpected {type(result).__name__}: {result}"
    return "ok"
