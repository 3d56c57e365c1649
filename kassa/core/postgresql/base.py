"""The backend's connection: Django's own, with the tenant-aware schema editor."""

from __future__ import annotations

from django.db.backends.postgresql import base

from kassa.core.postgresql.schema import DatabaseSchemaEditor


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
