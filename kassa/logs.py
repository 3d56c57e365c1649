"""Structured logs: one JSON object a line on stderr, each carrying the id of the request it
belongs to, so that an operator's log tooling can follow one request (and one refund) through.

The id is the client's `X-Request-ID` when it sends a sensible one (a proxy's or load
balancer's), else a new one; it is answered back in the same header. Every 500 is logged by
Django (`django.request`, with its traceback) through the same handler.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_GIVEN = re.compile(r"[A-Za-z0-9._:-]{1,200}")
request_id: ContextVar[str] = ContextVar("kassa_request_id", default="")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(HEADER, "")
        current = given if _GIVEN.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(current)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = current
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (empty outside a request: the worker, the CLI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True
