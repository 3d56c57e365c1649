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
