"""The sandbox gateway: the embedded default, like a processor's test mode.

An online payment's `source` chooses what happens, as test cards do: `sandbox_ok` (the default)
charges; `sandbox_declined` is declined; `sandbox_processing` stays processing until `kassa
sandbox decide PAYMENT_ID --outcome succeeded|failed`; `sandbox_refund_fails` charges, and its
refunds fail when they settle; `sandbox_refund_unreachable` charges, and every call about its
refunds fails as a timeout would (retryable), until `kassa sandbox heal PAYMENT_ID`
makes the charge's refunds reachable (its source becomes `sandbox_ok`). Refunds stay pending until
`KASSA_SANDBOX_SETTLE_SECONDS` have passed (then the worker's poll settles them) or until
`kassa sandbox settle`.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from kassa.core.errors import PaymentDeclined, ValidationFailed
from kassa.core.locks import assert_outside_transaction
from kassa.gateways import sandbox_balance
from kassa.gateways.base import (
    BalanceLine,
    ChargeResult,
    ChargeState,
    Gateway,
    GatewayError,
    LineType,
    RefundResult,
    RefundState,
)
from kassa.gateways.models import SandboxCharge, SandboxRefund

SOURCES = ("sandbox_ok", "sandbox_declined", "sandbox_processing", "sandbox_refund_fails",
           "sandbox_refund_unreachable")
PROCESSING = "sandbox_processing"
UNREACHABLE = "sandbox_refund_unreachable"


def _reachable(charge: SandboxCharge) -> None:
    if charge.source == UNREACHABLE:
        raise GatewayError("the sandbox gateway timed out (sandbox_refund_unreachable)",
                           permanent=False)


def _reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _disputed_since(refund: SandboxRefund) -> bool:
    """A processor fails a refund still pending when its charge is disputed: the bank is
    refunding the cardholder through the dispute instead."""
    return refund.charge.disputes.filter(created_at__gte=refund.created_at).exclude(
        status="won").exists()


class SandboxGateway(Gateway):
    name = "sandbox"

    def charge(
        self, *, amount_minor: int, currency: str, source: str, idempotency_key: str,
        organization_id: int, description: str = "",
    ) -> ChargeResult:
        assert_outside_transaction("a sandbox gateway call (charge)")
        source = source or "sandbox_ok"
        self.check_source(source)
        if source == "sandbox_declined":
            raise PaymentDeclined("The card was declined (sandbox_declined)", field="source")
        existing = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return self._charge_result(existing)
        state = ChargeState.PROCESSING if source == PROCESSING else ChargeState.SUCCEEDED
        try:
            with transaction.atomic():
                charge = SandboxCharge.objects.create(
                    organization_id=organization_id, reference=_reference("ch"),
                    idempotency_key=idempotency_key,
                    amount_minor=amount_minor, currency=currency, source=source, state=state,
                )
                if state == ChargeState.SUCCEEDED:
                    sandbox_balance.charged(charge)
        except IntegrityError:
            charge = SandboxCharge.objects.get(idempotency_key=idempotency_key)
        return self._charge_result(charge)

    def check_source(self, source: str) -> None:
        if (source or "sandbox_ok") not in SOURCES:
            raise ValidationFailed("source", f"must be one of {', '.join(SOURCES)} in the sandbox")

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        assert_outside_transaction("a sandbox gateway call (find_charge)")
        charge = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
        return self._charge_result(charge) if charge is not None else None

    def charge_status(self, *, reference: str) -> ChargeResult:
        assert_outside_transaction("a sandbox gateway call (charge_status)")
        charge = SandboxCharge.objects.filter(reference=reference).first()
        if charge is None:
            raise GatewayError(f"no such charge {reference}", permanent=True)
        return self._charge_result(charge)

    def decide(self, reference: str, outcome: ChargeState) -> bool:
        """Decide a `sandbox_processing` charge, as the bank would after a few days."""
        with transaction.atomic():
            decided = bool(SandboxCharge.objects.filter(reference=reference,
                                                        state=ChargeState.PROCESSING)
                           .update(state=outcome))
            if decided and outcome == ChargeState.SUCCEEDED:
                charge = SandboxCharge.objects.get(reference=reference)
                sandbox_balance.charged(charge)
                if charge.cancelled:  # given back while it was processing: it goes back now
                    sandbox_balance.record(
                        organization_id=charge.organization_id, type=LineType.REFUND,
                        amount_minor=-charge.amount_minor, currency=charge.currency,
                        source=_reference("re"), charge_reference=charge.reference)
        return decided

    @staticmethod
    def _charge_result(charge: SandboxCharge) -> ChargeResult:
        state = ChargeState(charge.state)
        reason = "sandbox_processing: the bank refused the debit" if (
            state == ChargeState.FAILED) else ""
        return ChargeResult(charge.reference, state, reason)

    def cancel_charge(self, *, reference: str, amount_minor: int, idempotency_key: str) -> None:
        assert_outside_transaction("a sandbox gateway call (cancel_charge)")
        with transaction.atomic():
            charge = SandboxCharge.objects.select_for_update().filter(reference=reference).first()
            if charge is None or charge.cancelled:
                return
            SandboxCharge.objects.filter(pk=charge.pk).update(cancelled=True)
            if charge.state == ChargeState.SUCCEEDED:  # the money given back leaves the balance
                sandbox_balance.record(
                    organization_id=charge.organization_id, type=LineType.REFUND,
                    amount_minor=-amount_minor, currency=charge.currency,
                    source=_reference("re"), charge_reference=charge.reference)

    def refund(
        self, *, charge_reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        assert_outside_transaction("a sandbox gateway call (refund)")
        existing = SandboxRefund.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return self._result(existing)
        charge = SandboxCharge.objects.filter(reference=charge_reference).first()
        if charge is None:
            raise GatewayError(f"no such charge {charge_reference}", permanent=True)
        _reachable(charge)
        if charge.disputes.filter(status="needs_response").exists():
            raise GatewayError("sandbox: charge_disputed: the charge has an open dispute",
                               permanent=True)
        settle_after = timezone.now() + dt.timedelta(seconds=settings.KASSA_SANDBOX_SETTLE_SECONDS)
        try:
            with transaction.atomic():
                refund = SandboxRefund.objects.create(
                    organization_id=charge.organization_id, reference=_reference("re"),
                    idempotency_key=idempotency_key, charge=charge,
                    amount_minor=amount_minor, settle_after=settle_after,
                )
                sandbox_balance.refunded(refund)
        except IntegrityError:
            refund = SandboxRefund.objects.get(idempotency_key=idempotency_key)
        return self._result(refund)

    def refund_status(self, *, reference: str) -> RefundResult:
        assert_outside_transaction("a sandbox gateway call (refund_status)")
        refund = SandboxRefund.objects.select_related("charge").filter(reference=reference).first()
        if refund is None:
            raise GatewayError(f"no such refund {reference}", permanent=True)
        _reachable(refund.charge)
        if refund.state == RefundState.PENDING and refund.settle_after <= timezone.now():
            self.settle(refund)
            refund.refresh_from_db()
        return self._result(refund)

    def find_refund(self, *, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        assert_outside_transaction("a sandbox gateway call (find_refund)")
        charge = SandboxCharge.objects.filter(reference=charge_reference).first()
        if charge is None:
            return None
        _reachable(charge)
        refund = SandboxRefund.objects.filter(charge=charge,
                                              idempotency_key=idempotency_key).first()
        return self._result(refund) if refund is not None else None

    def heal(self, charge_reference: str) -> bool:
        """Make a `sandbox_refund_unreachable` charge's refunds reachable again."""
        return bool(SandboxCharge.objects.filter(reference=charge_reference, source=UNREACHABLE)
                    .update(source="sandbox_ok"))

    def settle(self, refund: SandboxRefund) -> None:
        """Settle a pending refund now, as the processor would after 24–48 hours."""
        state = (RefundState.FAILED if refund.charge.source == "sandbox_refund_fails"
                 or _disputed_since(refund) else RefundState.SUCCEEDED)
        with transaction.atomic():
            settled = SandboxRefund.objects.filter(pk=refund.pk, state=RefundState.PENDING).update(
                state=state, settle_after=min(refund.settle_after, timezone.now())
            )
            if settled and state == RefundState.FAILED:  # the money comes back to the balance
                sandbox_balance.record(
                    organization_id=refund.organization_id, type=LineType.REFUND_FAILURE,
                    amount_minor=refund.amount_minor, currency=refund.charge.currency,
                    source=refund.reference, charge_reference=refund.charge.reference)

    def balance_lines(self, *, organization_id: int, start: dt.datetime, end: dt.datetime,
                      with_payouts: bool = True) -> list[BalanceLine]:
        assert_outside_transaction("a sandbox gateway call (balance_lines)")
        return sandbox_balance.lines(organization_id=organization_id, start=start, end=end)

    def balance_lines_of(self, *, organization_id: int,
                         references: list[str]) -> list[BalanceLine]:
        assert_outside_transaction("a sandbox gateway call (balance_lines_of)")
        return sandbox_balance.lines_of(organization_id=organization_id, references=references)

    @staticmethod
    def _result(refund: SandboxRefund) -> RefundResult:
        reason = ""
        if refund.state == RefundState.FAILED:
            reason = ("sandbox_refund_fails" if refund.charge.source == "sandbox_refund_fails"
                      else "charge_for_pending_refund_disputed")
        return RefundResult(refund.reference, RefundState(refund.state), reason)
