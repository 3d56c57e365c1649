"""Organizations, centers, people: the reads. Everything is scoped to one organization."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kassa.core.lookup import get_scoped
from kassa.tenancy.models import ApiToken, Center, Membership, Organization
from kassa.tenancy.services import token_digest

# Token digest → (monotonic time until which it holds, the membership it named). Every
# request gets its own copy, so nothing one request changes on its actor reaches another.
_TOKENS: dict[str, tuple[float, Membership]] = {}
_TOKENS_LOCK = threading.Lock()


# Saves that change nothing a request's actor is checked by (a token's use, the invoice
# number sequence, which is read locked): they keep what is kept.
UNCHECKED_FIELDS = frozenset({"next_invoice_number", "last_used_at", "last_login"})


def forget_tokens(*_: Any, update_fields: frozenset[str] | None = None, **__: Any) -> None:
    """Drop what the process keeps of tokens: a token, membership, person or organization
    changed (connected to their signals in `TenancyConfig.ready`)."""
    if update_fields and update_fields <= UNCHECKED_FIELDS:
        return
    clear_kept_tokens()
    # Again once the change commits: until then another thread of this process may still read
    # the old rows, and keep them.
    transaction.on_commit(clear_kept_tokens)


def clear_kept_tokens() -> None:
    with _TOKENS_LOCK:
        _TOKENS.clear()


def membership_for_token(token: str) -> Membership | None:
    """The membership an API token names, kept by the process for
    `KASSA_TOKEN_CACHE_SECONDS` (a look-up on every request otherwise)."""
    if not token or len(token) > 200:
        return None
    digest = token_digest(token)
    kept = _TOKENS.get(digest)
    if kept is not None and kept[0] > time.monotonic():
        return copy.deepcopy(kept[1])
    membership = _look_up_token(digest)
    if membership is not None and settings.KASSA_TOKEN_CACHE_SECONDS > 0:
        with _TOKENS_LOCK:
            _TOKENS[digest] = (time.monotonic() + settings.KASSA_TOKEN_CACHE_SECONDS,
                               copy.deepcopy(membership))
    return membership


def _look_up_token(digest: str) -> Membership | None:
    api_token = (
        ApiToken.objects.select_related("membership__organization", "membership__user")
        .filter(digest=digest, membership__user__is_active=True)
        .first()
    )
    if api_token is None:
        return None
    now = timezone.now()
    # Written at most once a minute: a hot token must not make every request a write.
    if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token.membership


def membership_for_user(user: Any) -> Membership | None:
    return (
        Membership.objects.select_related("organization", "user")
        .filter(user=user).order_by("id").first()
    )


def centers(organization: Organization) -> QuerySet[Center]:
    return Center.objects.filter(organization=organization).order_by("id")


def members(organization: Organization) -> QuerySet[Membership]:
    """The organization's people with their roles, by e-mail."""
    return (Membership.objects.filter(organization=organization).select_related("user")
            .order_by("user__email"))


def get_center(
    organization: Organization, center_id: object, *, field: str | None = None
) -> Center:
    return get_scoped(Center.objects.filter(organization=organization), center_id, field=field)
