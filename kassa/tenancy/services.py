"""Organizations, centers, people and tokens: the writes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import get_currency_name
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from kassa.audit.services import record
from kassa.core.errors import DomainError, PermissionDenied, RefundNotPermitted, ValidationFailed
from kassa.core.locks import lock_organization
from kassa.core.text import clean_email, clean_line
from kassa.tenancy.models import ApiToken, BusinessKind, Center, Membership, Organization, Role

User = get_user_model()

NAME_MAX = 200  # Organization.name, Center.name
EMAIL_MAX = 254


class EmailTaken(DomainError):
    code = "email_taken"
    status = 409
    title = "A user with this e-mail exists already"


class CenterNameTaken(DomainError):
    code = "center_name_taken"
    status = 409
    title = "A center with this name exists already"


@dataclass(frozen=True)
class NewToken:
    token: str
    api_token: ApiToken


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require_admin(actor: Membership) -> None:
    if actor.role != Role.ADMIN:
        raise PermissionDenied("Only an admin may do this")


def require_auditor(actor: Membership) -> None:
    """The audit log and its page: admins and accountants."""
    if actor.role not in (Role.ADMIN, Role.ACCOUNTANT):
        raise PermissionDenied("Only an admin or an accountant may read the audit log")


def require_writer(actor: Membership) -> None:
    """Accountants read money and reports; they change nothing."""
    if actor.role == Role.ACCOUNTANT:
        raise PermissionDenied("An accountant has read-only access")


# Who refunds, as a sentence says it ("refunds are made by administrators").
REFUND_ROLE_WORDS = {Role.ADMIN.value: "administrators", Role.FRONT_DESK.value: "the front desk"}


def require_refund_permission(actor: Membership) -> None:
    """By default only an admin refunds; `refund_roles` widens that. An accountant never may."""
    roles = actor.organization.refund_roles
    if actor.role == Role.ACCOUNTANT or actor.role not in roles:
        who = " and ".join(REFUND_ROLE_WORDS.get(r, r) for r in roles) or "administrators"
        raise RefundNotPermitted(
            f"Your role ({Role(actor.role).label.lower()}) may not refund in this "
            f"organization: refunds are made by {who}")


def may_refund(actor: Membership) -> bool:
    try:
        require_refund_permission(actor)
    except RefundNotPermitted:
        return False
    return True


# ISO 4217 codes that are not money a business takes: precious metals, bond-market units, SDR,
# the testing code and "no currency". Their minor unit is "N.A.", which Babel reports as 2.
NOT_MONEY = frozenset({"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU",
                       "XTS", "XUA", "XXX"})
# Names the zoneinfo database answers to that are not a place: the machine's own zone, the
# POSIX rules file, "Factory" (a placeholder zone), and the posix/ and right/ duplicate trees.
NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})


def validate_currency(currency: str) -> str:
    currency = currency.strip().upper()
    if (len(currency) != 3 or not (currency.isascii() and currency.isalpha())
            or get_currency_name(currency) == currency or currency in NOT_MONEY):
        raise ValidationFailed("currency", "is not an ISO 4217 currency code")
    return currency


def validate_timezone(name: str) -> str:
    message = "is not an IANA time zone such as America/New_York"
    if name in NOT_A_PLACE or name.startswith(("posix/", "right/")):
        raise ValidationFailed("timezone", message)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationFailed("timezone", message) from None
    return name


def validate_name(value: str, *, field: str = "name") -> str:
    """The service's own check for callers that bypass the API schemas (the CLI, the demo)."""
    try:
        value = clean_line(value)
    except ValueError as exc:
        raise ValidationFailed(field, str(exc)) from None
    if len(value) > NAME_MAX:
        raise ValidationFailed(field, f"at most {NAME_MAX} characters")
    return value


def validate_email_address(value: str) -> str:
    try:
        value = clean_email(value)
    except ValueError as exc:
        raise ValidationFailed("email", str(exc)) from None
    if len(value) > EMAIL_MAX:
        raise ValidationFailed("email", f"at most {EMAIL_MAX} characters")
    return value


def validate_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in Role.values]
    if unknown:
        raise ValidationFailed("refund_roles", f"unknown role {unknown[0]!r}")
    if Role.ACCOUNTANT in roles:
        raise ValidationFailed("refund_roles", "an accountant may never refund")
    if not roles:
        # Nobody able to refund would strand every refund the business owes.
        raise ValidationFailed("refund_roles", "at least one role must be allowed to refund")
    return sorted(set(roles), key=Role.values.index)


@transaction.atomic
def issue_token(*, membership: Membership, actor: Any | None = None) -> NewToken:
    token = "kassa_" + secrets.token_urlsafe(32)
    api_token = ApiToken.objects.create(
        organization_id=membership.organization_id, membership=membership,
        digest=token_digest(token), prefix=token[:12]
    )
    record(organization_id=membership.organization_id, actor=actor, action="token.issued",
           object=f"token:{api_token.pk}",
           detail={"user": membership.user_id, "prefix": api_token.prefix})
    return NewToken(token=token, api_token=api_token)


@transaction.atomic
def create_user(
    *, organization: Organization, email: str, role: str, password: str | None = None,
    actor: Any | None = None,
) -> tuple[Membership, NewToken]:
    """A person of the organization, with their first API token. `actor`: the admin who added
    them (None: the command line, a new organization's first admin)."""
    if role not in Role.values:
        raise ValidationFailed("role", f"must be one of {', '.join(Role.values)}")
    email = validate_email_address(email)
    if User.objects.filter(username=email).exists():
        raise EmailTaken(f"{email} is taken", field="email")
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=email, email=email, password=password)
    except IntegrityError:
        raise EmailTaken(f"{email} is taken", field="email") from None
    if password is None:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    record(organization_id=organization.pk, actor=actor, action="user.created",
           object=f"user:{user.pk}", detail={"email": email, "role": role})
    return membership, issue_token(membership=membership, actor=actor)


@transaction.atomic
def create_center(*, organization: Organization, name: str, actor: Any | None = None) -> Center:
    name = validate_name(name)
    if Center.objects.filter(organization=organization, name=name).exists():
        raise CenterNameTaken(f"{name!r} exists already", field="name")
    # The ledger opens the new center's chart of accounts as the row is saved (its
    # post_save receiver), in this transaction: tenancy sits below the ledger.
    center = Center.objects.create(organization=organization, name=name)
    record(organization_id=organization.pk, actor=actor, action="center.created",
           object=f"center:{center.pk}", detail={"name": name})
    return center


def add_center(*, actor: Membership, name: str) -> Center:
    require_admin(actor)
    return create_center(organization=actor.organization, name=name, actor=actor.user)


@transaction.atomic
def create_organization(
    *,
    name: str,
    admin_email: str,
    admin_password: str | None = None,
    currency: str = "USD",
    timezone: str = "UTC",
    center_name: str = "Main",
) -> tuple[Organization, Membership, NewToken]:
    organization = Organization.objects.create(
        name=validate_name(name), currency=validate_currency(currency),
        timezone=validate_timezone(timezone),
    )
    record(organization_id=organization.pk, actor=None, action="organization.created",
           object=f"organization:{organization.pk}",
           detail={"name": organization.name, "currency": organization.currency})
    create_center(organization=organization, name=center_name)
    membership, token = create_user(
        organization=organization, email=admin_email, role=Role.ADMIN, password=admin_password
    )
    return organization, membership, token


# The organization's settings, as the audit log tells what a change changed.
SETTINGS = ("currency", "timezone", "allow_multiple_package_refunds", "refund_roles",
            "business_kind")


@transaction.atomic
def update_settings(*, actor: Membership, changes: dict[str, Any]) -> Organization:
    require_admin(actor)
    organization = lock_organization(actor.organization_id)
    before = {name: getattr(organization, name) for name in SETTINGS}
    if "currency" in changes:
        currency = validate_currency(changes["currency"])
        # Amounts are stored in minor units of the currency: changing it under existing
        # money would change what every stored number means.
        if currency != organization.currency and organization.centers.filter(
            invoice__isnull=False
        ).exists():
            raise ValidationFailed("currency", "cannot change once invoices exist")
        # Package templates hold prices and benefit values in minor units too (by the reverse
        # relation's name: tenancy sits below the packages app).
        if currency != organization.currency and organization.packagetemplate_set.exists():
            raise ValidationFailed("currency", "cannot change once package templates exist")
        organization.currency = currency
    if "timezone" in changes:
        organization.timezone = validate_timezone(changes["timezone"])
    if "allow_multiple_package_refunds" in changes:
        organization.allow_multiple_package_refunds = bool(
            changes["allow_multiple_package_refunds"])
    if "refund_roles" in changes:
        organization.refund_roles = validate_roles(list(changes["refund_roles"]))
    _apply_policy(organization, changes)
    if "business_kind" in changes:
        if changes["business_kind"] not in BusinessKind.values:
            raise ValidationFailed("business_kind", "must be funeral_home or spa")
        organization.business_kind = changes["business_kind"]
    organization.save()
    changed = {name: getattr(organization, name) for name in SETTINGS
               if getattr(organization, name) != before[name]}
    if changed:
        record(organization_id=organization.pk, actor=actor.user, action="settings.changed",
               object=f"organization:{organization.pk}",
               detail={"changed": changed, "was": {name: before[name] for name in changed}})
    return organization


def _apply_policy(organization: Organization, changes: dict[str, Any]) -> None:
    """The refund policy (DESIGN.md, "Governed refunds"), each field checked before any is
    set; the caller saves nothing when one fails (the whole change is one transaction)."""
    from kassa.core.money import parse_amount

    currency = organization.currency
    if "approval_threshold" in changes:
        value = changes["approval_threshold"]
        organization.approval_threshold_minor = (
            None if value is None else parse_amount(str(value), currency,
                                                    field="approval_threshold"))
    for field in ("request_roles", "approver_roles"):
        if field in changes:
            roles = changes[field]
            if not isinstance(roles, list) or any(r not in Role.values for r in roles):
                raise ValidationFailed(field, f"must be a list of {', '.join(Role.values)}")
            if field == "approver_roles" and (not roles or Role.ACCOUNTANT in roles):
                raise ValidationFailed(field, "needs at least one role that is not accountant")
            setattr(organization, field, list(dict.fromkeys(roles)))
    if "daily_refund_limit" in changes:
        limits = changes["daily_refund_limit"]
        if limits is not None:
            if not isinstance(limits, dict) or any(r not in Role.values for r in limits):
                raise ValidationFailed("daily_refund_limit",
                                       "must map roles to amounts, like {\"front_desk\": "
                                       "\"200.00\"}")
            limits = {role: parse_amount(str(amount), currency,
                                         field=f"daily_refund_limit.{role}")
                      for role, amount in limits.items()}
        organization.daily_refund_limit = limits
    if "online_refund_window_days" in changes:
        days = changes["online_refund_window_days"]
        if days is not None and (not isinstance(days, int) or isinstance(days, bool)
                                 or not 1 <= days <= 3650):
            raise ValidationFailed("online_refund_window_days",
                                   "must be a whole number of days from 1 to 3650, or null")
        organization.online_refund_window_days = days
    if "request_expiry_days" in changes:
        days = changes["request_expiry_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            raise ValidationFailed("request_expiry_days",
                                   "must be a whole number of days from 1 to 365")
        organization.request_expiry_days = days
    if "reason_codes" in changes:
        organization.reason_codes = _reason_codes(changes["reason_codes"])


def _reason_codes(codes: Any) -> list[dict[str, Any]]:
    if not isinstance(codes, list) or len(codes) > 50:
        raise ValidationFailed("reason_codes", "must be a list of at most 50 codes")
    seen: set[str] = set()
    clean = []
    for i, item in enumerate(codes):
        field = f"reason_codes[{i}]"
        if not isinstance(item, dict) or set(item) - {"code", "label", "note_required"}:
            raise ValidationFailed(field, "must be {code, label, note_required}")
        code, label = str(item.get("code") or "").strip(), str(item.get("label") or "").strip()
        if not code or len(code) > 40 or not code.replace("_", "").replace("-", "").isalnum():
            raise ValidationFailed(f"{field}.code", "must be 1 to 40 letters, digits, - or _")
        if code in seen:
            raise ValidationFailed(f"{field}.code", f"{code} is listed twice")
        if not label or len(label) > 100:
            raise ValidationFailed(f"{field}.label", "is required (at most 100 characters)")
        if not isinstance(item.get("note_required", False), bool):
            raise ValidationFailed(f"{field}.note_required", "must be true or false")
        seen.add(code)
        clean.append({"code": code, "label": label,
                      "note_required": bool(item.get("note_required", False))})
    return clean
