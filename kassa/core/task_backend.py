"""django-tasks' database backend, its enqueue written by kassa.core.rows.

Every money transaction enqueues a task or two (a receipt to send, a gateway call to make) in
its own transaction, as the outbox. The backend's `DBTaskResult.objects.create` compiled the
same INSERT each time and sent it on its own; here the same row (same fields, same id, the
model's pre-save receiver run as `save()` runs it) is inserted by a statement text built once,
and inside a money transaction it goes along with the next statement (kassa.core.batch).
Everything else — validation, the `task_enqueued` signal, results, the worker — is the
library's.
"""

from __future__ import annotations

from typing import Any

from django_tasks_db import DatabaseBackend as LibraryBackend
from django_tasks_db.compat import normalize_json

from kassa.core import rows


class DatabaseBackend(LibraryBackend):
    def _task_to_db_task(self, task: Any, args: Any, kwargs: Any) -> Any:
        from django_tasks_db.models import DBTaskResult

        result: Any = DBTaskResult(
            id=self._get_id(),
            args_kwargs=normalize_json({"args": args, "kwargs": kwargs}),
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=task.run_after,
            backend_name=self.alias,
        )
        rows.insert([result], returning=False, pre_save_receivers=True)
        return result
