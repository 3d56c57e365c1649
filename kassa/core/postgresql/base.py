"""The backend's connection: Django's own, with the tenant-aware schema editor."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction

from kassa.core import batch
from kassa.core.postgresql.schema import DatabaseSchemaEditor


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
    sends_held_with_commit = True  # kassa.core.batch holds writes only on this backend

    def _commit(self) -> Any:
        """COMMIT, with the money transaction's last held writes (kassa.core.batch) in the same
        round trip: psycopg's pipeline sends the statement and the COMMIT together and waits
        once. A failure of either raises here, and the transaction is rolled back as any
        failed commit is."""
        pending = batch.with_commit(self)
        if pending is None or self.connection is None:
            return super()._commit()  # type: ignore[misc]  # (not in the stubs)
        cursor = self.cursor()  # Django's: the statement is logged and counted like any other
        try:
            with debug_transaction(self, "COMMIT"), self.wrap_database_errors:
                with self.connection.pipeline():
                    cursor.execute(*pending)
                    self.connection.commit()
        finally:
            cursor.close()

    def _rollback(self) -> Any:
        batch.with_commit(self)  # rolled back: the held statement is not sent
        return super()._rollback()  # type: ignore[misc]  # (not in the stubs)

    def _savepoint_rollback(self, sid: str) -> Any:
        # A statement left for the commit was made inside the savepoint rolled back (making a
        # savepoint sends one first): dropped with it, not sent to be undone.
        batch.with_commit(self)
        return super()._savepoint_rollback(sid)  # type: ignore[misc]  # (not in the stubs)

    def _close(self) -> Any:
        # A connection closed in a transaction leaves nothing for the next one to send.
        batch.forget(self)
        return super()._close()  # type: ignore[misc]  # (not in the stubs)
