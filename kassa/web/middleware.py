"""Every date and time on a signed-in page in the organization's time zone.

Datetimes are stored in UTC; Django's templates (`|date`, `{{ when }}`) and forms show them in
the *current* time zone, which this middleware sets for the request from the signed-in user's
organization (`Organization.timezone`) and resets after it. A payment at 02:00 UTC on 2 December
is then shown on 1 December at 20:00 to a front desk in America/Chicago. Requests without a
signed-in member (the API with its tokens, sign-in, the health check) keep UTC.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from kassa.tenancy.selectors import membership_for_user


class OrganizationTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = None
        if request.user.is_authenticated:
            membership = membership_for_user(request.user)
            if membership is not None:
                # The page views read it back (web.access.page): one query, not two.
                request.membership = membership  # type: ignore[attr-defined]
                try:
                    zone = zoneinfo.ZoneInfo(membership.organization.timezone)
                except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                    zone = None  # the settings refuse unknown zones; an old row stays in UTC
        if zone is None:
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
