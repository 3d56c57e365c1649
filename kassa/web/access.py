"""What every page needs: a signed-in user, their membership, and 404 for what is not theirs.

A page view is `@page` decorated: it gets `(request, membership, ...)`; an object of another
organization (NotFound from a selector) becomes a 404, never a hint that it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from kassa.core.errors import NotFound, PermissionDenied
from kassa.tenancy.models import Role
from kassa.tenancy.selectors import membership_for_user


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Looked up already by web.middleware (which set the organization's time zone).
        membership = getattr(request, "membership", None) or membership_for_user(request.user)
        if membership is None:
            raise Http404("You belong to no organization")
        request.membership = membership  # type: ignore[attr-defined]
        try:
            return view(request, membership, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from exc
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.detail) from exc

    return wrapper


def admin_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @page
    @wraps(view)
    def wrapper(request: HttpRequest, membership: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if membership.role != Role.ADMIN:
            raise DjangoPermissionDenied("Only an admin may see this page")
        return view(request, membership, *args, **kwargs)

    return wrapper
