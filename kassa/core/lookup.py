"""Fetching one object of the caller's organization by its id.

An id in the path that is unknown, malformed or another organization's is a 404 (never telling
which). An id in the body that names no object of the organization is bad input: a 422 naming
the field.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

from kassa.core.errors import NotFound, ValidationFailed

M = TypeVar("M", bound=Model)

MAX_ID = 2**63 - 1


def parse_id(object_id: object) -> int | None:
    """An id as the API spells it (ASCII digits, 1 to 2**63 - 1), or None when it cannot be one.

    Strict on purpose: `int()` would also take "²"-like digits (and raise), "1_0", "+1" or
    " 1 ", and a number past a BIGINT would overflow the database driver (a 500).
    """
    text = str(object_id)
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    pk = int(text)
    return pk if 0 < pk <= MAX_ID else None


def get_scoped(queryset: QuerySet[M], object_id: object, *, field: str | None = None) -> M:
    label = queryset.model._meta.verbose_name
    pk = parse_id(object_id)
    try:
        if pk is None:
            raise queryset.model.DoesNotExist  # type: ignore[attr-defined]
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist:  # type: ignore[attr-defined]
        if field:
            raise ValidationFailed(field, f"no {label} {object_id}") from None
        raise NotFound(f"No {label} {object_id}") from None
