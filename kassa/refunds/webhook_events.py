"""The refund events for outgoing webhooks (kassa.webhooks.events):

- `refund.created`: every refund, when it is made (an online one pending, an offline one
  recorded);
- `refund.succeeded`: an online refund the gateway settled, or a stuck one paid another way
  (its status then `recorded`);
- `refund.failed`: an online refund the gateway failed (even after it had succeeded);
- `package.refunded`: beside `refund.created` for a refund of a package's balance.

`data.object` is the refund as `GET /refunds/{id}` answers it, and for `package.refunded` the
package as `GET /packages/{id}` answers it, after the refund (both held by a test).
"""

from __future__ import annotations

from typing import Any

from kassa.audit.services import record
from kassa.core.money import format_decimal_string
from kassa.packages.models import Package
from kassa.packages.objects import package_object
from kassa.refunds.models import GatewayState, Refund
from kassa.webhooks.events import emit


def refund_object(refund: Refund) -> dict[str, Any]:
    currency = refund.organization.currency
    money = lambda minor: format_decimal_string(minor, currency)  # noqa: E731
    return {
        "id": str(refund.pk), "payment": str(refund.payment_id) if refund.payment_id else None,
        "package": str(refund.package_id) if refund.package_id else None,
        "invoice": str(refund.invoice_id) if refund.invoice_id else None,
        "customer": str(refund.customer_id) if refund.customer_id else None,
        "type": refund.type, "status": refund.status, "origin": refund.origin,
        "amount": money(refund.amount_minor), "tax": money(refund.tax_minor),
        "total": money(refund.total_minor), "method": refund.method, "reason": refund.reason,
        "internal_note": refund.internal_note, "note": refund.note,
        "decrease_balance_owed": refund.decrease_balance_owed,
        "created_by": refund.created_by.email if refund.created_by else None,
        "created_at": refund.created_at.isoformat(),
        "settled_at": refund.settled_at.isoformat() if refund.settled_at else None,
        "failure_reason": refund.failure_reason,
        "needs_attention": refund.gateway_state == GatewayState.STUCK,
        "payee": refund.payee, "group": refund.split_group or None,
        "replaces": str(refund.replaces_id) if refund.replaces_id else None,
    }


def package_after(package_id: int) -> dict[str, Any]:
    """Read when the refund's transaction is about to commit: its figures after the refund."""
    return package_object(Package.objects.select_related("organization", "line")
                          .prefetch_related("benefits").get(pk=package_id))


def announce(type: str, refund: Refund, *, actor: Any | None = None) -> None:
    """In the refund's transaction; rendered only if an endpoint listens, as it commits. The
    same moment is the refund's entry in the audit log (`actor` None: the gateway's news)."""
    emit(type, organization_id=refund.organization_id, render=lambda: refund_object(refund))
    record(organization_id=refund.organization_id, actor=actor, action=type,
           object=f"refund:{refund.pk}",
           detail={"amount_minor": refund.amount_minor, "tax_minor": refund.tax_minor,
                   "type": refund.type, "method": refund.method, "status": refund.status,
                   "payment": refund.payment_id, "package": refund.package_id,
                   "invoice": refund.invoice_id, "customer": refund.customer_id,
                   "reason": refund.reason})


def announce_created(refund: Refund) -> None:
    announce("refund.created", refund, actor=refund.created_by_id)
    if package_id := refund.package_id:
        emit("package.refunded", organization_id=refund.organization_id,
             render=lambda: package_after(package_id))
