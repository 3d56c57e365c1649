"""What a money use case would do, before a person confirms it (issue 15, item 3).

`preview` runs the service itself — every rule checked under its locks, every figure computed
by its owner — inside a transaction that is always rolled back, and hands back what `read`
took from the result and the rows it changed. So the review screen states the refund, the tax
going back with it, the forfeit and the balances after exactly as the confirmed call will make
them (unless someone else moves money in between, when the confirmed call refuses or differs by
that), and a rule the service refuses is shown at the review, beside its field.

Safe because a money use case keeps its side effects in its transaction: tasks are rows
enqueued in it, the ledger's cached chart is kept only on commit, and no outbound call is made
inside it (each asserts it runs outside a transaction). A use case that calls out at once (an
online payment's charge) is never previewed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import transaction

T = TypeVar("T")
R = TypeVar("R")


class _RollBack(Exception):
    """Raised inside the preview's transaction to undo it."""


def preview(use_case: Callable[[], T], read: Callable[[T], R]) -> R:
    kept: list[R] = []
    try:
        with transaction.atomic():
            kept.append(read(use_case()))
            raise _RollBack
    except _RollBack:
        pass
    return kept[0]
