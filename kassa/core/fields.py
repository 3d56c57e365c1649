"""Model fields of Kassa's own.

`TenantOneToOneField` is a one-to-one relation whose uniqueness the model declares itself, as a
`UniqueConstraint` that includes `organization` (DESIGN.md, "Scale (v2)"): a table distributed
by organization (Citus) can enforce a unique index only if it holds the distribution column,
so the plain unique index a OneToOneField puts on its column alone cannot stay. Django keeps
treating the relation as one-to-one (`line.package`, `select_related("package")`).
"""

from __future__ import annotations

from typing import Any

from django.db import models


class TenantOneToOneField(models.OneToOneField):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # OneToOneField forces unique=True; the model's UniqueConstraint with `organization`
        # takes its place (the schema test holds every tenant model to that).
        self._unique = False
