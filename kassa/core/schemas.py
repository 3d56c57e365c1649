"""Schemas shared by every router: the problem document and list paging."""

from __future__ import annotations

from ninja import Schema
from pydantic import Field


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    """RFC 9457 problem details, with Kassa's stable `code`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] = Field(default_factory=list)


class Paging(Schema):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)


# The answers every authenticated operation may give besides its own.
READ_ERRORS: dict[int, type[Schema]] = {401: Problem, 404: Problem, 422: Problem}
WRITE_ERRORS: dict[int, type[Schema]] = {
    401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem,
}
