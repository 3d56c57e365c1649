"""Prepaid packages: templates, the packages sold on invoice lines, their benefits and
redemptions.

A package's figures follow package-refunds.txt: `balance = paid − redeemed − refunded −
forfeited`. `paid` and `refunded` are its invoice line's own figures, read from the line and
never copied: `paid` the net part of payments that reached the line (it keeps what came in: a
package refund does not lower it), `refunded` the net amounts package refunds gave back, and
their tax apart (`tax_paid`, `tax_refunded`, never more back than came in). `redeemed` and
`forfeited` are the package's own, written by the packages app alone. The ledger's *package
liability* sub-ledger of a package holds minus its balance.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from kassa.core.fields import TenantOneToOneField


class PackageTemplate(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    price_minor = models.BigIntegerField()
    tax_rate = models.DecimalField(max_digits=7, decimal_places=4)  # percent
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(price_minor__gt=0),
                                              name="template_price_positive")]

    def __str__(self) -> str:
        return self.name


class TemplateBenefit(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    template = models.ForeignKey(PackageTemplate, on_delete=models.CASCADE,
                                 related_name="benefits")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_value_minor = models.BigIntegerField()

    class Meta:
        ordering = ["position"]


class PackageStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"


class Package(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    center = models.ForeignKey("tenancy.Center", on_delete=models.PROTECT)
    customer = models.ForeignKey("billing.Customer", on_delete=models.PROTECT,
                                 related_name="packages")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT,
                                related_name="packages")
    line = TenantOneToOneField("billing.InvoiceLine", on_delete=models.PROTECT,
                               related_name="package")
    template = models.ForeignKey(PackageTemplate, null=True, on_delete=models.SET_NULL,
                                 related_name="+")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=PackageStatus.choices,
                              default=PackageStatus.ACTIVE)
    price_minor = models.BigIntegerField()
    tax_rate = models.DecimalField(max_digits=7, decimal_places=4)
    redeemed_minor = models.BigIntegerField(default=0)
    forfeited_minor = models.BigIntegerField(default=0)
    # What an open refund request of it reserves of its balance (DESIGN.md, "Governed
    # refunds"): not refundable while it is open. Derived by kassa.refunds.requests alone,
    # under the package's lock.
    requested_minor = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(forfeited_minor__gte=0) & Q(redeemed_minor__gte=0),
                                   name="package_figures_not_negative"),
            models.CheckConstraint(condition=Q(requested_minor__gte=0),
                                   name="package_requested_not_negative"),
            models.UniqueConstraint(fields=["organization", "line"], name="one_package_per_line"),
        ]
        indexes = [models.Index(fields=["organization", "customer"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_id})"

    # The line's figures, under the package's names (select_related("line") when listing).
    @property
    def paid_minor(self) -> int:
        return self.line.paid_net_minor

    @property
    def tax_paid_minor(self) -> int:
        return self.line.paid_tax_minor

    @property
    def refunded_minor(self) -> int:
        return self.line.refunded_net_minor

    @property
    def tax_refunded_minor(self) -> int:
        return self.line.refunded_tax_minor

    @property
    def balance_minor(self) -> int:
        return self.paid_minor - self.redeemed_minor - self.refunded_minor - self.forfeited_minor


class Benefit(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="benefits")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    used = models.PositiveIntegerField(default=0)
    unit_value_minor = models.BigIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.CheckConstraint(condition=Q(used__lte=F("quantity")),
                                              name="benefit_used_within_quantity")]


class Redemption(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="redemptions")
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="redemptions")
    quantity = models.PositiveIntegerField()
    amount_minor = models.BigIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
