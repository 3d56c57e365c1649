"""RFC 9457 problem documents: how every error of the API leaves (`application/problem+json`
with a stable `code`), shared by the API's handlers, its URL fallbacks and the idempotency
middleware that answers before the API runs."""

from __future__ import annotations

import json

from django.http import HttpResponse

PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str,
            errors: list[dict[str, str]] | None = None) -> HttpResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": code, "errors": errors or []}
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM)


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_not_available: its lock_timeout passed


def busy(exc: Exception) -> HttpResponse | None:
    """The 503 `busy` answer when `exc` is a lock waited for longer than
    settings.LOCK_WAIT_SECONDS (PostgreSQL's lock_timeout, SQLite's "database is locked"):
    the transaction rolled back, nothing changed, and the same request may be retried. None
    for any other error."""
    cause = exc.__cause__
    timed_out = getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE or (
        "database is locked" in str(exc))
    if not timed_out:
        return None
    return problem(503, "busy", "Kassa is busy; try again",
                   "Another change to the same records took too long; nothing was changed. "
                   "Retry the request (with the same Idempotency-Key).")
