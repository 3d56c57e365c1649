"""The one NinjaAPI: bearer-token auth, the routers of each domain, and the error mapping.

Every error leaves as `application/problem+json` with a stable `code`: domain rules from their
DomainError, bad input as 422 `validation_error` with `errors: [{field, message}]`, a missing or
bad token as 401, an unknown (or another organization's) object as 404.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from kassa.core.errors import DomainError, InvalidAmount, sentence
from kassa.problems import PROBLEM, busy, problem
from kassa.tenancy.models import Membership
from kassa.tenancy.selectors import membership_for_token


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Membership | None:
        membership = getattr(request, "kassa_membership", None) or membership_for_token(token)
        return membership


class BodyNotAnObject(ValueError):
    def __init__(self, message: str, *, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`{"amount": "1.00", "amount": "999.00"}`: which one a program meant is anybody's guess
    (json.loads keeps the last), so it is refused."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise BodyNotAnObject("appears twice in the body: send each field once", field=key)
        seen[key] = value
    return seen


class ObjectParser(Parser):
    """Every body of the API is a JSON object, each key once. Without this check ninja's schemas
    read fields off any value, so `[1, 2]` would pass for a body whose fields are optional."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data = json.loads(request.body, object_pairs_hook=_no_duplicate_keys)
        if not isinstance(data, dict):
            raise BodyNotAnObject("must be a JSON object")
        return data


def _problem_for_405(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """ninja answers a method a path does not have with a plain-text 405; ours is a problem."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type") != PROBLEM:
            allow = response.get("Allow", "")
            answer = problem(405, "method_not_allowed", "Method not allowed",
                             f"{request.method} is not allowed here; allowed: {allow}")
            answer["Allow"] = allow
            return answer
        return response

    return wrapper


class KassaAPI(NinjaAPI):
    def _get_urls(self) -> list[URLResolver | URLPattern]:
        urls = super()._get_urls()
        for url in urls:
            if isinstance(url, URLPattern):
                url.callback = _problem_for_405(url.callback)
        return urls

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        """Declare error answers with the media type they really have: problem+json."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status).startswith(("4", "5")) and "application/json" in content:
                        content[PROBLEM] = content.pop("application/json")
        return schema


# What the web server of `kassa run` (gunicorn) refuses before Kassa sees a request, with an
# HTML body of its own rather than a problem document; the numbers are kassa.cli's.
SERVER_LIMITS = (
    "The web server refuses, before Kassa reads the request and with a plain HTML body (not "
    "a problem document): a request line (method, path and query) over 4094 bytes with 414; "
    "a header field over 8190 bytes, or more than 100 header fields, with 431.")

api = KassaAPI(
    title="Kassa", version="1", urls_namespace="api", auth=BearerToken(), parser=ObjectParser(),
    description="Payments, packages and refunds for the front desk. Money travels as decimal "
    "strings at the currency's precision; tax rates are percentages (\"8.875\"); counts (a "
    "quantity) are JSON integers, never true, 1.0 or \"2\". " + SERVER_LIMITS,
)


def _field_name(loc: list[Any]) -> str:
    parts = [p for p in loc if p not in ("body", "payload", "query", "path", "filters", "paging")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = []
    for err in exc.errors:
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        errors.append({"field": _field_name(list(err.get("loc", []))), "message": message})
    detail = (" ".join(sentence(e["field"], e["message"]) for e in errors)
              or "The body is not valid.")
    # Money that is not a decimal string is refused by its schema type (kassa.core.text) with
    # the code the services give every other bad amount.
    if exc.errors and all(err.get("type") == InvalidAmount.code for err in exc.errors):
        return problem(422, InvalidAmount.code, InvalidAmount.title, detail, errors)
    return problem(422, "validation_error", "The request is not valid", detail, errors)


@api.exception_handler(RequestDataTooBig)
def on_body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return body_too_big()


def body_too_big() -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem(413, "body_too_large", "The request body is too large",
                   f"body: at most {limit} bytes", [{"field": "body",
                                                     "message": f"at most {limit} bytes"}])


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = problem(401, "unauthorized", "Authentication required",
                       "Send Authorization: Bearer <token>")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem(404, "not_found", "Not found", str(exc) or "Not found")


@api.exception_handler(OperationalError)
def on_database_busy(request: HttpRequest, exc: OperationalError) -> HttpResponse:
    """A row lock waited out: 503 `busy` (kassa.problems.busy). Any other operational error
    stays a 500."""
    answer = busy(exc)
    if answer is None:
        raise exc
    return answer


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400:  # an unparseable body is bad input like any other: 422
        cause = exc.__cause__
        message = str(cause) if isinstance(cause, BodyNotAnObject) else "is not valid JSON"
        field = cause.field if isinstance(cause, BodyNotAnObject) else "body"
        return problem(422, "validation_error", "The request is not valid", f"{field}: {message}",
                       [{"field": field, "message": message}])
    code = {405: "method_not_allowed"}.get(exc.status_code, "error")
    return problem(exc.status_code, code, str(exc), str(exc))


def _register_routers() -> None:
    from kassa.billing.api import router as billing_router
    from kassa.refunds.api import router as refunds_router
    from kassa.tenancy.api import router as tenancy_router

    api.add_router("/", tenancy_router)
    api.add_router("/", billing_router)
    api.add_router("/", refunds_router)
    api.add_router("/", "kassa.packages.api.router")
    api.add_router("/", "kassa.reports.api.router")
    api.add_router("/", "kassa.refunds.disputes_api.router")
    api.add_router("/", "kassa.refunds.webhooks.router")
    api.add_router("/", "kassa.webhooks.api.router")
    api.add_router("/", "kassa.audit.api.router")


_register_routers()
