"""This installation's key: what makes its gateway idempotency keys its own.

Made once, the first time it is asked for (the row is the database's, so every process of one
installation shares it). `KASSA_INSTALLATION` overrides it: set it on a copy of a database (a
restored backup used for staging) so that the copy never sends the original's keys.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction

from kassa.core.models import Installation


def installation_key() -> str:
    override = getattr(settings, "KASSA_INSTALLATION", "")
    if override:
        return str(override)
    found = Installation.objects.order_by("pk").values_list("key", flat=True).first()
    if found:
        return found
    try:
        with transaction.atomic():
            Installation.objects.create(key=secrets.token_hex(6))
    except IntegrityError:  # pragma: no cover - two processes making it at the same moment
        pass
    return Installation.objects.order_by("pk").values_list("key", flat=True).first() or ""
