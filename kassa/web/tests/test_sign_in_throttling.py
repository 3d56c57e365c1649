"""Sign-in is throttled per account and address (django-axes): after five wrong passwords the
pair is locked with a clear 429 page — even the right password waits — while the same account
from another address, and another account from the same address, still sign in."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-123456"


def sign_in(email: str, password: str, address: str = "10.0.0.1") -> object:
    return Client(REMOTE_ADDR=address).post("/accounts/login/",
                                            {"username": email, "password": password})


def test_five_wrong_passwords_lock_that_account_from_that_address(tenant):
    email = tenant.admin.user.email
    for _ in range(4):
        r = sign_in(email, "wrong")
        assert r.status_code == 200 and "do not match an account" in r.content.decode()
    locked = sign_in(email.upper(), "wrong")  # the same account, whatever its case
    assert locked.status_code == 429
    assert "Sign-in paused" in locked.content.decode()
    right = sign_in(email, PASSWORD)
    assert right.status_code == 429  # the right password waits too

    elsewhere = sign_in(email, PASSWORD, address="10.0.0.2")
    assert elsewhere.status_code == 302 and elsewhere["Location"] == "/"
    other, _ = tenant.user("front_desk")
    neighbour = sign_in(other.user.email, PASSWORD)
    assert neighbour.status_code == 302


def test_a_right_password_before_the_limit_starts_the_count_again(tenant):
    email = tenant.admin.user.email
    for _ in range(4):
        sign_in(email, "wrong")
    assert sign_in(email, PASSWORD).status_code == 302
    for _ in range(4):
        assert sign_in(email, "wrong").status_code == 200
    assert sign_in(email, PASSWORD).status_code == 302
