"""The audit log: one append-only row per write, hash-chained per organization.

`AuditEntry.hash` is SHA-256 over the previous entry's hash (of the same organization) and the
entry's own fields (`kassa.audit.chain.digest`), so changing, removing or inserting a row
breaks every link after it, and `kassa verify` names the first. `seq` numbers the
organization's entries 1, 2, 3… (a removed row is a gap). `AuditChain` is the head of each
organization's chain: its last `seq` and `hash`, and the row that is locked so that two
transactions never link to the same predecessor. On PostgreSQL a trigger refuses UPDATE and
DELETE on the entries (migration 0002).

`actor_id` is a plain integer, not a foreign key: the row must never change, so nothing may
cascade into it (null: the system — the worker, the gateway's news).
"""

from __future__ import annotations

from django.db import models

GENESIS = "0" * 64  # the "previous hash" of an organization's first entry


class AuditChain(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization"], name="audit_chain_one")]


class AuditEntry(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True)
    action = models.CharField(max_length=64)  # "refund.created"
    object = models.CharField(max_length=64)  # "refund:12"
    detail = models.JSONField(default=dict)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "seq"],
                                               name="audit_entry_seq")]
        indexes = [models.Index(fields=["organization", "object"], name="audit_by_object"),
                   models.Index(fields=["organization", "actor_id"], name="audit_by_actor")]
