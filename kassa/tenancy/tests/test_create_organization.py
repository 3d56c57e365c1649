"""create_organization and create_user: the services behind `kassa org create`, `kassa user
create` and the demo, which check their input themselves (no API schema stands before them)."""

from __future__ import annotations

import pytest

from kassa.core.errors import ValidationFailed
from kassa.ledger.models import Account, AccountCode
from kassa.tenancy.models import Membership, Organization, Role
from kassa.tenancy.selectors import membership_for_token
from kassa.tenancy.services import EmailTaken, create_organization, create_user


def test_an_organization_starts_with_a_center_its_accounts_and_an_admin(db):
    org, admin, token = create_organization(name="  Lumen Spa ", admin_email="Owner@Lumen.example",
                                            currency="kwd", timezone="Asia/Kuwait")
    assert (org.name, org.currency, org.timezone) == ("Lumen Spa", "KWD", "Asia/Kuwait")
    center = org.centers.get()
    assert center.name == "Main"
    assert set(Account.objects.filter(center=center).values_list("code", flat=True)) == \
        set(AccountCode.values)
    assert (admin.role, admin.user.email, admin.user.username) == (
        Role.ADMIN, "owner@lumen.example", "owner@lumen.example")
    assert not admin.user.has_usable_password()  # none given: token only
    assert membership_for_token(token.token) == admin


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"currency": "ABC"}, "currency"),
    ({"currency": "XTS"}, "currency"),
    ({"timezone": "Nowhere/Land"}, "timezone"),
    ({"timezone": "localtime"}, "timezone"),
    ({"name": ""}, "name"),
    ({"name": "Spa\x00"}, "name"),
    ({"name": "S" * 201}, "name"),
    ({"admin_email": "owner"}, "email"),
    ({"admin_email": "owner@spa.example\x00"}, "email"),
    ({"admin_email": "o" * 250 + "@spa.example"}, "email"),
])
def test_bad_organization_is_refused_and_writes_nothing(db, kwargs, field):
    args = {"name": "Spa", "admin_email": "owner@spa.example", **kwargs}
    with pytest.raises(ValidationFailed) as exc:
        create_organization(**args)
    assert exc.value.field == field
    assert Organization.objects.count() == 0 and Membership.objects.count() == 0


def test_an_email_is_one_user_however_it_is_spelt(tenant):
    create_user(organization=tenant.organization, email="desk@spa.example", role="front_desk")
    with pytest.raises(EmailTaken):
        create_user(organization=tenant.organization, email=" DESK@spa.example ",
                    role="front_desk")
    with pytest.raises(ValidationFailed):
        create_user(organization=tenant.organization, email="x@spa.example", role="owner")
    assert Membership.objects.filter(organization=tenant.organization).count() == 2
