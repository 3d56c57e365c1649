"""The double-entry journal under everything.

Every money change writes one JournalEntry whose Postings sum to zero (debits positive, credits
negative, integer minor units). Entries are never edited: a correction is a new entry that
points at the one it reverses. Each posting also names the center, the business day (in the
organization's time zone) and the invoice, payment, package and refund it concerns, so that each
of those has a sub-ledger that `kassa verify` can hold its stored figures against, and so that
reports are sums over postings.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from kassa.core.fields import TenantOneToOneField


class AccountCode(models.TextChoices):
    CASH = "cash", "Cash"
    CHECK = "check", "Checks"
    CARD = "card", "Card"
    ACH = "ach", "ACH"
    INSURANCE = "insurance", "Insurance"
    OTHER = "other", "Other tender"
    RECEIVABLE = "receivable", "Accounts receivable"
    PACKAGE_SOLD_UNPAID = "package_sold_unpaid", "Package sold, unpaid"
    PACKAGE_LIABILITY = "package_liability", "Package liability"
    TAX_PAYABLE = "tax_payable", "Tax payable"
    REFUNDS_IN_TRANSIT = "refunds_in_transit", "Refunds in transit"
    REVENUE_SERVICE = "revenue_service", "Revenue: services"
    REVENUE_PRODUCT = "revenue_product", "Revenue: products"
    REVENUE_REDEMPTION = "revenue_redemption", "Revenue: package redemptions"
    REVENUE_FORFEIT = "revenue_forfeit", "Revenue: forfeited package balances"
    SALES_CREDITS = "sales_credits", "Sales credits"
    # Money held for a customer on no invoice (a liability; every posting names the customer).
    CUSTOMER_CREDIT = "customer_credit", "Customer credit"
    # Clearing between centers when credit taken at one is used or refunded at another: each
    # center's entries balance, and it sums to zero over the organization.
    INTERCENTER = "intercenter", "Inter-center clearing"
    OTHER_INCOME = "other_income", "Other income"  # credit written off
    # Money the processor withdrew for a chargeback, until the dispute is won (reinstated) or
    # lost and settled (re-billed to the customer, or written off as a loss).
    DISPUTED_FUNDS = "disputed_funds", "Disputed funds"
    CHARGEBACK_LOSSES = "chargeback_losses", "Chargeback losses"
    REVENUE_FEE = "revenue_fee", "Revenue: fees"  # a returned check's fee, say


TENDER_CODES = ("cash", "check", "card", "ach", "insurance", "other")


class Account(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    center = models.ForeignKey("tenancy.Center", on_delete=models.CASCADE)
    code = models.CharField(max_length=32, choices=AccountCode.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "center", "code"],
                                    name="account_per_center_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} @ {self.center_id}"


class JournalEntry(models.Model):
    # Indexed first in (organization, business_date).
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.CASCADE)
    kind = models.CharField(max_length=40)
    memo = models.CharField(max_length=300, blank=True)
    business_date = models.DateField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reverses = TenantOneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )

    class Meta:
        verbose_name_plural = "journal entries"
        constraints = [models.UniqueConstraint(fields=["organization", "reverses"],
                                               name="entry_reversed_once")]
        indexes = [models.Index(fields=["organization", "business_date"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.business_date}"


class Posting(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.CASCADE, related_name="postings")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings")
    # Copied from the entry and the account so that a report is one indexed scan. (No index
    # of their own: each is first in one of Meta.indexes, which serve its look-ups too.)
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     db_index=False)
    center = models.ForeignKey("tenancy.Center", on_delete=models.CASCADE, db_index=False)
    code = models.CharField(max_length=32, choices=AccountCode.choices)
    kind = models.CharField(max_length=40, default="")  # the entry's kind, for the reports
    business_date = models.DateField()
    # Debit positive, credit negative.
    amount_minor = models.BigIntegerField()
    invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment = models.ForeignKey(
        "billing.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund = models.ForeignKey(
        "refunds.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    customer = models.ForeignKey(  # set on the customer_credit postings: its sub-ledger
        "billing.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    package = models.ForeignKey(  # indexed first in posting_package_idx
        "packages.Package", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount_minor=0), name="posting_not_zero")
        ]
        indexes = [
            models.Index(fields=["center", "business_date", "code"], name="posting_day_idx"),
            models.Index(fields=["organization", "code"], name="posting_org_code_idx"),
            # The package-liability report: one center's package postings over a period.
            models.Index(fields=["center", "code", "business_date", "package"],
                         name="posting_package_day_idx"),
            models.Index(fields=["package", "code"], name="posting_package_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.amount_minor:+d}"


DAILY_TOTAL_SLOTS = 16


class DailyTotal(models.Model):
    """Per center, business day, account and kind of event: the sum of the postings.

    Kept in the same transaction as every posting (an upsert in `post`), so that a report over
    any period reads a few rows per day instead of every posting ever made: its cost grows with
    the days asked for, not with the history. `kassa verify` proves it equals the postings.

    Each key is striped over up to DAILY_TOTAL_SLOTS rows (`slot`: the one a database
    connection writes, kassa.ledger.services), and a figure is the sum of its key's rows: two
    transactions of one center on one day upsert different rows and never wait on each other
    (issue 17: one row per key made every refund of a center queue on it until the commit).
    Every reader sums over the key already.
    """

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    center = models.ForeignKey("tenancy.Center", on_delete=models.CASCADE)
    business_date = models.DateField()
    code = models.CharField(max_length=32, choices=AccountCode.choices)
    kind = models.CharField(max_length=40)
    amount_minor = models.BigIntegerField(default=0)
    postings = models.BigIntegerField(default=0)
    slot = models.PositiveSmallIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "center", "business_date", "code", "kind", "slot"],
                name="daily_total_unique")
        ]
        indexes = [models.Index(fields=["organization", "business_date"],
                                name="daily_total_org_day_idx")]
