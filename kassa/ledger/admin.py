from __future__ import annotations

from django.contrib import admin

from kassa.core.admin_views import ReadOnlyAdmin
from kassa.ledger.models import JournalEntry, Posting


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("code", "amount_minor", "invoice", "payment", "refund", "package")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "business_date", "center", "memo", "reverses")
    list_filter = ("kind", "organization")
    inlines = [PostingInline]
