from __future__ import annotations

from django.contrib import admin

from kassa.core.admin_views import ReadOnlyAdmin
from kassa.refunds.models import Receipt, Refund


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("id", "invoice", "payment", "package", "type", "status", "amount_minor",
                    "tax_minor", "method", "gateway_state", "created_at")
    list_filter = ("type", "status", "gateway_state")


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ("id", "refund", "kind", "to_email", "status", "attempts", "sent_at")
    list_filter = ("status", "kind")
