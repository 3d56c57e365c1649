"""Outgoing webhooks: the endpoints an organization's integrators registered, the events Kassa
emitted, and one delivery of each event to each endpoint that listens for its type.

An event is written in the transaction of the change it tells of (its body, the exact bytes
every try sends, is fixed then: the same `id` on every try). Its deliveries are the outbox:
each knows whether it was delivered, how often it was tried and when it is due again; the
delivery task is idempotent (its first step is a conditional claim) and a sweep re-enqueues
whatever is overdue, so a receiver that is down, or a worker killed mid-delivery, loses nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EventType(models.TextChoices):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_CREATED = "refund.created"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    PACKAGE_REFUNDED = "package.refunded"
    DISPUTE_CREATED = "dispute.created"
    DISPUTE_CLOSED = "dispute.closed"
    CREDIT_CHANGED = "credit.changed"
    REFUND_REQUEST_CREATED = "refund_request.created"
    REFUND_REQUEST_DECIDED = "refund_request.decided"


class WebhookEndpoint(models.Model):
    """Where an organization wants to hear of events, and the secret that signs them. The
    secret is kept encrypted (kassa.webhooks.secret_box); the API shows it once, when made."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)  # EventType values, each once, sorted
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")


class WebhookEvent(models.Model):
    """Something that happened, as the receivers are told of it. `uid` is the event's `id` in
    its body (`evt_…`): chosen before the row is written, so the body is complete in the one
    INSERT, and the same on every try and to every endpoint."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    uid = models.CharField(max_length=40)
    type = models.CharField(max_length=40, choices=EventType.choices)
    created_at = models.DateTimeField()
    body = models.TextField()  # the JSON document every try POSTs, byte for byte

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["uid", "organization"], name="webhook_event_uid"),
        ]
        indexes = [models.Index(fields=["created_at"], name="webhook_events_by_age")]  # prune


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be delivered"
    SENDING = "sending", "Being delivered"
    DELIVERED = "delivered", "Delivered"
    GAVE_UP = "gave_up", "Gave up after three days"


class WebhookDelivery(models.Model):
    """One event to one endpoint: retried on anything but a 2xx until delivered or three days
    old."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    # Indexed by the list's (endpoint, -id) below.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries", db_index=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "event", "endpoint"],
                                    name="one_delivery_per_event_and_endpoint"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_deliveries_due"),
            models.Index(fields=["endpoint", "-id"], name="webhook_deliveries_listed"),
        ]
