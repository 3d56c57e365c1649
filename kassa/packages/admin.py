from __future__ import annotations

from django.contrib import admin

from kassa.core.admin_views import ReadOnlyAdmin
from kassa.packages.models import Package, PackageTemplate


@admin.register(PackageTemplate)
class PackageTemplateAdmin(ReadOnlyAdmin):
    list_display = ("name", "price_minor", "tax_rate", "organization")


@admin.register(Package)
class PackageAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "customer", "status", "paid_minor", "redeemed_minor",
                    "refunded_minor", "forfeited_minor")
    list_filter = ("status",)
    list_select_related = ("customer", "line")  # paid and refunded are the line's
