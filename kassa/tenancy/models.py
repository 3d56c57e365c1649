"""Organizations (tenants), their centers, the people in them and their API tokens.

A user is Django's own; a Membership gives that user one role in one organization. An API token
belongs to a membership and is stored as a SHA-256 digest: the plain token is shown once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    FRONT_DESK = "front_desk", "Front desk"
    ACCOUNTANT = "accountant", "Accountant"


class BusinessKind(models.TextChoices):
    """Chooses the words of the pages and receipts (DESIGN.md, "The front desk's own words")."""

    FUNERAL_HOME = "funeral_home", "Funeral home"
    SPA = "spa", "Spa"


def default_refund_roles() -> list[str]:
    return [Role.ADMIN.value]


def default_request_roles() -> list[str]:
    return [Role.FRONT_DESK.value]


def default_approver_roles() -> list[str]:
    return [Role.ADMIN.value]


def no_reason_codes() -> list[dict[str, object]]:
    return []


class Organization(models.Model):
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, default="USD")
    timezone = models.CharField(max_length=64, default="UTC")
    locale = models.CharField(max_length=16, default="en_US")
    allow_multiple_package_refunds = models.BooleanField(default=True)
    refund_roles = models.JSONField(default=default_refund_roles)
    # The refund policy (DESIGN.md, "Governed refunds"): who asks, who approves, and the rules.
    approval_threshold_minor = models.BigIntegerField(null=True, blank=True)
    request_roles = models.JSONField(default=default_request_roles)
    approver_roles = models.JSONField(default=default_approver_roles)
    daily_refund_limit = models.JSONField(null=True, blank=True)  # {role: minor units}
    online_refund_window_days = models.PositiveIntegerField(null=True, blank=True)
    reason_codes = models.JSONField(default=no_reason_codes)  # [{code, label, note_required}]
    request_expiry_days = models.PositiveIntegerField(default=7)
    business_kind = models.CharField(max_length=20, choices=BusinessKind.choices,
                                     default=BusinessKind.SPA)
    # The next invoice number; taken under the organization's row lock.
    next_invoice_number = models.PositiveBigIntegerField(default=1001)
    # One more with every change of the organization's webhook endpoints: a process keeps the
    # endpoints it read under the version it read them at (kassa.webhooks.events), and a money
    # transaction reads the version along with the invoice it locks.
    webhooks_version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Center(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="centers")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="center_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.organization}"


class ApiToken(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="tokens")
    digest = models.CharField(max_length=64)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A digest of 256 random bits is unique anyway; the organization is in the key for
            # sharding, after the digest so that sign-in by token finds it with this index.
            models.UniqueConstraint(fields=["digest", "organization"],
                                    name="api_token_digest_unique")
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… for {self.membership}"
