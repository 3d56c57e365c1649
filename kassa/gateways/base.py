"""The one small interface every payment gateway implements.

Every call carries an idempotency key that the caller derives from its own row (the payment's
request, the refund's id), so that a retry after a timeout asks the gateway for the same thing
again instead of charging or refunding twice. A gateway raises `PaymentDeclined` for a customer's
card problem (permanent: tell the user) and `GatewayError` for everything else, marked
`permanent` or not: a retryable error is retried with backoff by the task that made the call.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum


class GatewayError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class RefundState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ChargeState(StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # the processor has not decided (bank debits, some cards)
    FAILED = "failed"


@dataclass(frozen=True)
class ChargeResult:
    reference: str
    state: ChargeState = ChargeState.SUCCEEDED
    failure_reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    reference: str
    state: RefundState
    failure_reason: str = ""


class LineType(StrEnum):
    """What moved the processor balance: the kinds of line a processor's balance history has
    (Stripe's reporting categories)."""

    CHARGE = "charge"
    REFUND = "refund"
    REFUND_FAILURE = "refund_failure"
    DISPUTE = "dispute"
    DISPUTE_REVERSAL = "dispute_reversal"
    FEE = "fee"
    PAYOUT = "payout"


@dataclass(frozen=True)
class BalanceLine:
    """One movement of the merchant's balance at the processor, signed: + into it (a charge,
    a failed refund, a won dispute), − out of it (a refund, a dispute, a fee, a payout).

    `source` is the processor's object that moved it (the charge, refund, dispute or payout
    reference, as Kassa stores it); `charge` the charge it belongs to (Kassa's payment's
    reference), empty for a payout; `of` what kind of object the source is (charge, refund,
    dispute, payout) and `category` the processor's own name for the line (one Kassa does not
    know is never matched). A payout's `pays_out_minor` is the net of the lines the processor
    says it paid out, None where it cannot say (a manual payout, one not reconciled yet)."""

    gateway_id: str
    type: LineType
    amount_minor: int
    currency: str
    source: str
    charge: str
    created: dt.datetime
    pays_out_minor: int | None = 0
    of: str = ""
    category: str = ""


class Gateway(ABC):
    name: str
    # The processor account serves the whole installation (its lines are every
    # organization's), rather than one account per organization as the sandbox keeps.
    account_wide: bool = False

    @abstractmethod
    def charge(
        self, *, amount_minor: int, currency: str, source: str, idempotency_key: str,
        organization_id: int, description: str = "",
    ) -> ChargeResult:
        """Charge `source`; `organization_id` is the merchant Kassa charges for (the sandbox
        keeps its charges under it; a processor account shared by the installation ignores
        it)."""

    @abstractmethod
    def check_source(self, source: str) -> None:
        """Refuse (ValidationFailed on `source`) what cannot be a source at this gateway, before
        a payment is recorded for it."""

    @abstractmethod
    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """The charge made with this key, if the gateway has one: how the worker learns what
        became of a payment whose charge was under way when its process died."""

    @abstractmethod
    def charge_status(self, *, reference: str) -> ChargeResult:
        """How a charge the processor was still deciding stands now."""

    @abstractmethod
    def cancel_charge(self, *, reference: str, amount_minor: int, idempotency_key: str) -> None:
        """Give back a charge that could not be recorded (e.g. the invoice was paid meanwhile)."""

    @abstractmethod
    def refund(
        self, *, charge_reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> RefundResult: ...

    @abstractmethod
    def refund_status(self, *, reference: str) -> RefundResult: ...

    @abstractmethod
    def find_refund(self, *, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        """The refund of this charge made with this key, if the gateway has one (whatever we
        recorded): how a person resolving a stuck refund learns what really happened."""

    @abstractmethod
    def balance_lines(self, *, organization_id: int, start: dt.datetime, end: dt.datetime,
                      with_payouts: bool = True) -> list[BalanceLine]:
        """The balance's movements created in [start, end), oldest first: what reconciliation
        matches against Kassa's payments, refunds and disputes. `with_payouts=False` spares
        finding out what each payout paid out (its `pays_out_minor` is then None)."""

    @abstractmethod
    def balance_lines_of(self, *, organization_id: int,
                         references: list[str]) -> list[BalanceLine]:
        """The balance's movements, whenever they were, of these charges, refunds and disputes
        (Kassa's references): how reconciliation finds a line that fell on another day."""
