"""Django admin for staff: looking, not changing money.

Every money figure is written by a service with its ledger entry in one transaction; an edit in
the admin would bypass both. So the money models are read-only here, and people, settings and
centers are what staff may change.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
