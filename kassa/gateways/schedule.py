"""How often and how patiently Kassa calls a gateway again: the operator's schedule.

`KASSA_GATEWAY_ATTEMPTS` calls at most (then a person decides), the first wait
`KASSA_GATEWAY_BACKOFF_SECONDS`, doubling, capped at an hour. Refunds and payments keep the same
schedule, so an operator tunes one thing.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings


def max_call_attempts() -> int:
    return int(settings.KASSA_GATEWAY_ATTEMPTS)


def backoff(attempt: int) -> dt.timedelta:
    """`KASSA_GATEWAY_BACKOFF_SECONDS` (10 s), then twice as long each time, capped at an hour."""
    first = int(settings.KASSA_GATEWAY_BACKOFF_SECONDS)
    return dt.timedelta(seconds=min(first * 2 ** max(attempt - 1, 0), 3600))
