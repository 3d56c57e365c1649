"""Stored answers to POST requests that carried an Idempotency-Key, and the leases of the
worker's periodic work."""

from __future__ import annotations

import datetime as dt

from django.db import models

# How long an Idempotency-Key's answer is kept; then the key may be used again.
KEY_LIFE = dt.timedelta(hours=24)


class IdempotentRequest(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path and body
    status_code = models.PositiveSmallIntegerField(null=True)  # null while the first is running
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now_add=True)
    # When the request now running took the key: the first, or a retry that took over a
    # claim that died unanswered.
    claimed_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="idempotency_key_unique")
        ]


class Lease(models.Model):
    """A piece of periodic work the whole installation does once per interval, however many
    processes could: the one whose conditional update moves `due_at` on does it."""

    name = models.CharField(max_length=64, unique=True)
    due_at = models.DateTimeField()


class Installation(models.Model):
    """This database's own name among every copy of Kassa (one row, made when it is migrated):
    staging, production and a restored backup each have their own, so the idempotency keys
    they send one shared processor account can never be each other's."""

    key = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
