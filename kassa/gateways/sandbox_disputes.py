"""The sandbox processor's side of what it decides on its own: chargebacks of its charges and
refunds made in its "dashboard" (`kassa sandbox dispute`, `kassa sandbox refund`).

What a real processor then does, the sandbox does too: a charge with an open dispute refuses
new refunds (`charge_disputed`), and a refund still pending when its charge is disputed fails
when it settles (`charge_for_pending_refund_disputed`; see `SandboxGateway`). Kassa learns of
these through `kassa.refunds.sandbox`, as it would from a processor's events.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from kassa.gateways import sandbox_balance
from kassa.gateways.base import LineType
from kassa.gateways.models import SandboxCharge, SandboxDispute, SandboxRefund

OPEN = "needs_response"
OUTCOMES = ("won", "lost")


def _reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def open_dispute(charge: SandboxCharge, *, amount_minor: int,
                 reason: str = "fraudulent") -> SandboxDispute:
    """The bank disputes the charge: the disputed amount and the processor's fee leave the
    balance at once."""
    with transaction.atomic():
        dispute = SandboxDispute.objects.create(
            organization_id=charge.organization_id, reference=_reference("du"), charge=charge,
            amount_minor=amount_minor, reason=reason, status=OPEN)
        for type, amount in ((LineType.DISPUTE, -amount_minor),
                             (LineType.FEE,
                              -sandbox_balance.dispute_fee_minor(charge.currency))):
            sandbox_balance.record(organization_id=charge.organization_id, type=type,
                                   amount_minor=amount, currency=charge.currency,
                                   source=dispute.reference, charge_reference=charge.reference)
    return dispute


def open_dispute_of(charge: SandboxCharge) -> SandboxDispute | None:
    return charge.disputes.filter(status=OPEN).order_by("pk").first()


def decide(dispute: SandboxDispute, outcome: str) -> bool:
    """Decide an open dispute; a won one brings the disputed amount back to the balance."""
    assert outcome in OUTCOMES
    with transaction.atomic():
        decided = bool(SandboxDispute.objects.filter(pk=dispute.pk, status=OPEN).update(
            status=outcome, closed_at=timezone.now()))
        if decided and outcome == "won":
            charge = dispute.charge
            sandbox_balance.record(organization_id=dispute.organization_id,
                                   type=LineType.DISPUTE_REVERSAL,
                                   amount_minor=dispute.amount_minor, currency=charge.currency,
                                   source=dispute.reference, charge_reference=charge.reference)
    return decided


def refunded_minor(charge: SandboxCharge) -> int:
    """What of the charge the sandbox has refunded (pending or succeeded)."""
    return sum(charge.refunds.exclude(state="failed").values_list("amount_minor", flat=True))


def dashboard_refund(charge: SandboxCharge, *, amount_minor: int) -> SandboxRefund:
    """A refund made at the processor, not by Kassa: settled at once, as a card refund made by
    hand in a dashboard shows."""
    with transaction.atomic():
        refund = SandboxRefund.objects.create(
            organization_id=charge.organization_id, reference=_reference("re"),
            idempotency_key=f"dashboard-{secrets.token_hex(8)}", charge=charge,
            amount_minor=amount_minor, state="succeeded", settle_after=timezone.now(),
            from_dashboard=True)
        sandbox_balance.refunded(refund)
    return refund
