"""Refunds and their receipts.

A Refund is money given back on an invoice: of a payment (online back through the gateway, or
recorded offline) or, later, of a package's balance. An online refund is a reservation until the
gateway settles it: posted to *refunds in transit* when issued, then moved to the tender when it
succeeds, or reversed when it fails.

The rows are also the outbox. A refund knows where its gateway call stands (`gateway_state`,
`attempts`, `next_attempt_at`), a Receipt whether it was sent; the tasks that act on them are
idempotent and a periodic sweep re-enqueues whatever is overdue, so that nothing is lost when
the mail server, the gateway or a worker is down.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from kassa.core.fields import TenantOneToOneField


class RefundType(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    CREDIT = "credit", "To account credit"  # into the customer's credit: no money moves


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    RECORDED = "recorded", "Recorded"


class OfflineMethod(models.TextChoices):
    CHECK = "check", "Check"
    CASH = "cash", "Cash"
    INSURANCE = "insurance", "Insurance"
    OTHER = "other", "Other"


class GatewayState(models.TextChoices):
    NONE = "", "Not an online refund"
    TO_CALL = "to_call", "Gateway call due"
    CALLING = "calling", "Gateway call under way"
    CALLED = "called", "Gateway has the refund"
    DONE = "done", "Gateway outcome recorded"
    STUCK = "stuck", "Gave up retrying: needs a person"


class RefundOrigin(models.TextChoices):
    KASSA = "kassa", "Made in Kassa"
    GATEWAY = "gateway", "Made at the processor"  # its dashboard, say: booked from its news


class Refund(models.Model):
    # Indexed first in (organization, created_at), which the daily report's refund count reads.
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT)
    # None for a refund out of a customer's credit (it refunds no invoice).
    invoice = models.ForeignKey("billing.Invoice", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="refunds")
    # Set on a refund out of credit: whose credit it gives back.
    customer = models.ForeignKey("billing.Customer", null=True, blank=True,
                                 on_delete=models.PROTECT, related_name="+")
    from_credit = models.BooleanField(default=False)
    payee = models.CharField(max_length=200, blank=True)  # who receives a check out of credit
    override_reason = models.CharField(max_length=500, blank=True)
    # The parts of one split refund share it (`POST /invoices/{id}/refunds`).
    split_group = models.CharField(max_length=32, blank=True)
    # A refund to credit that took the place of a refund that failed after it succeeded.
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    payment = models.ForeignKey(
        "billing.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    package = models.ForeignKey(
        "packages.Package", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    close_package = models.BooleanField(default=False)
    type = models.CharField(max_length=10, choices=RefundType.choices)
    origin = models.CharField(max_length=10, choices=RefundOrigin.choices,
                              default=RefundOrigin.KASSA)
    status = models.CharField(max_length=10, choices=RefundStatus.choices)
    # amount is what the refund takes off (a payment's refundable, a package's balance); tax is
    # the tax returned with a package refund; the customer gets total = amount + tax.
    amount_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField(default=0)
    method = models.CharField(max_length=10)  # the tender the money leaves by
    reason = models.CharField(max_length=500)
    internal_note = models.TextField(blank=True, max_length=2000)
    note = models.TextField(blank=True, max_length=2000)
    decrease_balance_owed = models.BooleanField(default=False)
    credit_net_minor = models.BigIntegerField(default=0)
    credit_tax_minor = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)

    # The gateway call, for online refunds (the outbox).
    gateway = models.CharField(max_length=20, blank=True)
    # Looked up by equality (a webhook's refund id): a plain index, no LIKE copy (Meta).
    gateway_reference = models.CharField(max_length=200, blank=True)
    gateway_state = models.CharField(max_length=10, choices=GatewayState.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Refunds made before the keys named the installation keep the key they were called with.
    keyed_by_installation = models.BooleanField(default=True)
    # The Idempotency-Key of the request that made it: a retry of that request after it died
    # answers this refund instead of making a second.
    request_key = models.CharField(max_length=255, blank=True)

    # The journal entries this refund wrote, so a failure can reverse exactly them.
    issue_entry = TenantOneToOneField(
        "ledger.JournalEntry", null=True, on_delete=models.PROTECT, related_name="+"
    )
    settle_entry = TenantOneToOneField(
        "ledger.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(tax_minor__gte=0), name="refund_tax_not_negative"),
            models.CheckConstraint(
                condition=Q(invoice__isnull=False) | (Q(from_credit=True)
                                                      & Q(customer__isnull=False)),
                name="refund_of_an_invoice_or_a_credit"),
            # At most one pending online refund per payment, whatever the application does.
            models.UniqueConstraint(fields=["organization", "payment"],
                                    condition=Q(status="pending"),
                                    name="one_pending_refund_per_payment"),
            models.UniqueConstraint(fields=["organization", "issue_entry"],
                                    name="refund_issue_entry_unique"),
            models.UniqueConstraint(fields=["organization", "settle_entry"],
                                    name="refund_settle_entry_unique"),
        ]
        indexes = [models.Index(fields=["gateway_state", "next_attempt_at"]),
                   models.Index(fields=["organization", "request_key"]),
                   models.Index(fields=["organization", "created_at"],
                                name="refund_org_created_idx"),
                   models.Index(fields=["gateway_reference"], name="refund_gateway_ref_idx"),
                   # The daily report counts a failed refund against the day it failed.
                   models.Index(fields=["organization", "settled_at"],
                                condition=Q(status="failed"), name="refund_failed_day_idx")]

    def __str__(self) -> str:
        return f"Refund {self.pk} ({self.type}, {self.status})"

    @property
    def total_minor(self) -> int:
        return self.amount_minor + self.tax_minor


class ReceiptKind(models.TextChoices):
    RECEIPT = "receipt", "Refund receipt"
    FAILURE_NOTICE = "failure_notice", "Refund failed notice"
    PAID_ANOTHER_WAY = "paid_another_way", "Refund paid another way"


class ReceiptStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    GAVE_UP = "gave_up", "Gave up: needs a person"


class OutgoingMail(models.Model):
    """An e-mail's outbox row: whom it goes to, and where its sending stands (claimed by a
    task, retried with backoff while the mail server is down, sent once)."""

    to_email = models.EmailField(max_length=254)
    status = models.CharField(max_length=10, choices=ReceiptStatus.choices,
                              default=ReceiptStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        abstract = True


class Receipt(OutgoingMail):
    """One e-mail to the customer about one refund event; unique per (refund, kind)."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="receipts")
    kind = models.CharField(max_length=20, choices=ReceiptKind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "refund", "kind"],
                                    name="one_receipt_per_event")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class DisputeStatus(models.TextChoices):
    WARNING = "warning", "Inquiry (no money withdrawn)"
    NEEDS_RESPONSE = "needs_response", "Needs a response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"


OPEN_DISPUTE = (DisputeStatus.WARNING, DisputeStatus.NEEDS_RESPONSE, DisputeStatus.UNDER_REVIEW)


class Settlement(models.TextChoices):
    NONE = "", "Not settled"
    REBILL = "rebill", "Re-billed to the customer"
    WRITE_OFF = "write_off", "Written off as a loss"


class Dispute(models.Model):
    """A chargeback of an online payment, as the processor tells it (`kassa.refunds.disputes`
    owns every change). The funds it withdrew sit in `disputed_funds` until it is won (they
    come back) or lost and settled (re-billed to the customer, or written off)."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT,
                                related_name="disputes")
    invoice = models.ForeignKey("billing.Invoice", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="disputes")
    amount_minor = models.BigIntegerField()
    reason = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=DisputeStatus.choices)
    gateway = models.CharField(max_length=20)
    gateway_reference = models.CharField(max_length=200)
    respond_by = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # Posted when the processor withdrew the funds (not for an inquiry), and reversed if won.
    withdraw_entry = TenantOneToOneField(
        "ledger.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    settlement = models.CharField(max_length=10, choices=Settlement.choices, blank=True,
                                  default=Settlement.NONE)
    settlement_reason = models.CharField(max_length=500, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    settle_entry = TenantOneToOneField(
        "ledger.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0),
                                   name="dispute_amount_positive"),
            models.UniqueConstraint(fields=["gateway_reference", "gateway", "organization"],
                                    name="dispute_reference_unique"),
        ]
        indexes = [models.Index(fields=["organization", "status"], name="dispute_status_idx")]

    def __str__(self) -> str:
        return f"Dispute {self.pk} ({self.status}) of payment {self.payment_id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_DISPUTE

    @property
    def holds_refunds(self) -> bool:
        """Open, or lost and not settled: its payment takes no refund."""
        return self.is_open or (self.status == DisputeStatus.LOST and not self.settlement)


class PaymentReturn(models.Model):
    """A check or ACH payment the bank sent back (`kassa.refunds.returns`): the money left the
    tender, the balance it paid is owed again, and a fee may have been added to the invoice."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT,
                                related_name="returns")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT,
                                related_name="returns")
    amount_minor = models.BigIntegerField()
    fee_minor = models.BigIntegerField(default=0)
    fee_line = TenantOneToOneField("billing.InvoiceLine", null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    entry = TenantOneToOneField("ledger.JournalEntry", on_delete=models.PROTECT,
                                related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="return_amount_positive"),
            models.CheckConstraint(condition=Q(fee_minor__gte=0), name="return_fee_not_negative"),
            # A bank returns a payment once.
            models.UniqueConstraint(fields=["organization", "payment"],
                                    name="payment_returned_once"),
        ]

    def __str__(self) -> str:
        return f"Return {self.pk} of payment {self.payment_id}"


class RequestKind(models.TextChoices):
    PAYMENT = "payment", "Payment"
    PACKAGE = "package", "Package"
    SPLIT = "split", "Split"
    CREDIT = "credit", "Credit"


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class RefundRequest(models.Model):
    """A refund asked for and not made (DESIGN.md, "Governed refunds"): the body the refund
    service will be called with once someone approves it. While open, its amount is reserved on
    its payment (or package): the refund rules take `reserved` off what can be refunded."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    kind = models.CharField(max_length=10, choices=RequestKind.choices)
    # The payment, package, invoice (split) or customer (credit) it refunds, by id.
    target_id = models.BigIntegerField()
    # What it reserves: the payment (a payment's or a credit's online refund) or the package.
    payment = models.ForeignKey("billing.Payment", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="refund_requests")
    package = models.ForeignKey("packages.Package", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="refund_requests")
    body = models.JSONField()
    amount_minor = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=RequestStatus.choices,
                              default=RequestStatus.OPEN)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                     on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)  # the rejection's reason
    refunds = models.JSONField(default=list)  # the ids of the refunds its approval made

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0),
                                   name="refund_request_amount_positive"),
            models.UniqueConstraint(fields=["organization", "payment"],
                                    condition=Q(status="open") & Q(package__isnull=True),
                                    name="one_open_request_per_payment"),
            models.UniqueConstraint(fields=["organization", "package"],
                                    condition=Q(status="open"),
                                    name="one_open_request_per_package"),
        ]
        indexes = [models.Index(fields=["organization", "status", "requested_at"],
                                name="refund_request_queue_idx"),
                   models.Index(fields=["status", "expires_at"],
                                name="refund_request_expiry_idx")]

    def __str__(self) -> str:
        return f"Refund request {self.pk} ({self.kind}, {self.status})"


class RequestHold(models.Model):
    """What an open refund request holds of one payment's refundable: a payment's request its
    amount, a split request each part's, a credit request paid out online its amount. Written
    when the request opens, and kept as its record; `Payment.requested_minor` is the sum of the
    holds of its open requests (kassa.refunds.requests derives it)."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    request = models.ForeignKey(RefundRequest, on_delete=models.CASCADE, related_name="holds")
    # Found by (organization, payment): the index below.
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT,
                                related_name="request_holds", db_index=False)
    amount_minor = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0),
                                   name="request_hold_amount_positive"),
            models.UniqueConstraint(fields=["organization", "request", "payment"],
                                    name="one_hold_per_request_and_payment"),
        ]
        indexes = [models.Index(fields=["organization", "payment"],
                                name="request_hold_payment_idx")]

    def __str__(self) -> str:
        return f"Hold of request {self.request_id} on payment {self.payment_id}"


class RequestMail(OutgoingMail):
    """One e-mail to a requester about one step of their refund request (its outbox row, as a
    Receipt is a refund's): sent by a task, retried while the mail server is down."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    request = models.ForeignKey(RefundRequest, on_delete=models.CASCADE, related_name="mails")
    step = models.CharField(max_length=40)  # refund_requested, refund_request_approved, …

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "request", "step"],
                                    name="one_mail_per_request_step")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"],
                                name="request_mail_due_idx")]

    def __str__(self) -> str:
        return f"Mail of request {self.request_id} ({self.step}, {self.status})"
