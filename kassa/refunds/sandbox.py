"""`kassa sandbox settle`: settle pending sandbox refunds now, then bring Kassa's refunds up to
date with the gateway at once (as the worker's poll would, later)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from kassa.core.lookup import parse_id
from kassa.gateways.base import RefundState
from kassa.gateways.models import SandboxRefund
from kassa.gateways.sandbox import SandboxGateway
from kassa.refunds.gateway_calls import sync_by_reference
from kassa.refunds.models import Refund


def settle(*, refund_ids: list[str], everything: bool) -> dict[str, Any]:
    gateway = SandboxGateway()
    pending = SandboxRefund.objects.select_related("charge").filter(state=RefundState.PENDING)
    if not everything:
        ids = [pk for pk in map(parse_id, refund_ids) if pk is not None]
        references = Refund.objects.filter(pk__in=ids).values_list("gateway_reference",
                                                                   flat=True)
        pending = pending.filter(reference__in=list(references))
    settled = []
    for refund in pending:
        refund.settle_after = timezone.now()
        gateway.settle(refund)
        settled.append(refund.reference)
        sync_by_reference(refund.reference)
    return {"settled": settled}
