"""Organizations, centers, people: the reads. Everything is scoped to one organization."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from kassa.core.lookup import get_scoped
from kassa.tenancy.models import ApiToken, Center, Membership, Organization
from kassa.tenancy.services import token_digest


def membership_for_token(token: str) -> Membership | None:
    if not token or len(token) > 200:
        return None
    api_token = (
        ApiToken.objects.select_related("membership__organization", "membership__user")
        .filter(digest=token_digest(token), membership__user__is_active=True)
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
