"""What a process keeps of API tokens: a look-up saved on every request, for at most
`KASSA_TOKEN_CACHE_SECONDS`. A change made through this process is seen at once; one made
elsewhere (another process, the database itself) within that delay, and no longer."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import Tenant
from kassa.tenancy import selectors
from kassa.tenancy.models import ApiToken, Membership, Role

pytestmark = pytest.mark.django_db


class Clock:
    """`time.monotonic` for the cache, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: Any, settings: Any) -> Clock:
    settings.KASSA_TOKEN_CACHE_SECONDS = 5
    found = Clock()
    monkeypatch.setattr(selectors.time, "monotonic", found)
    return found


def settings_status(tenant: Tenant) -> int:
    return tenant.api.get("/settings").status_code


def deleted_elsewhere(tenant: Tenant) -> None:
    """As another process revokes it: straight in the database, no signal here."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ApiToken._meta.db_table} WHERE membership_id = %s",
                       [tenant.admin.pk])


def test_a_kept_token_costs_no_look_up(tenant: Tenant, clock: Clock) -> None:
    assert settings_status(tenant) == 200
    with CaptureQueriesContext(connection) as again:
        assert settings_status(tenant) == 200
    assert not any("tenancy_apitoken" in q["sql"] for q in again.captured_queries)


def test_a_token_revoked_elsewhere_works_here_until_the_delay_is_over(
        tenant: Tenant, clock: Clock) -> None:
    assert settings_status(tenant) == 200
    deleted_elsewhere(tenant)
    clock.now += 4.9
    assert settings_status(tenant) == 200  # within the documented delay
    clock.now += 0.2
    assert settings_status(tenant) == 401


def test_a_token_revoked_through_this_process_stops_at_once(tenant: Tenant, clock: Clock) -> None:
    assert settings_status(tenant) == 200
    ApiToken.objects.filter(membership=tenant.admin).delete()  # as the admin site does
    assert settings_status(tenant) == 401


@pytest.mark.parametrize("change", ["deactivated", "demoted"])
def test_a_person_changed_through_this_process_is_seen_at_once(
        tenant: Tenant, clock: Clock, change: str) -> None:
    assert tenant.api.get("/settings").status_code == 200
    membership = Membership.objects.get(pk=tenant.admin.pk)
    if change == "deactivated":
        membership.user.is_active = False
        membership.user.save()
        assert settings_status(tenant) == 401
    else:
        membership.role = Role.FRONT_DESK
        membership.save()
        r = tenant.api.patch("/settings", {"allow_multiple_package_refunds": True})
        assert r.status_code == 403, r.content


def test_what_one_request_changes_on_its_actor_reaches_no_other(clock: Clock,
                                                                tenant: Tenant) -> None:
    first = selectors.membership_for_token(tenant.token)
    assert first is not None
    first.organization.name = "Changed by one request"
    first.role = Role.ADMIN
    second = selectors.membership_for_token(tenant.token)
    assert second is not None and second is not first
    assert second.organization.name == tenant.organization.name


def test_zero_asks_the_database_every_time(tenant: Tenant, settings: Any) -> None:
    settings.KASSA_TOKEN_CACHE_SECONDS = 0
    assert settings_status(tenant) == 200
    deleted_elsewhere(tenant)
    assert settings_status(tenant) == 401
