"""`kassa sandbox settle`: settle pending sandbox refunds now, then bring Kassa's refunds up to
date with the gateway at once (as the worker's poll would, later).

A refund whose gateway call the worker has not made yet (just issued, or waiting out a
backoff) has nothing at the gateway to settle: its call is made first, here, so that
`settle --all` right after an online refund settles it, whether a worker runs or not. The call
is the worker's own (claimed by a conditional update, keyed by the refund), so a worker that
takes it at the same moment cannot call twice.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from kassa.billing.models import Payment
from kassa.core.lookup import parse_id
from kassa.gateways.base import RefundState
from kassa.gateways.models import SandboxRefund
from kassa.gateways.sandbox import SandboxGateway
from kassa.refunds.gateway_calls import call_gateway, sync_by_reference
from kassa.refunds.models import GatewayState, Refund, RefundStatus

MAX_CALLS = 500  # bounded, like every batch


def settle(*, refund_ids: list[str], everything: bool) -> dict[str, Any]:
    ids = [pk for pk in map(parse_id, refund_ids) if pk is not None]
    _make_due_calls(ids, everything=everything)
    gateway = SandboxGateway()
    pending = SandboxRefund.objects.select_related("charge").filter(state=RefundState.PENDING)
    if not everything:
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


def _make_due_calls(ids: list[int], *, everything: bool) -> None:
    waiting = Refund.objects.filter(gateway="sandbox", status=RefundStatus.PENDING,
                                    gateway_state=GatewayState.TO_CALL)
    if not everything:
        waiting = waiting.filter(pk__in=ids)
    for refund_id in waiting.order_by("pk").values_list("pk", flat=True)[:MAX_CALLS]:
        # Asked for now: a backoff still running is cut short.
        Refund.objects.filter(pk=refund_id, gateway_state=GatewayState.TO_CALL).update(
            next_attempt_at=timezone.now())
        call_gateway(refund_id)


def heal(*, payment_id: str) -> dict[str, Any] | None:
    """`kassa sandbox heal PAYMENT_ID`: the payment's refunds reach the sandbox again."""
    pk = parse_id(payment_id)
    payment = Payment.objects.filter(pk=pk or -1, gateway="sandbox").first()
    if payment is None:
        return None
    healed = SandboxGateway().heal(payment.gateway_reference)
    return {"payment": str(payment.pk), "healed": healed}
