"""`Idempotency-Key` on any POST of the API: the same key and body give the same answer.

The first request with a key claims it by inserting a row (the unique constraint decides a race
between two), runs, and stores its status and body; a later request with the same key and the
same method, path and body gets that stored answer without running again; with anything else it
gets 409 `idempotency_conflict`. While the first is still running, a second gets 409 too (retry
later). A 5xx answer is not stored: the client may retry it. Keys are per organization.

A claim with no answer after `KASSA_IDEMPOTENCY_TAKEOVER_SECONDS` (60 s) died with its request:
on the paths whose services resume (`RESUMABLE`: payments and refunds), a retry with the same
body takes it over (a conditional update, so only one retry does). Those services find what
the first run left by the same key, under the locks that guard it (the payment and its gateway
key, the refund), and go on with it, so money never moves twice — even should the first run
still be alive. Elsewhere a dead claim answers 409 until the key's life is over: running such a
request again could do it twice. An answer is kept for a day (`KEY_LIFE`); then the key is
free again (the worker prunes it, and a request finding it older than that takes it afresh).

On the refund paths (`IN_ONE_TRANSACTION`: nothing there calls out during the request; an
online refund's gateway call is queued), a new key's claim, the refund and the stored answer
are one transaction: one commit instead of three, and a request that dies anywhere leaves
nothing — no refund and no claim — so its retry simply runs. A refusal (4xx) rolls back what
the request did and is stored after, on its own; a 5xx stores nothing. Online payments keep
the claim in a transaction of its own: it must be committed before the card is charged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from kassa.core import batch
from kassa.core.locks import claim_begins, flush_later, forget_later
from kassa.core.models import KEY_LIFE, IdempotentRequest
from kassa.problems import busy, problem
from kassa.tenancy.selectors import membership_for_token

logger = logging.getLogger("kassa.idempotency")

API_PREFIX = "/api/v1/"
RESUMABLE = re.compile(r"/api/v1/(invoices/[^/]+/payments|payments/[^/]+/refunds"
                       r"|packages/[^/]+/refunds|customers/[^/]+/deposits"
                       r"|customers/[^/]+/credit/refunds)/?")
IN_ONE_TRANSACTION = re.compile(r"/api/v1/(payments/[^/]+/refunds|packages/[^/]+/refunds"
                                r"|customers/[^/]+/credit/refunds)/?")
MAX_KEY_LENGTH = 255


def _claim_in_transaction(organization_id: int, key: str, fingerprint: str) -> int | None:
    """Insert the key's row in the open transaction; None when the key is taken already (on
    PostgreSQL, after waiting for a transaction that claimed it to end)."""
    table = IdempotentRequest._meta.db_table  # our own table's name; every value a parameter
    # As the ORM stores it (on SQLite, text without an offset), so that its look-ups by
    # `claimed_at` match this row.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, key, fingerprint, status_code, "  # noqa: S608
            "content_type, body, created_at, claimed_at) VALUES (%s, %s, %s, NULL, '', %s, %s, "
            "%s) ON CONFLICT (organization_id, key) DO NOTHING RETURNING id",
            [organization_id, key, fingerprint, b"", now, now])
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _store_refusal(organization_id: int, key: str, fingerprint: str,
                   response: HttpResponse) -> None:
    """Keep a refusal's answer, after its request's transaction rolled back. Should another
    request have taken the key meanwhile, its answer is the one kept (and should that request
    hold the key past the lock wait, the refusal goes unstored: a retry runs again and is
    refused again)."""
    try:
        with transaction.atomic():
            now = timezone.now()
            IdempotentRequest.objects.create(
                organization_id=organization_id, key=key, fingerprint=fingerprint,
                claimed_at=now, status_code=response.status_code, body=response.content,
                content_type=response.get("Content-Type", "application/json"))
    except (IntegrityError, OperationalError):
        pass


def _claim(organization_id: int, key: str, fingerprint: str) -> IdempotentRequest | None:
    """Insert the key's row, or None when another request holds the key already."""
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(
                organization_id=organization_id, key=key, fingerprint=fingerprint,
                claimed_at=timezone.now())
    except IntegrityError:
        return None


def _take_over(stored: IdempotentRequest, path: str, now: dt.datetime) -> bool:
    """Take the claim of a request that died unanswered: only one retry's update matches."""
    if not RESUMABLE.fullmatch(path):
        return False
    died_before = now - dt.timedelta(seconds=settings.KASSA_IDEMPOTENCY_TAKEOVER_SECONDS)
    if stored.status_code is not None or (stored.claimed_at or stored.created_at) > died_before:
        return False
    taken = bool(IdempotentRequest.objects.filter(
        pk=stored.pk, status_code__isnull=True, claimed_at=stored.claimed_at,
    ).update(claimed_at=now))
    stored.claimed_at = now
    return taken


def _conflict(detail: str) -> HttpResponse:
    return problem(409, "idempotency_conflict",
                   "The Idempotency-Key was used with another request", detail)


def _answer_again(stored: IdempotentRequest, fingerprint: str) -> HttpResponse:
    if stored.fingerprint != fingerprint:
        return _conflict("This key was used with another request body or path")
    if stored.status_code is None:
        return _conflict("A request with this key is still being processed; retry")
    response = HttpResponse(bytes(stored.body), status=stored.status_code,
                            content_type=stored.content_type)
    response["Idempotent-Replayed"] = "true"
    return response


def _store_answer(claim_id: int, response: HttpResponse) -> None:
    """The answer, on the claim made in this transaction: written out (the ORM's compile of
    the UPDATE was a tenth of a keyed refund's own CPU, issue 17)."""
    table = IdempotentRequest._meta.db_table  # our table's name; the values are parameters
    batch.hold(f"UPDATE {table} SET status_code = %s, body = %s, "  # noqa: S608
               "content_type = %s WHERE id = %s",
               [response.status_code, response.content,
                response.get("Content-Type", "application/json"), claim_id],
               writes=table, changes=True)


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        auth = request.headers.get("Authorization", "")
        membership = (membership_for_token(auth[7:].strip())
                      if auth.lower().startswith("bearer ") else None)
        if membership is None:
            return self.get_response(request)  # the API answers 401
        request.kassa_membership = membership  # type: ignore[attr-defined]
        if len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return problem(422, "validation_error", "The request is not valid",
                           "Idempotency-Key: at most 255 printable characters",
                           [{"field": "Idempotency-Key",
                             "message": "at most 255 printable characters"}])
        try:
            body = request.body
        except RequestDataTooBig:
            return problem(413, "body_too_large", "The request body is too large",
                           "body: too large", [{"field": "body", "message": "too large"}])
        fingerprint = hashlib.sha256(
            b"\n".join([request.method.encode(), request.path.encode(), body])
        ).hexdigest()
        if IN_ONE_TRANSACTION.fullmatch(request.path):
            answered = self._in_one_transaction(request, membership.organization_id, key,
                                                fingerprint)
            if answered is not None:
                return answered
            # The key was claimed before: answered, running, or dead; as on every path.
        claim = _claim(membership.organization_id, key, fingerprint)
        if claim is None:
            stored = IdempotentRequest.objects.filter(
                organization_id=membership.organization_id, key=key).first()
            now = timezone.now()
            if stored is not None and stored.created_at < now - KEY_LIFE and (
                    stored.status_code is not None
                    or (stored.claimed_at or stored.created_at) < now - KEY_LIFE):
                # Past its life, not yet pruned: the key is free again (unless a retry took it
                # over lately: that one is running).
                IdempotentRequest.objects.filter(pk=stored.pk, claimed_at=stored.claimed_at
                                                 ).delete()
                stored = None
            elif (stored is not None and stored.fingerprint == fingerprint
                    and _take_over(stored, request.path, now)):
                claim = stored
                logger.warning("Idempotency-Key %r: took over a request that died unanswered",
                               key)
            elif stored is not None:
                return _answer_again(stored, fingerprint)
        if claim is None:
            # The first request answered 5xx and let the key go between our insert and this
            # read (or it was past its life): it is free again, unless a third took it meanwhile.
            claim = _claim(membership.organization_id, key, fingerprint)
            if claim is None:
                return _conflict("A request with this key is still being processed; retry")

        # Ours only while nobody took it over (which a live request never gives cause for).
        ours = IdempotentRequest.objects.filter(pk=claim.pk, claimed_at=claim.claimed_at)
        try:
            response = self.get_response(request)
        except BaseException:
            ours.delete()
            raise
        if response.status_code >= 500:
            ours.delete()
        else:
            ours.update(
                status_code=response.status_code, body=response.content,
                content_type=response.get("Content-Type", "application/json"))
        return response

    def _in_one_transaction(self, request: HttpRequest, organization_id: int, key: str,
                            fingerprint: str) -> HttpResponse | None:
        """Claim a new key, run the request and store its answer in one transaction; None
        when the key was claimed before."""
        try:
            return self._claimed_in_transaction(request, organization_id, key, fingerprint)
        except OperationalError as exc:
            # The database was busy before the API could answer it (SQLite's BEGIN IMMEDIATE,
            # or the wait on another request's claim of the key): rolled back, nothing changed.
            answer = busy(exc)
            if answer is None:
                raise
            return answer

    def _claimed_in_transaction(self, request: HttpRequest, organization_id: int, key: str,
                                fingerprint: str) -> HttpResponse | None:
        conn = transaction.get_connection()
        with transaction.atomic():
            claim_id = _claim_in_transaction(organization_id, key, fingerprint)
            if claim_id is None:
                return None
            # The use case's money transaction is this one (no savepoint of its own: every
            # rule is checked before its first write, and a refusal rolls everything back).
            conn.kassa_claim_transaction = True
            claim_begins()
            try:
                response = self.get_response(request)
                if response.status_code < 400:
                    _store_answer(claim_id, response)
                    flush_later()  # the use case's last statements (kassa.core.locks)
                    return response
            finally:
                conn.kassa_claim_transaction = False
                forget_later()
            transaction.set_rollback(True)
        if response.status_code < 500:
            _store_refusal(organization_id, key, fingerprint, response)
        return response
