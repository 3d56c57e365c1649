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


def sign_in_name(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The account a sign-in names, as django-axes counts its failures: the e-mail as the
    backend reads it, so `Ann@…` and `ann@…` are one account."""
    raw = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(raw).strip().lower()


class AuthedRequest(HttpRequest):
    """What an API handler receives once the bearer token is checked: `auth` is the caller's
    membership (its user, organization and role). For type checking only."""

    auth: Membership
