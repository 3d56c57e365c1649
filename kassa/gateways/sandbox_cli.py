"""`kassa sandbox settle`: settle pending sandbox refunds now, then bring Kassa's refunds up to
date with the gateway (as the worker's poll would, later)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from kassa.gateways.base import RefundState
from kassa.gateways.models import SandboxRefund
from kassa.gateways.sandbox import SandboxGateway

AFTER_SETTLE: list[Any] = []  # callables(gateway_reference) registered by the refunds app


def settle(*, refund_ids: list[str], everything: bool) -> dict[str, Any]:
    gateway = SandboxGateway()
    pending = SandboxRefund.objects.select_related("charge").filter(state=RefundState.PENDING)
    if not everything:
        references = _references_for(refund_ids)
        pending = pending.filter(reference__in=references)
    settled = []
    for refund in pending:
        refund.settle_after = timezone.now()
        gateway.settle(refund)
        settled.append(refund.reference)
        for hook in AFTER_SETTLE:
            hook(refund.reference)
    return {"settled": settled}


def _references_for(refund_ids: list[str]) -> list[str]:
    """Kassa refund ids → their sandbox references (through the refunds app, when installed)."""
    from django.apps import apps

    if not apps.is_installed("kassa.refunds"):
        return list(refund_ids)
    from kassa.core.lookup import parse_id
    from kassa.refunds.models import Refund

    ids = [pk for pk in map(parse_id, refund_ids) if pk is not None]
    return list(Refund.objects.filter(pk__in=ids).values_list("gateway_reference", flat=True))
