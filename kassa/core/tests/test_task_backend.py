"""Kassa's task backend writes the row django-tasks' own database backend writes, by a
statement text built once, held for the next statement inside a money transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db import DatabaseBackend as LibraryBackend
from django_tasks_db.models import DBTaskResult

from kassa.core.locks import money_transaction
from kassa.core.outbox import TASKS, enqueue
from kassa.core.task_backend import DatabaseBackend

pytestmark = pytest.mark.django_db

SAME = ("status", "args_kwargs", "priority", "task_path", "queue_name", "backend_name",
        "run_after", "started_at", "finished_at", "return_value", "exception_class_path",
        "traceback", "worker_ids")


def row(pk: Any) -> dict[str, Any]:
    found = DBTaskResult.objects.get(pk=pk)
    return {name: getattr(found, name) for name in SAME}


@pytest.mark.parametrize("run_after", [None, dt.datetime(2027, 1, 2, 3, 4, 5, tzinfo=dt.UTC)])
def test_an_enqueued_task_is_the_row_the_library_writes(run_after: Any) -> None:
    task = TASKS["refunds.poll_refund"]
    if run_after is not None:
        task = task.using(run_after=run_after)
    ours = DatabaseBackend("default", {})._task_to_db_task(task, (42,), {})
    theirs = LibraryBackend("default", {})._task_to_db_task(task, (42,), {})
    assert ours.pk != theirs.pk
    assert row(ours.pk) == row(theirs.pk)
    # The library's own pre-save receiver ran: a task with no time to wait for is due "never
    # before" the far future's date, as the library writes it.
    assert row(ours.pk)["run_after"] == (run_after or theirs.run_after)
    assert timezone.is_aware(DBTaskResult.objects.get(pk=ours.pk).enqueued_at)


def test_a_task_enqueued_by_a_money_transaction_commits_with_it() -> None:
    before = DBTaskResult.objects.count()
    with pytest.raises(RuntimeError), money_transaction():
        enqueue("refunds.poll_refund", 1)
        raise RuntimeError("refused")
    assert DBTaskResult.objects.count() == before
    with transaction.atomic(), money_transaction():
        enqueue("refunds.poll_refund", 2)
    assert DBTaskResult.objects.filter(args_kwargs={"args": [2], "kwargs": {}}).count() == 1
