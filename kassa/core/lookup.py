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


def get_scoped(queryset: QuerySet[M], object_id: object, *, field: str | None = None) -> M:
    label = queryset.model._meta.verbose_name
    try:
        pk = int(str(object_id))
        if not 0 < pk <= MAX_ID:
            raise ValueError
        return queryset.get(pk=pk)
    except (ValueError, queryset.model.DoesNotExist):  # type: ignore[attr-defined]
        if field:
            raise ValidationFailed(field, f"no {label} {object_id}") from None
        raise NotFound(f"No {label} {object_id}") from None
