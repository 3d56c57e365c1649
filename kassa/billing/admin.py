from __future__ import annotations

from django.contrib import admin

from kassa.billing.models import Case, CreditEntry, Customer, Invoice, Payment
from kassa.core.admin_views import ReadOnlyAdmin


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "credit_minor", "organization")
    search_fields = ("name", "email")
    # Derived from the customer's credit entries by kassa.billing.credit alone.
    readonly_fields = ("credit_minor",)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("name", "customer", "organization")
    search_fields = ("name",)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("number", "customer", "status", "total_minor", "balance_due_minor",
                    "organization")
    list_filter = ("status", "organization")
    search_fields = ("number", "customer__name")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("id", "invoice", "amount_minor", "method", "online", "refunded_minor",
                    "refund_pending")
    list_filter = ("method", "online")


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "kind", "amount_minor", "balance_after_minor", "at",
                    "center")
    list_filter = ("kind",)
    search_fields = ("customer__name",)
