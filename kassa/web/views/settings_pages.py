"""The organization's settings page (admin only): its settings where the article places them —
*Allow to refund a package multiple times* under Packages, the roles allowed to refund — its
currency and time zone, its centers and its users.

Each form posts to its own address and calls one service (update_settings, add_center,
create_user); a rule the service refuses comes back beside its field and nothing is saved.
After a success the page redirects to itself (post/redirect/get) with a message.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import available_timezones

from babel.numbers import list_currencies
from django import forms
from django.contrib import messages
from django.contrib.auth.password_validation import validate_password
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from kassa.core.errors import DomainError
from kassa.core.money import format_decimal_string
from kassa.tenancy.models import BusinessKind, Membership, Organization, Role
from kassa.tenancy.selectors import centers, members
from kassa.tenancy.services import add_center, create_user, update_settings
from kassa.web.access import admin_page
from kassa.web.forms import show_error, typed_amount
from kassa.web.views.webhook_pages import webhook_context

TIMEZONES = sorted(available_timezones())
CURRENCIES = sorted(list_currencies())


class RoleCheckboxes(forms.CheckboxSelectMultiple):
    """The roles as checkboxes; accountant is shown, disabled: an accountant never refunds."""

    def create_option(self, name: str, value: Any, label: Any, selected: Any, index: int,
                      subindex: int | None = None, attrs: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value == Role.ACCOUNTANT:
            option["attrs"]["disabled"] = True
            option["label"] = f"{label} (never allowed)"
        return option


class PlainForm(forms.Form):
    """Labels without a trailing colon, as on the other pages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SettingsForm(PlainForm):
    business_kind = forms.ChoiceField(
        label="Kind of business", choices=BusinessKind.choices, widget=forms.RadioSelect,
        help_text="Chooses the words of the pages and receipts: a funeral home's families and "
                  "cases, a spa's guests and packages.")
    allow_multiple_package_refunds = forms.BooleanField(
        label="Allow to refund a package multiple times", required=False,
        help_text="Off: a package can be refunded once.")
    refund_roles = forms.MultipleChoiceField(
        label="Roles allowed to refund", choices=Role.choices, required=False,
        widget=RoleCheckboxes)
    currency = forms.CharField(
        label="Currency", max_length=8, help_text="ISO 4217 code, such as USD.",
        widget=forms.TextInput(attrs={"list": "currencies", "autocomplete": "off"}))
    timezone = forms.CharField(
        label="Time zone", max_length=64, help_text="IANA name, such as America/New_York.",
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}))

    @classmethod
    def of(cls, organization: Organization) -> SettingsForm:
        return cls(initial={
            "allow_multiple_package_refunds": organization.allow_multiple_package_refunds,
            "refund_roles": list(organization.refund_roles),
            "currency": organization.currency, "timezone": organization.timezone,
            "business_kind": organization.business_kind})


# Roles that may hold a daily refund limit (an accountant never refunds).
LIMIT_ROLES = [(value, label) for value, label in Role.choices if value != Role.ACCOUNTANT]


class PolicyForm(PlainForm):
    """The refund policy (DESIGN.md, "Governed refunds"). The form only parses what a person
    types; every rule is `update_settings`'s (as for the API's PATCH /settings), whose error
    comes back beside its field."""

    approval_threshold = forms.CharField(
        label="Approval threshold", required=False, max_length=32,
        help_text="Refunds above it are asked for and approved by an approver. Empty: none.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    request_roles = forms.MultipleChoiceField(
        label="Roles that ask for refunds they may not make", choices=Role.choices,
        required=False, widget=RoleCheckboxes)
    approver_roles = forms.MultipleChoiceField(
        label="Roles that approve refund requests", choices=Role.choices, required=False,
        widget=RoleCheckboxes)
    online_refund_window_days = forms.CharField(
        label="Online refund window (days)", required=False, max_length=8,
        help_text="An online refund of an older payment is refused (offline is still "
                  "possible). Empty: no window.",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    request_expiry_days = forms.CharField(
        label="Requests expire after (days)", max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    reason_codes = forms.CharField(
        label="Reason codes", required=False, max_length=10_000,
        help_text="One a line: code | label, and | note required when the internal note must "
                  "say why. Empty: a free-text reason is enough.",
        widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for role, label in LIMIT_ROLES:
            self.fields[f"limit_{role}"] = forms.CharField(
                label=f"Daily refund limit, {label.lower()}", required=False, max_length=32,
                help_text="Per person and business day. Empty: no limit.",
                widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))

    @classmethod
    def of(cls, organization: Organization) -> PolicyForm:
        money = lambda minor: format_decimal_string(minor, organization.currency)  # noqa: E731
        limits = organization.daily_refund_limit or {}
        return cls(initial={
            "approval_threshold": (money(organization.approval_threshold_minor)
                                   if organization.approval_threshold_minor is not None else ""),
            "request_roles": list(organization.request_roles or []),
            "approver_roles": list(organization.approver_roles or []),
            "online_refund_window_days": organization.online_refund_window_days or "",
            "request_expiry_days": organization.request_expiry_days,
            "reason_codes": "\n".join(
                f"{c['code']} | {c['label']}" + (" | note required" if c.get("note_required")
                                                 else "")
                for c in organization.reason_codes or []),
            **{f"limit_{role}": money(int(limits[role])) for role, _ in LIMIT_ROLES
               if limits.get(role) is not None}})

    def changes(self, organization: Organization) -> dict[str, Any]:
        """The policy as `update_settings` takes it (the API's words), typed money made plain."""
        data = self.cleaned_data

        def days(text: str) -> Any:
            text = text.strip()
            return int(text) if text.isdigit() else (text or None)

        codes = []
        for line in data["reason_codes"].splitlines():
            if not line.strip():
                continue
            code, _, rest = line.partition("|")
            label, _, note = rest.partition("|")
            codes.append({"code": code.strip(), "label": label.strip(),
                          "note_required": bool(note.strip())})
        threshold = data["approval_threshold"].strip()
        return {
            "approval_threshold": typed_amount(threshold, organization) if threshold else None,
            "request_roles": data["request_roles"], "approver_roles": data["approver_roles"],
            "daily_refund_limit": {
                role: typed_amount(data[f"limit_{role}"], organization)
                for role, _ in LIMIT_ROLES if data[f"limit_{role}"].strip()} or None,
            "online_refund_window_days": days(data["online_refund_window_days"]),
            "request_expiry_days": days(data["request_expiry_days"]),
            "reason_codes": codes,
        }


def policy_error_fields(error: DomainError) -> dict[str, str]:
    """The service's field names (the API's) → the form's."""
    name = error.field or ""
    if name.startswith("daily_refund_limit."):
        return {name: "limit_" + name.removeprefix("daily_refund_limit.")}
    if name.startswith("reason_codes"):
        return {name: "reason_codes"}
    return {"daily_refund_limit": "limit_front_desk"}


class CenterForm(PlainForm):
    name = forms.CharField(label="Center name", max_length=200)


class UserForm(PlainForm):
    email = forms.EmailField(label="E-mail", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.FRONT_DESK)
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        validate_password(password)
        return password


def render_settings(request: HttpRequest, membership: Membership, *,
                    settings_form: SettingsForm | None = None,
                    policy_form: PolicyForm | None = None,
                    center_form: CenterForm | None = None,
                    user_form: UserForm | None = None) -> HttpResponse:
    organization = membership.organization
    return render(request, "web/settings.html", {
        "organization": organization,
        "settings_form": settings_form or SettingsForm.of(organization),
        "policy_form": policy_form or PolicyForm.of(organization),
        "center_form": center_form or CenterForm(),
        "user_form": user_form or UserForm(),
        "centers": centers(organization),
        "members": members(organization),
        "timezones": TIMEZONES, "currencies": CURRENCIES,
        **webhook_context(membership),
    })


@admin_page
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    if request.method != "POST":
        return render_settings(request, membership)
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            update_settings(actor=membership, changes=form.cleaned_data)
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("settings")
    return render_settings(request, membership, settings_form=form)


@admin_page
@require_POST
def policy_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The refund policy's form: the same service as PATCH /settings."""
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            update_settings(actor=membership, changes=form.changes(membership.organization))
        except DomainError as error:
            message = getattr(error, "message", None) or error.detail
            line = re.fullmatch(r"reason_codes\[(\d+)\].*", error.field or "")
            if line:  # which line of the text area
                error.message = f"Line {int(line.group(1)) + 1}: {message}"  # type: ignore[attr-defined]
            show_error(form, error, fields=policy_error_fields(error),
                       organization=membership.organization)
        else:
            messages.success(request, "Refund policy saved.")
            return redirect("settings")
    return render_settings(request, membership, policy_form=form)


@admin_page
@require_POST
def add_center_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = CenterForm(request.POST)
    if form.is_valid():
        try:
            center = add_center(actor=membership, name=form.cleaned_data["name"])
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, f"Center {center.name} added.")
            return redirect("settings")
    return render_settings(request, membership, center_form=form)


@admin_page
@require_POST
def add_user_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = UserForm(request.POST)
    if form.is_valid():
        try:
            added, _token = create_user(organization=membership.organization,
                                        email=form.cleaned_data["email"],
                                        role=form.cleaned_data["role"],
                                        password=form.cleaned_data["password"],
                                        actor=membership.user)
        except DomainError as error:
            show_error(form, error)
        else:
            messages.success(request, f"{added.user.email} added as {added.get_role_display()}.")
            return redirect("settings")
    return render_settings(request, membership, user_form=form)


urlpatterns = [
    path("settings/", settings_page, name="settings"),
    path("settings/policy/", policy_page, name="settings_policy"),
    path("settings/centers/", add_center_page, name="settings_add_center"),
    path("settings/users/", add_user_page, name="settings_add_user"),
]
