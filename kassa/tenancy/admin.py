from __future__ import annotations

from django.contrib import admin

from kassa.core.admin_views import ReadOnlyAdmin
from kassa.tenancy.models import ApiToken, Center, Membership, Organization


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "currency", "timezone", "allow_multiple_package_refunds",
                    "refund_roles")
    search_fields = ("name",)
    # The currency gives every stored amount its meaning: changed through the service only.
    readonly_fields = ("currency", "next_invoice_number")


@admin.register(Center)
class CenterAdmin(admin.ModelAdmin):
    list_display = ("name", "organization")
    list_filter = ("organization",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role")
    list_filter = ("organization", "role")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "membership", "created_at", "last_used_at")
    exclude = ("digest",)

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return True  # revoking a token is a staff task
