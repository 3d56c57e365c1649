"""Sign-in by e-mail (the username of every Kassa user is its e-mail, lower-cased)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from kassa.tenancy.models import Membership


class EmailBackend(ModelBackend):
    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:
        email = kwargs.get("email") or username
        if email is None:
            return None
        return super().authenticate(request, username=email.strip().lower(), password=password)


class AuthedRequest(HttpRequest):
    """What an API handler receives once the bearer token is checked: `auth` is the caller's
    membership (its user, organization and role). For type checking only."""

    auth: Membership
