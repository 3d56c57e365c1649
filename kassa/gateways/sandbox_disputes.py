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

from kassa.gateways.models import SandboxCharge, SandboxDispute, SandboxRefund

OPEN = "needs_response"
OUTCOMES = ("won", "lost")


def _reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def open_dispute(charge: SandboxCharge, *, amount_minor: int,
                 reason: str = "fraudulent") -> SandboxDispute:
    return SandboxDispute.objects.create(organization_id=charge.organization_id,
                                         reference=_reference("du"), charge=charge,
                                         amount_minor=amount_minor, reason=reason, status=OPEN)


def open_dispute_of(charge: SandboxCharge) -> SandboxDispute | None:
    return charge.disputes.filter(status=OPEN).order_by("pk").first()


def decide(dispute: SandboxDispute, outcome: str) -> bool:
    assert outcome in OUTCOMES
    return bool(SandboxDispute.objects.filter(pk=dispute.pk, status=OPEN).update(
        status=outcome, closed_at=timezone.now()))


def refunded_minor(charge: SandboxCharge) -> int:
    """What of the charge the sandbox has refunded (pending or succeeded)."""
    return sum(charge.refunds.exclude(state="failed").values_list("amount_minor", flat=True))


def dashboard_refund(charge: SandboxCharge, *, amount_minor: int) -> SandboxRefund:
    """A refund made at the processor, not by Kassa: settled at once, as a card refund made by
    hand in a dashboard shows."""
    with transaction.atomic():
        return SandboxRefund.objects.create(
            organization_id=charge.organization_id, reference=_reference("re"),
            idempotency_key=f"dashboard-{secrets.token_hex(8)}", charge=charge,
            amount_minor=amount_minor, state="succeeded", settle_after=timezone.now(),
            from_dashboard=True)
