"""What a line of a kind of its own (a package) does when it is sold and when money reaches it.

Billing sells lines and allocates money to them, but the package arithmetic is the packages
app's, which sits above billing: so packages plugs in here, when it is ready, as the `@check`
and `@sweep` registries are filled, and billing never imports it. A plain service or product
line has no handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from kassa.billing.inputs import LineInput
from kassa.billing.models import Invoice, InvoiceLine
from kassa.ledger.services import Line


class LineKindHandler(Protocol):
    def prepare(self, *, organization_id: int, line: LineInput, where: str) -> Any:
        """Check the line as the client gave it (`where` is its field, `lines[2]`) before
        anything is written; return what `opened` needs. Raise a DomainError naming a field."""

    def defaults(self, prepared: Any) -> tuple[int, Decimal]:
        """The line's unit price and tax rate when the client gave none."""

    def opened(self, *, invoice: Invoice, line: InvoiceLine, prepared: Any) -> list[Line]:
        """The line was sold: write what it opens; return the ledger line of its net sale."""

    def paid_in(self, *, shares: Mapping[int, tuple[int, int]], refs: Mapping[str, Any]
                ) -> list[Line]:
        """Money reaches (or, negative, leaves) these lines of the kind: check the kind's
        rules before anything is written and return the ledger lines for it."""


HANDLERS: dict[str, LineKindHandler] = {}


def register(kind: str, handler: LineKindHandler) -> None:
    assert kind not in HANDLERS, f"two handlers for {kind} lines"
    HANDLERS[kind] = handler


def handler_for(kind: str) -> LineKindHandler | None:
    return HANDLERS.get(kind)
