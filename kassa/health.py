"""`GET /healthz`: whether this process can serve — the database answers — and when the
workers last swept, for a load balancer and a person. No sign-in; it says nothing of the
settings."""

from __future__ import annotations

import datetime as dt

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from kassa.core.models import Lease
from kassa.worker import SWEEP_EVERY_SECONDS


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        due = Lease.objects.filter(name="sweep").values_list("due_at", flat=True).first()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    last_sweep = due - dt.timedelta(seconds=SWEEP_EVERY_SECONDS) if due else None
    age = (timezone.now() - last_sweep).total_seconds() if last_sweep else None
    return JsonResponse({
        "status": "ok", "database": "ok",
        "worker": {"last_sweep": last_sweep.isoformat() if last_sweep else None,
                   "seconds_since": round(age) if age is not None else None},
    })
