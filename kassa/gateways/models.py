"""The sandbox gateway's own state: what a processor's test mode would keep on its side.

Kept in the database (not in memory) so that the web process, the worker and `kassa sandbox
settle` all see the same charges and refunds.
"""

from __future__ import annotations

from django.db import models


class SandboxCharge(models.Model):
    reference = models.CharField(max_length=40, unique=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=40)
    # succeeded, or processing until `kassa sandbox decide` (source sandbox_processing)
    state = models.CharField(max_length=12, default="succeeded")
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxRefund(models.Model):
    reference = models.CharField(max_length=40, unique=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    charge = models.ForeignKey(SandboxCharge, on_delete=models.CASCADE, related_name="refunds")
    amount_minor = models.BigIntegerField()
    state = models.CharField(max_length=10, default="pending")
    settle_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
