"""`kassa sandbox decide PAYMENT_ID --outcome succeeded|failed`: the bank's decision on a
`sandbox_processing` charge, now, and Kassa's booking of it at once (as a processor's webhook
would bring it)."""

from __future__ import annotations

from typing import Any

from kassa.billing import charges
from kassa.billing.models import ChargeState, Payment
from kassa.core.lookup import parse_id
from kassa.gateways.base import ChargeState as GatewayCharge
from kassa.gateways.sandbox import SandboxGateway


class NotDeciding(Exception):
    """The payment is not one the sandbox processor is still deciding."""


def decide(*, payment_id: str, outcome: str) -> dict[str, Any] | None:
    pk = parse_id(payment_id)
    payment = Payment.objects.filter(pk=pk or -1, gateway="sandbox").first()
    if payment is None:
        return None
    if payment.charge_state != ChargeState.AWAITING:
        raise NotDeciding(f"payment {payment.pk} is {payment.status}: only a processing charge "
                          "(source sandbox_processing) waits for a decision")
    gateway = SandboxGateway()
    gateway.decide(payment.gateway_reference, GatewayCharge(outcome))
    settled = charges.settle_charge(payment.pk, gateway.charge_status(
        reference=payment.gateway_reference))
    return {"payment": str(settled.pk), "status": settled.status}
