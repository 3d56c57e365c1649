"""Every row lock Kassa takes, taken here and only here, always in one order:

    refund request → organization → customer → invoice → payment → refund → package → benefit
    → audit chain

A money transaction locks what it changes before it reads the figures it checks, walking down
this list and never back up, so two transactions never wait on each other in a circle (no
deadlock) and every rule is checked against rows no one else can change until commit. Several
rows of one kind (the packages of an invoice) are taken in id order. The audit chain (the head
of an organization's audit log, kassa.audit) comes last: it is locked by the transaction's
last statements, just before the commit, so every write of an organization queues on it only
for the moment it takes to append its rows. The day totals (kassa.ledger: rows every
transaction of a center upserts) are written after it, by the same last statement: taken only
under the chain's lock, they are never waited for in a circle either.

On PostgreSQL a lock is `SELECT … FOR UPDATE`. On SQLite the transaction holds the database's
write lock from `BEGIN IMMEDIATE`, so these are plain reads there, and the order still holds.

The order is also asserted: inside a `money_transaction`, a helper that would lock a kind
above one already locked fails loudly, so a new use case that breaks the order cannot ship.
The models are named by their labels because this module sits below the apps that define them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.db import transaction

from kassa.core import batch, rows
from kassa.core.lookup import get_scoped

ORDER = ("refund_request", "organization", "customer", "invoice", "payment", "refund",
         "package", "benefit", "audit_chain")
_MODELS = {"refund_request": "refunds.RefundRequest", "organization": "tenancy.Organization",
           "customer": "billing.Customer",
           "invoice": "billing.Invoice", "payment": "billing.Payment",
           "refund": "refunds.Refund", "package": "packages.Package",
           "benefit": "packages.Benefit", "audit_chain": "audit.AuditChain"}


def key_claimed_here() -> bool:
    """Whether this transaction is the one that claimed the request's Idempotency-Key
    (kassa.idempotency sets the flag around the request it runs in that transaction)."""
    return bool(getattr(transaction.get_connection(), "kassa_claim_transaction", False))


@contextmanager
def money_transaction() -> Iterator[None]:
    """`transaction.atomic()` for a money use case, keeping count of the locks it takes (the
    count lives on the connection, so one per thread, and only as long as the outermost money
    transaction). Usable as a decorator, like `atomic`."""
    connection = transaction.get_connection()
    outermost = getattr(connection, "kassa_lock_rank", None) is None
    if outermost:
        connection.kassa_lock_rank = -1
        connection.kassa_at_end = {}
        if not getattr(connection, "kassa_at_end_later", None):  # not a claim's second use case
            connection.kassa_organizations = {}
    # Inside a request whose Idempotency-Key claim shares its transaction (kassa.idempotency),
    # the use case is that transaction, without a savepoint of its own; and its last work is
    # done after the answer is stored, just before that transaction commits (`flush_later`):
    # the rows every write of an organization waits on (its audit chain) are then locked
    # after the answer is rendered, not while it is.
    # Only directly in the claim's block: a use case inside a savepoint of its own keeps its
    # last work inside that savepoint, so that a rollback of it takes that work along.
    claimed = (outermost and key_claimed_here() and len(connection.atomic_blocks)
               == getattr(connection, "kassa_claim_depth", -1))
    kept = False
    try:
        with transaction.atomic(savepoint=not claimed):
            if outermost:
                connection.kassa_at_end_depth = len(connection.atomic_blocks)
                batch.open_holding()
            try:
                yield
            except BaseException:
                if outermost:
                    batch.close_holding(send=False)  # rolled back: nothing held is sent
                raise
            if claimed:
                # Gathered by name: two use cases of one request then still lock the audit
                # chain before any day total is written (`_LAST`), as one would.
                later = getattr(connection, "kassa_at_end_later", None) or {}
                for name, pending in connection.kassa_at_end.items():
                    later.setdefault(name, []).append(pending)
                connection.kassa_at_end_later = later
                kept = True  # held writes too, until the claim's last work (`flush_later`)
            elif outermost:
                _flush(connection.kassa_at_end)
                batch.close_holding(send=True)
    finally:
        if outermost and not kept:
            batch.close_holding(send=False)
            connection.kassa_organizations = {}
        if outermost:
            connection.kassa_lock_rank = None
            connection.kassa_at_end = {}


# The last work, in this order whatever order it was gathered in: the events (whose rows and
# tasks are the ORM's), then the audit chain — locked here, the last lock — and then the day
# totals. So every transaction of an organization upserts its day totals only while it holds
# the organization's chain: none waits on another for them in the middle of its work, and on
# PostgreSQL they go in one statement with the audit entries and the chain's move
# (kassa.core.batch), the chain held for that statement and the commit.
_LAST = ("webhooks.emit", "audit.record", "ledger.daily_totals")


def _in_order(names: Any) -> list[str]:
    return sorted(names, key=lambda name: _LAST.index(name) if name in _LAST else -1)


def _flush(pending: dict[str, tuple[Any, Callable[[Any], None]]]) -> None:
    for name in _in_order(pending):
        state, flush = pending[name]
        flush(state)


def flush_later() -> None:
    """The last work of the money transactions that ran in the request's claim transaction,
    done now (kassa.idempotency calls it after storing the answer, before the commit)."""
    connection = transaction.get_connection()
    later, connection.kassa_at_end_later = getattr(connection, "kassa_at_end_later", None), None
    assert connection.in_atomic_block, "the last work of a money transaction, inside it"
    later = later or {}
    for name in _in_order(later):
        for state, flush in later[name]:
            flush(state)
    batch.close_holding(send=True)
    connection.kassa_organizations = {}


def claim_begins() -> None:
    """The request's key was claimed in the transaction just opened (kassa.idempotency): a
    money transaction directly in it leaves its last work for `flush_later`."""
    connection = transaction.get_connection()
    connection.kassa_claim_depth = len(connection.atomic_blocks)
    connection.kassa_at_end_later = None


def forget_later() -> None:
    """A claim transaction that rolls back drops the last work its use cases left."""
    connection = transaction.get_connection()
    connection.kassa_at_end_later = None
    connection.kassa_claim_depth = -1
    batch.close_holding(send=False)
    connection.kassa_organizations = {}


def at_end(name: str, state: Callable[[], Any], flush: Callable[[Any], None]) -> Any | None:
    """Work a money transaction does last, just before it commits: the state registered under
    `name` (made by `state()` the first time) is handed to `flush` once, after the use case's
    own writes. For rows every transaction of a center touches (the day totals): their row
    locks are then taken by the last statement and held only until the commit, instead of
    from the middle of the use case. None outside a money transaction, and inside a block nested
    in it (a savepoint whose rollback would not take gathered state with it): the caller
    writes now, within that block."""
    connection = transaction.get_connection()
    pending = getattr(connection, "kassa_at_end", None)
    if getattr(connection, "kassa_lock_rank", None) is None or pending is None:
        return None
    if len(connection.atomic_blocks) != getattr(connection, "kassa_at_end_depth", -1):
        return None
    if name not in pending:
        pending[name] = (state(), flush)
    return pending[name][0]


def organizations_read() -> dict[int, int]:
    """The organizations this money transaction read along with the invoice it locked (or
    locked themselves): {id: webhooks_version} (kassa.webhooks.events keeps endpoints by it).
    Empty outside a money transaction and its last work."""
    return getattr(transaction.get_connection(), "kassa_organizations", None) or {}


def _read(organization: Any) -> Any:
    connection = transaction.get_connection()
    if getattr(connection, "kassa_lock_rank", None) is not None or getattr(
            connection, "kassa_at_end_later", None) is not None:
        seen = getattr(connection, "kassa_organizations", None)
        if seen is None:
            seen = connection.kassa_organizations = {}
        seen[organization.pk] = organization.webhooks_version
    return organization


def _taken(kind: str) -> None:
    """Remember the deepest kind locked in this money transaction; refuse to climb back up."""
    connection = transaction.get_connection()
    assert connection.in_atomic_block, f"a {kind} lock belongs inside a money transaction"
    deepest = getattr(connection, "kassa_lock_rank", None)
    if deepest is None:
        return  # a plain atomic block (a test's, say): locks, but keeps no count
    rank = ORDER.index(kind)
    assert rank >= deepest, (f"lock order broken: a {kind} after a {ORDER[deepest]} "
                             f"(the order is {' → '.join(ORDER)})")
    connection.kassa_lock_rank = rank


def _lock(kind: str, pk: int) -> Any:
    """The row of `kind` by its id, locked (its model's DoesNotExist when there is none); read
    by a statement text built once (kassa.core.rows: the lock is on every money path)."""
    _taken(kind)
    return rows.get(apps.get_model(_MODELS[kind]), pk, lock=True)


def lock_organization(organization_id: int) -> Any:
    return _read(_lock("organization", organization_id))


def lock_customer(customer_id: int) -> Any:
    """The customer, whose credit a money transaction is about to move or read."""
    return _lock("customer", customer_id)


_INVOICE_ALONG = ("center", "organization", "customer")


def lock_invoice(invoice_id: int) -> Any:
    """The invoice, with its center and organization read along (every money entry is posted
    to them) and its customer (receipts go to them); only the invoice row is locked."""
    _taken("invoice")
    invoice = rows.get(apps.get_model(_MODELS["invoice"]), invoice_id, lock=True,
                       related=_INVOICE_ALONG)
    _read(invoice.organization)
    return invoice


def _of_payment() -> str:
    payments = apps.get_model(_MODELS["payment"])._meta.db_table
    return f"(SELECT p.{{}} FROM {payments} p WHERE p.id = %s AND p.organization_id = %s)"  # noqa: S608


def lock_customer_of_payment(payment_id: int, *, organization_id: int) -> Any | None:
    """The customer of the organization's payment, locked (None when it has no such payment):
    the payment's customer never changes, so it is found and locked in one statement."""
    _taken("customer")
    found = rows.select(apps.get_model(_MODELS["customer"]),
                        "t.id = " + _of_payment().format("customer_id"),
                        [payment_id, organization_id], lock=True)
    return found[0] if found else None


def lock_invoice_and_payment(payment_id: int, *, organization_id: int
                             ) -> tuple[Any, Any] | None:
    """The invoice of the organization's payment and the payment, both locked, in this order,
    by one statement (PostgreSQL takes the rows of `FOR UPDATE OF t, o` in the order named;
    a test holds it to that), the invoice read along as `lock_invoice` does. None when there
    is no such payment or it is on no invoice (a deposit)."""
    _taken("invoice")
    _taken("payment")
    found = rows.select_with(apps.get_model(_MODELS["invoice"]), _INVOICE_ALONG,
                             apps.get_model(_MODELS["payment"]), "o.invoice_id = t.id",
                             "o.id = %s AND o.organization_id = %s",
                             [payment_id, organization_id], lock=True)
    if not found:
        return None
    _read(found[0][0].organization)
    return found[0]


def lock_payment(payment_id: int) -> Any:
    return _lock("payment", payment_id)


def lock_refund_request(request_id: int) -> Any:
    """A refund request, before whatever its approval locks (two approvers: one decides)."""
    return _lock("refund_request", request_id)


def lock_refund(refund_id: int) -> Any:
    return _lock("refund", refund_id)


def _packages() -> Any:
    """Packages with their invoice line, whose figures they read; only the package is locked
    (the line is written under the invoice's lock)."""
    model = apps.get_model(_MODELS["package"])
    return model.objects.select_related("line").select_for_update(of=("self",))


def lock_package(package_id: int) -> Any:
    _taken("package")
    return _packages().get(pk=package_id)


def lock_packages_of_lines(line_ids: list[int]) -> dict[int, Any]:
    """The packages sold on these invoice lines, locked in id order: {line id: package}."""
    if not line_ids:
        return {}
    _taken("package")
    return {package.line_id: package
            for package in _packages().filter(line_id__in=line_ids).order_by("pk")}


def lock_benefit(package_id: int, benefit: object, *, field: str) -> Any:
    """A benefit of the package, by the id a client gave (bad input names `field`)."""
    _taken("benefit")
    model = apps.get_model(_MODELS["benefit"])
    return get_scoped(model.objects.select_for_update().filter(package_id=package_id), benefit,
                      field=field)


def audit_chain_locked_by_the_database() -> None:
    """The audit chain's head is locked by the statement that links the entries (its database
    function, kassa.audit.services): it is the last lock all the same, and counted as one."""
    _taken("audit_chain")


def lock_audit_chain(organization_id: int) -> Any | None:
    """The head of the organization's audit log (None before its first entry)."""
    _taken("audit_chain")
    found = rows.select(apps.get_model(_MODELS["audit_chain"]), "t.organization_id = %s",
                        [organization_id], lock=True, order_by="t.id", limit=1)
    return found[0] if found else None


def assert_outside_transaction(what: str) -> None:
    """An outbound call (the gateway, the mail server, a webhook) holds no transaction and so no
    lock: record the intent, commit, call, record the outcome. The mirror of `post()`, which
    asserts it runs inside one. (A test's own wrapping transaction does not count.)"""
    connection = transaction.get_connection()
    open_blocks = [block for block in connection.atomic_blocks
                   if not getattr(block, "_from_testcase", False)]
    assert not open_blocks, f"{what} inside a database transaction: commit before calling out"
