"""Customers, cases, invoices with their lines, and payments.

The figures of an invoice and its lines (paid, credited, refunded, balance due) are derived by
`kassa.billing.allocation` alone, from the rows that explain them: PaymentAllocation (money of
a payment reaching a line, or taken back from it) and LineCredit (the sale reduced). A
payment's `refunded` is its refunds' sum, derived by the refunds app. Each is written in the
same transaction as the ledger entry that explains it, and `kassa verify` holds each against
its rows and its sub-ledger. Money is integer minor units in the organization's currency.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Customer(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    # The person the front desk and the receipts speak to ("Dear Maria Alvarez"), when the
    # customer is a family or a household; blank: the name itself.
    contact_name = models.CharField(max_length=200, blank=True, default="")
    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    # Money Kassa holds for the customer on no invoice: the sum of their CreditEntry rows,
    # derived by `kassa.billing.credit` alone, and minus their customer_credit sub-ledger.
    credit_minor = models.BigIntegerField(default=0)
    # What open refund requests of their credit reserve of it (DESIGN.md, "Governed refunds"):
    # not refundable while they are open. Derived by kassa.refunds.requests alone, under the
    # customer's lock.
    requested_minor = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "name"])]
        constraints = [models.CheckConstraint(condition=Q(credit_minor__gte=0),
                                              name="customer_credit_not_negative"),
                       models.CheckConstraint(condition=Q(requested_minor__gte=0),
                                              name="customer_requested_not_negative")]

    def __str__(self) -> str:
        return self.name

    @property
    def greeting_name(self) -> str:
        return self.contact_name or self.name


class Case(models.Model):
    """A funeral home's case: a family's invoices grouped, with a payments tab."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cases")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class InvoiceStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Invoice(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    number = models.CharField(max_length=32)
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices)
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    credits_minor = models.BigIntegerField(default=0)
    paid_minor = models.BigIntegerField(default=0)
    refunded_minor = models.BigIntegerField(default=0)
    balance_due_minor = models.BigIntegerField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "number"],
                                    name="invoice_number_unique"),
            models.CheckConstraint(condition=Q(total_minor__gt=0), name="invoice_total_positive"),
            models.CheckConstraint(
                condition=Q(balance_due_minor=F("total_minor") - F("credits_minor")
                            - F("paid_minor") + F("refunded_minor")),
                name="invoice_balance_due_formula",
            ),
            models.CheckConstraint(condition=Q(balance_due_minor__gte=0),
                                   name="invoice_balance_due_not_negative"),
        ]
        indexes = [models.Index(fields=["organization", "customer"])]

    def __str__(self) -> str:
        return f"Invoice {self.number}"


class LineKind(models.TextChoices):
    SERVICE = "service", "Service"
    PRODUCT = "product", "Product"
    PACKAGE = "package", "Package"
    FEE = "fee", "Fee"  # untaxed, added by Kassa (a returned payment's fee)


class InvoiceLine(models.Model):
    """A line's net and tax, and what of each has been paid, credited and given back.

    `paid_*` is what payments allocated to the line, less what payment refunds took back (its
    PaymentAllocation rows); `credited_*` what was taken off the sale (decrease balance owed,
    package refunds, a closed package's unpaid remainder: its LineCredit rows); `refunded_*`
    what package refunds gave back of the paid money (the LineCredit rows that give back).
    What the line still owes is `net − credited − paid + refunded` (and the same for tax).
    """

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=LineKind.choices)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price_minor = models.BigIntegerField()
    tax_rate = models.DecimalField(max_digits=7, decimal_places=4)  # percent: 8.875
    net_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    paid_net_minor = models.BigIntegerField(default=0)
    paid_tax_minor = models.BigIntegerField(default=0)
    credited_net_minor = models.BigIntegerField(default=0)
    credited_tax_minor = models.BigIntegerField(default=0)
    refunded_net_minor = models.BigIntegerField(default=0)
    refunded_tax_minor = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(paid_net_minor__gte=0) & Q(paid_tax_minor__gte=0)
                & Q(paid_net_minor__lte=F("net_minor") - F("credited_net_minor")
                    + F("refunded_net_minor"))
                & Q(paid_tax_minor__lte=F("tax_minor") - F("credited_tax_minor")
                    + F("refunded_tax_minor")),
                name="line_paid_within_owed",
            ),
            # A package's refunds never give back more tax than came in with its payments.
            models.CheckConstraint(condition=Q(refunded_tax_minor__lte=F("paid_tax_minor")),
                                   name="line_tax_back_within_tax_in"),
        ]

    @property
    def owed_net_minor(self) -> int:
        return (self.net_minor - self.credited_net_minor - self.paid_net_minor
                + self.refunded_net_minor)

    @property
    def owed_tax_minor(self) -> int:
        return (self.tax_minor - self.credited_tax_minor - self.paid_tax_minor
                + self.refunded_tax_minor)


class Method(models.TextChoices):
    CARD = "card", "Card"
    ACH = "ach", "ACH"
    CASH = "cash", "Cash"
    CHECK = "check", "Check"
    INSURANCE = "insurance", "Insurance"
    OTHER = "other", "Other"
    CREDIT = "credit", "Account credit"  # paid from the customer's credit: no money moves


ONLINE_METHODS = (Method.CARD, Method.ACH)


class PaymentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"  # recorded; the gateway has not decided
    SUCCEEDED = "succeeded", "Succeeded"  # booked
    FAILED = "failed", "Failed"  # the charge failed after all (or went back): nothing booked
    DECLINED = "declined", "Declined"  # the card was refused: nothing booked


class ChargeState(models.TextChoices):
    """Where an online payment's conversation with the gateway stands (its outbox state)."""

    NONE = "", "Nothing to do"
    CHARGING = "charging", "Charge under way, or its answer lost"
    AWAITING = "awaiting", "The processor is deciding"
    GIVE_BACK = "give_back", "Charged but not booked: to give back"
    STUCK = "stuck", "Could not be resolved: needs a person"


class Payment(models.Model):
    # Indexed first in (organization, request_key).
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT)
    # None for a deposit: money taken into the customer's credit, on no invoice.
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    amount_minor = models.BigIntegerField()
    # What of the amount went into the customer's credit: all of a deposit, the excess of an
    # overpayment. The rest is what the invoice's lines were paid.
    to_credit_minor = models.BigIntegerField(default=0)
    method = models.CharField(max_length=10, choices=Method.choices)
    online = models.BooleanField()
    source = models.CharField(max_length=200, blank=True)
    gateway = models.CharField(max_length=20, blank=True)
    gateway_reference = models.CharField(max_length=200, blank=True)
    # Refunds of this payment that did not fail, pending ones included (not refunds out of
    # credit that go back to its card: the refund to credit counted that money already).
    refunded_minor = models.BigIntegerField(default=0)
    # Online refunds back to its charge that did not fail, direct or out of credit: the gateway
    # refunds at most the charge.
    refunded_online_minor = models.BigIntegerField(default=0)
    refund_pending = models.BooleanField(default=False)
    # What the bank or the processor took back of it, decided outside Kassa: lost disputes
    # and returns (kassa.refunds.disputes, kassa.refunds.returns derive it). Not refundable.
    taken_back_minor = models.BigIntegerField(default=0)
    # A dispute of it is open, or lost and not settled yet: it takes no refund.
    disputed = models.BooleanField(default=False)
    # What open refund requests reserve of it (DESIGN.md, "Governed refunds"): not refundable
    # while they are open. Derived from those requests by kassa.refunds.requests alone, under
    # the payment's lock, whenever one opens, is decided or expires.
    requested_minor = models.BigIntegerField(default=0)
    # An online payment is recorded before its charge (an intent): `status` is what the
    # front desk reads, `charge_state` what the worker still has to do about the charge.
    status = models.CharField(max_length=12, choices=PaymentStatus.choices,
                              default=PaymentStatus.SUCCEEDED)
    charge_state = models.CharField(max_length=12, choices=ChargeState.choices, blank=True,
                                    default=ChargeState.NONE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    # The Idempotency-Key of the request that made it: a retry of a request that died
    # resumes this payment (and its gateway key) instead of charging again.
    request_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["charge_state", "next_attempt_at"]),
                   models.Index(fields=["organization", "request_key"]),
                   # The gateway's news (webhooks, reconciliation) names a payment by its
                   # charge: only online payments have one, so only they pay for the index.
                   models.Index(fields=["gateway_reference"],
                                condition=~Q(gateway_reference=""),
                                name="payment_gateway_ref_idx"),
                   # Reconciliation's online payments of a business day.
                   models.Index(fields=["organization", "created_at"], condition=Q(online=True),
                                name="payment_online_day_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_minor__gte=0)
                & Q(refunded_minor__lte=F("amount_minor") - F("to_credit_minor")),
                name="payment_refunded_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(to_credit_minor__gte=0) & Q(to_credit_minor__lte=F("amount_minor")),
                name="payment_to_credit_within_amount"),
            models.CheckConstraint(
                condition=Q(refunded_online_minor__gte=0)
                & Q(refunded_online_minor__lte=F("amount_minor")),
                name="payment_refunded_online_within_amount"),
            models.CheckConstraint(
                condition=Q(taken_back_minor__gte=0) & Q(taken_back_minor__lte=F("amount_minor")),
                name="payment_taken_back_within_amount"),
            models.CheckConstraint(condition=Q(requested_minor__gte=0),
                                   name="payment_requested_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Payment {self.pk} on {self.invoice_id}"

    @property
    def refundable_minor(self) -> int:
        """Money received on the invoice and not yet given back: none of a payment that did
        not succeed, and not what it put into credit (that is refunded out of credit)."""
        if self.status != PaymentStatus.SUCCEEDED:
            return 0
        return max(0, self.amount_minor - self.to_credit_minor - self.refunded_minor
                   - self.taken_back_minor)

    @property
    def refundable_online_minor(self) -> int:
        """What the gateway can still refund of the charge: its amount less its online
        refunds, direct or out of credit, that did not fail."""
        if self.status != PaymentStatus.SUCCEEDED or not self.online:
            return 0
        return max(0, self.amount_minor - self.refunded_online_minor - self.taken_back_minor)


class PaymentAllocation(models.Model):
    """What part of a payment reached which invoice line, net and tax apart.

    A refund of the payment takes its amount back out of these (negative rows), so that the sum
    per line is what that line has been paid.
    """

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="allocations")
    line = models.ForeignKey(InvoiceLine, on_delete=models.CASCADE, related_name="allocations")
    net_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    # Set on the negative rows a refund takes back out (and on their reversal if it fails).
    refund = models.ForeignKey(
        "refunds.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Or on those a returned payment or a re-billed lost dispute takes back: the lines were
    # not paid after all (their `paid` drops; nothing was refunded).
    payment_return = models.ForeignKey(
        "refunds.PaymentReturn", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+")
    dispute = models.ForeignKey(
        "refunds.Dispute", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()


class PaymentEvent(models.Model):
    """The payment's history as the front desk reads it: every event, who and when.

    Written by the service that makes the event, in its transaction.
    """

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=40)
    amount_minor = models.BigIntegerField(null=True)
    status = models.CharField(max_length=20, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]


class LineCredit(models.Model):
    """What was taken off one line's sale: by a refund that decreased the balance owed or
    refunded a package (`refund`), or by closing a package with its price not paid in full
    (`refund` null). A package refund's credit also gives the paid money back (`gives_back`):
    the line's `refunded_*`. A failed refund appends the opposite rows, so the sums per line
    are what stands."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="credits")
    refund = models.ForeignKey("refunds.Refund", null=True, blank=True,
                               on_delete=models.PROTECT, related_name="+")
    net_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    gives_back = models.BooleanField(default=False)



class CreditKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    OVERPAYMENT = "overpayment", "Overpayment"
    REFUND_TO_CREDIT = "refund_to_credit", "Refund to credit"
    APPLIED = "applied", "Paid an invoice"
    REFUNDED_OUT = "refunded_out", "Refunded out"
    REFUND_OUT_FAILED = "refund_out_failed", "Refund out failed: back in credit"
    REFUND_FAILED_TO_CREDIT = "refund_failed_to_credit", "Failed refund kept as credit"
    WRITTEN_OFF = "written_off", "Written off"
    # Kassa's own, beyond DESIGN.md's list: a card deposit or overpayment whose charge the
    # processor failed after it was booked takes its money back out.
    PAYMENT_FAILED = "payment_failed", "Card payment failed after all"


class CreditEntry(models.Model):
    """One movement of a customer's credit, as the customer's account shows it: signed (+ into
    credit, − out of it), with the balance after. Appended by `kassa.billing.credit` alone, in
    the money transaction that posts it to `customer_credit`.

    Credit is held in lots, so that it is used oldest money first and card money goes back to
    its card: every entry that brings new money in is a lot (its `card_payment` the online
    payment whose money it is, if any), and every entry's CreditDraw rows say which lots it
    moved. What a lot holds is the sum of its draws."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT,
                                 related_name="credit_entries")
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=30, choices=CreditKind.choices)
    amount_minor = models.BigIntegerField()
    balance_after_minor = models.BigIntegerField()
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                           related_name="+")
    note = models.CharField(max_length=500, blank=True)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    refund = models.ForeignKey("refunds.Refund", null=True, blank=True,
                               on_delete=models.PROTECT, related_name="+")
    # A lot of card money: refunded out only to this payment, online (DESIGN.md).
    card_payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")

    class Meta:
        verbose_name_plural = "credit entries"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["organization", "at"], name="credit_entry_org_at_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount_minor=0), name="credit_entry_not_zero"),
            models.CheckConstraint(condition=Q(balance_after_minor__gte=0),
                                   name="credit_balance_after_not_negative"),
        ]


class CreditDraw(models.Model):
    """What one credit entry moved of one lot (signed like the entry)."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    entry = models.ForeignKey(CreditEntry, on_delete=models.CASCADE, related_name="draws")
    lot = models.ForeignKey(CreditEntry, on_delete=models.PROTECT, related_name="lot_draws")
    amount_minor = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount_minor=0),
                                              name="credit_draw_not_zero")]
