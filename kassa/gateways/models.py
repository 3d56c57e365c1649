"""The sandbox gateway's own state: what a processor's test mode would keep on its side.

Kept in the database (not in memory) so that the web process, the worker and `kassa sandbox
settle` all see the same charges and refunds. Each row names the organization whose processor
account it stands for, as every tenant table does (DESIGN.md, "Scale (v2)"); a reference or a
key is unique at the gateway whatever the organization, and the lookups go by it alone (the
unique indexes lead with it), but the organization is in each unique key so that the tables
can be distributed by organization.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SandboxCharge(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    reference = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=200)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=40)
    # succeeded, or processing until `kassa sandbox decide` (source sandbox_processing)
    state = models.CharField(max_length=12, default="succeeded")
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "organization"],
                                    name="sandbox_charge_reference_unique"),
            models.UniqueConstraint(fields=["idempotency_key", "organization"],
                                    name="sandbox_charge_key_unique"),
        ]


class SandboxRefund(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    reference = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=200)
    charge = models.ForeignKey(SandboxCharge, on_delete=models.CASCADE, related_name="refunds")
    amount_minor = models.BigIntegerField()
    state = models.CharField(max_length=10, default="pending")
    settle_after = models.DateTimeField()
    # Made at the processor's dashboard, not by Kassa (`kassa sandbox refund`).
    from_dashboard = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "organization"],
                                    name="sandbox_refund_reference_unique"),
            models.UniqueConstraint(fields=["idempotency_key", "organization"],
                                    name="sandbox_refund_key_unique"),
        ]


class SandboxDispute(models.Model):
    """A chargeback of a sandbox charge (`kassa sandbox dispute`), as a processor keeps it."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    reference = models.CharField(max_length=40)
    charge = models.ForeignKey(SandboxCharge, on_delete=models.CASCADE, related_name="disputes")
    amount_minor = models.BigIntegerField()
    reason = models.CharField(max_length=40, default="fraudulent")
    # needs_response until decided: won or lost
    status = models.CharField(max_length=16, default="needs_response")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "organization"],
                                    name="sandbox_dispute_reference_unique"),
        ]


class SandboxBalanceTransaction(models.Model):
    """One movement of the sandbox merchant's balance, as a processor lists them: written by the
    sandbox in the same transaction as the charge, refund, dispute or payout that made it."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    reference = models.CharField(max_length=40)
    type = models.CharField(max_length=20)  # a kassa.gateways.base.LineType
    amount_minor = models.BigIntegerField()  # signed: + into the balance, − out of it
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=40)  # the charge, refund, dispute or payout
    charge_reference = models.CharField(max_length=40, blank=True)
    # The payout that paid it out, once one has (a payout's own line names itself).
    payout_reference = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "organization"],
                                    name="sandbox_balance_reference_unique"),
        ]
        indexes = [models.Index(fields=["organization", "created_at"],
                                name="sandbox_balance_created_idx")]
