"""The Stripe gateway, on the official `stripe` SDK (StripeClient, API v1).

A payment creates and confirms a PaymentIntent for the `source` PaymentMethod (`pm_card_visa` in
test mode); a refund refunds that PaymentIntent. Every call carries the caller's idempotency key,
so a retried call asks Stripe for the same thing again. Errors are sorted as the base interface
wants: a card problem is `PaymentDeclined` (an unknown PaymentMethod is bad input on `source`); a
network error, 5xx, 409, rate limit or rejected API key is a retryable `GatewayError`; whatever
else Stripe refuses is permanent.

Stripe (API v1) keeps the first answer to a key *once the endpoint began executing*, 500s
included, so after a 500 or a lost answer the same key may never succeed, although the refund
may well exist. A refund therefore carries its key in its metadata, and a failed `refund` call
first looks among the PaymentIntent's refunds for one with that key before it reports the error;
the webhook (kassa.refunds.webhooks) matches on the same metadata.

`STRIPE_API_BASE` points the SDK elsewhere (a local fake, stripe-mock); the SDK's own network
retries are off, since the caller's task already retries with backoff.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

import stripe
from django.conf import settings

from kassa.core.errors import PaymentDeclined, ValidationFailed
from kassa.core.locks import assert_outside_transaction
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

if TYPE_CHECKING:
    from stripe.params import BalanceTransactionListParams, PaymentIntentCreateParams

# Our key for a refund, in the refund's Stripe metadata (found again by list and by webhook).
KEY_METADATA = "kassa_idempotency_key"
MAX_LISTED_REFUNDS = 100  # Stripe's page limit; a PaymentIntent refunded more often is unheard of

REFUND_STATES: dict[str, RefundState] = {
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "succeeded": RefundState.SUCCEEDED,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}


# Stripe's reporting categories as Kassa's line types. What else Stripe may list (a charge
# failure, an adjustment, a top-up, a transfer) is shown as a fee line under its own category,
# and never matched: it is money Kassa did not move.
LINE_TYPES: dict[str, LineType] = {
    "charge": LineType.CHARGE, "refund": LineType.REFUND,
    "refund_failure": LineType.REFUND_FAILURE, "dispute": LineType.DISPUTE,
    "dispute_reversal": LineType.DISPUTE_REVERSAL, "payout": LineType.PAYOUT,
    "fee": LineType.FEE,
}
MAX_LISTED_LINES = 100  # Stripe's page limit; the SDK pages on
MAX_LOOKED_UP = 50  # lines looked for by source in one reconciliation: bounded calls


def _traced_intent(source: Any) -> str:
    """The PaymentIntent (Kassa's payment reference) a balance line's expanded source belongs
    to: a charge's, a refund's or a dispute's `payment_intent`."""
    if not isinstance(source, dict):
        return ""
    intent = source.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return str(intent or "")


def balance_lines_of(txn: dict[str, Any], pays_out_minor: int | None = 0) -> list[BalanceLine]:
    """One Stripe BalanceTransaction as Kassa's lines: its gross amount, and its fee (Stripe
    nets processing and dispute fees into the same transaction) as a fee line of its own."""
    source = txn.get("source")
    source_id = str(source.get("id") if isinstance(source, dict) else source or "")
    of = str(source.get("object") or "") if isinstance(source, dict) else ""
    category = str(txn.get("reporting_category") or txn.get("type") or "")
    kind = LINE_TYPES.get(category, LineType.FEE)
    created = dt.datetime.fromtimestamp(int(txn.get("created") or 0), tz=dt.UTC)
    currency = str(txn.get("currency") or "").upper()
    charge = "" if kind == LineType.PAYOUT else _traced_intent(source)
    found = [BalanceLine(gateway_id=str(txn.get("id")), type=kind,
                         amount_minor=int(txn.get("amount") or 0), currency=currency,
                         source=source_id, charge=charge, created=created,
                         pays_out_minor=pays_out_minor if kind == LineType.PAYOUT else 0,
                         of=of, category=category)]
    fee = int(txn.get("fee") or 0)
    if fee:
        found.append(BalanceLine(gateway_id=f"{txn.get('id')}:fee", type=LineType.FEE,
                                 amount_minor=-fee, currency=currency, source=source_id,
                                 charge=charge, created=created, of=of, category="fee"))
    return found


def refund_state(status: object) -> RefundState:
    """Stripe's refund status as ours; anything new or unknown is still pending (poll again)."""
    if not isinstance(status, str):
        return RefundState.PENDING
    return REFUND_STATES.get(status, RefundState.PENDING)


def refund_result(refund: dict[str, Any]) -> RefundResult:
    """A Stripe refund (as a plain dict: the API's JSON or an event's object) as our result."""
    state = refund_state(refund.get("status"))
    reason = ""
    if state == RefundState.FAILED:
        reason = str(refund.get("failure_reason") or refund.get("status"))
        # Stored as text: no NUL (PostgreSQL refuses it) nor other control characters.
        reason = "".join(c for c in reason if c.isprintable())[:300]
    return RefundResult(reference=str(refund.get("id")), state=state, failure_reason=reason)


def charge_result(intent: dict[str, Any]) -> ChargeResult:
    """A PaymentIntent (the API's JSON or an event's object) as our charge result: succeeded,
    processing, or failed (anything that will not take the money: requires_payment_method
    after a failed debit, canceled)."""
    status = intent.get("status")
    if status == "succeeded":
        return ChargeResult(str(intent.get("id")), ChargeState.SUCCEEDED)
    if status == "processing":
        return ChargeResult(str(intent.get("id")), ChargeState.PROCESSING)
    error = intent.get("last_payment_error")
    reason = str(error.get("message") or status) if isinstance(error, dict) else str(status)
    reason = "".join(c for c in reason if c.isprintable())[:300]
    return ChargeResult(str(intent.get("id")), ChargeState.FAILED, reason)


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    """Retryable: the network, Stripe's 5xx, a 409 (a concurrent request with the same key),
    rate limits, and a rejected API key (ours to fix: the refund waits, and is flagged stuck if
    it waits too long, rather than failing in front of the customer). Whatever else Stripe
    refuses (a bad request, an idempotency mismatch) is permanent."""
    status = exc.http_status
    retryable = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError
                           | stripe.AuthenticationError | stripe.PermissionError) or (
        isinstance(exc, stripe.APIError) and (status is None or status >= 500 or status == 409)
    )
    message = exc.user_message or str(exc) or type(exc).__name__
    if exc.code and exc.code not in message:  # e.g. charge_disputed, which the refunds read
        message = f"{exc.code}: {message}"
    return GatewayError(f"stripe: {message}"[:500], permanent=not retryable)


class StripeGateway(Gateway):
    name = "stripe"
    account_wide = True  # one Stripe account serves the installation
    timeout_seconds: float = 30.0

    def __init__(self) -> None:
        base = settings.STRIPE_API_BASE
        self.client = stripe.StripeClient(
            settings.STRIPE_API_KEY,
            base_addresses={"api": base} if base else None,
            max_network_retries=0,
            http_client=stripe.new_default_http_client(timeout=self.timeout_seconds),
        )

    def charge(
        self, *, amount_minor: int, currency: str, source: str, idempotency_key: str,
        organization_id: int, description: str = "",
    ) -> ChargeResult:
        assert_outside_transaction("a Stripe gateway call (charge)")
        self.check_source(source)
        # The SDK's API version (endive) refuses `payment_method_types` with a 400
        # (payment_method_types_no_longer_supported): `allowed_payment_method_types` replaced
        # it. A front desk cannot do 3-D Secure for the customer: fail instead of waiting.
        params: PaymentIntentCreateParams = {
            "amount": amount_minor, "currency": currency.lower(), "payment_method": source,
            "allowed_payment_method_types": ["card"], "confirm": True,
            "error_on_requires_action": True,
            # Found again by `find_charge` when the answer was lost with its process.
            "metadata": {KEY_METADATA: idempotency_key},
        }
        if description:
            params["description"] = description
        try:
            intent = self.client.v1.payment_intents.create(
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            raise PaymentDeclined(exc.user_message or "The card was declined",
                                  field="source") from exc
        except stripe.InvalidRequestError as exc:
            if exc.param == "payment_method":  # no such PaymentMethod: the user's input
                message = exc.user_message or "no such PaymentMethod"
                raise ValidationFailed("source", message) from exc
            raise _gateway_error(exc) from exc
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        if intent.status in ("succeeded", "processing"):
            return charge_result(intent.to_dict())
        # requires_payment_method: declined; requires_action: 3-D Secure, which a front desk
        # cannot complete for the customer. No money moved in either case.
        raise PaymentDeclined(f"The card was not charged (Stripe: {intent.status})",
                              field="source")

    def check_source(self, source: str) -> None:
        if not source.startswith("pm_"):
            raise ValidationFailed("source", "must be a Stripe PaymentMethod id (pm_…)")

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        assert_outside_transaction("a Stripe gateway call (find_charge)")
        # Stripe's search is eventually consistent (about a minute): the worker asks only
        # about intents older than that (`kassa.billing.charges.RESOLVE_AFTER`).
        query = f"metadata['{KEY_METADATA}']:'{idempotency_key}'"
        try:
            found = self.client.v1.payment_intents.search(params={"query": query, "limit": 10})
        except stripe.StripeError as exc:
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc
        for intent in found.to_dict().get("data", []):
            if (intent.get("metadata") or {}).get(KEY_METADATA) == idempotency_key:
                return charge_result(intent)
        return None

    def charge_status(self, *, reference: str) -> ChargeResult:
        assert_outside_transaction("a Stripe gateway call (charge_status)")
        try:
            intent = self.client.v1.payment_intents.retrieve(reference)
        except stripe.StripeError as exc:
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc
        return charge_result(intent.to_dict())

    def cancel_charge(self, *, reference: str, amount_minor: int, idempotency_key: str) -> None:
        assert_outside_transaction("a Stripe gateway call (cancel_charge)")
        try:
            self.client.v1.refunds.create(
                params={"payment_intent": reference, "amount": amount_minor,
                        "metadata": {KEY_METADATA: idempotency_key}},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    def refund(
        self, *, charge_reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        assert_outside_transaction("a Stripe gateway call (refund)")
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": charge_reference, "amount": amount_minor,
                        "metadata": {KEY_METADATA: idempotency_key}},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            # Before reporting any failure, retryable or not (a key Stripe forgot after 24 h
            # would refuse as "already refunded"), look for the refund this key made.
            found = self._find_refund(charge_reference, idempotency_key)
            if found is None:
                raise _gateway_error(exc) from exc
            return found
        return refund_result(refund.to_dict())

    def refund_status(self, *, reference: str) -> RefundResult:
        assert_outside_transaction("a Stripe gateway call (refund_status)")
        try:
            refund = self.client.v1.refunds.retrieve(reference)
        except stripe.StripeError as exc:
            # Never permanent: Stripe tells a failed refund by its status, while an error here
            # (a wrong key or account, an outage) says nothing of the money. Failing the refund
            # on it could give back to refundable what was really refunded.
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc
        return refund_result(refund.to_dict())

    def find_refund(self, *, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        assert_outside_transaction("a Stripe gateway call (find_refund)")
        try:
            return self._listed_refund(charge_reference, idempotency_key)
        except stripe.StripeError as exc:
            # Not knowing is not "none": a person must not pay again what Stripe may have.
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc

    def _find_refund(self, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        """The refund made with this key, if Stripe made it although the call failed."""
        try:
            return self._listed_refund(charge_reference, idempotency_key)
        except stripe.StripeError:
            return None  # the caller reports the original failure and retries

    def _listed_refund(self, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        page = self.client.v1.refunds.list(
            params={"payment_intent": charge_reference, "limit": MAX_LISTED_REFUNDS})
        for refund in page.to_dict().get("data", []):
            if (refund.get("metadata") or {}).get(KEY_METADATA) == idempotency_key:
                return refund_result(refund)
        return None

    def balance_lines(self, *, organization_id: int, start: dt.datetime, end: dt.datetime,
                      with_payouts: bool = True) -> list[BalanceLine]:
        """The account's balance transactions of [start, end), each with its source expanded
        (to trace it to a PaymentIntent), and each automatic payout Stripe has reconciled with
        the net of what it paid out (a manual one's, or one not reconciled yet, is unknown)."""
        assert_outside_transaction("a Stripe gateway call (balance_lines)")
        return self._lines({"created": {"gte": int(start.timestamp()),
                                        "lt": int(end.timestamp())}}, with_payouts)

    def balance_lines_of(self, *, organization_id: int,
                         references: list[str]) -> list[BalanceLine]:
        """Stripe lists balance transactions by their source: a refund's or a dispute's id as
        Kassa keeps it, a payment's charge through its PaymentIntent's latest charge."""
        assert_outside_transaction("a Stripe gateway call (balance_lines_of)")
        found: list[BalanceLine] = []
        try:
            for reference in references[:MAX_LOOKED_UP]:
                source = reference
                if reference.startswith("pi_"):
                    intent = self.client.v1.payment_intents.retrieve(reference).to_dict()
                    source = str(intent.get("latest_charge") or "")
                    if not source:
                        continue
                found += self._lines({"source": source}, False)
        except stripe.StripeError as exc:
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc
        return found

    def _lines(self, params: dict[str, Any], with_payouts: bool) -> list[BalanceLine]:
        try:
            query = cast("BalanceTransactionListParams", {
                **params, "limit": MAX_LISTED_LINES, "expand": ["data.source"]})
            listed = [txn.to_dict() for txn in self.client.v1.balance_transactions.list(
                params=query).auto_paging_iter()]
            found: list[BalanceLine] = []
            for txn in sorted(listed, key=lambda t: (t.get("created") or 0, str(t.get("id")))):
                source = txn.get("source")
                paid: int | None = None
                if (with_payouts and isinstance(source, dict) and source.get("object") == "payout"
                        and source.get("automatic") is True
                        and source.get("reconciliation_status") == "completed"):
                    paid = self._paid_out(str(source.get("id")))
                found += balance_lines_of(txn, paid)
        except stripe.StripeError as exc:
            raise GatewayError(_gateway_error(exc).args[0], permanent=False) from exc
        return found

    def _paid_out(self, payout: str) -> int:
        """The net of the lines an automatic payout paid out (Stripe lists them by the
        payout)."""
        return sum(int(line.get("net") or 0) for line in (
            t.to_dict() for t in self.client.v1.balance_transactions.list(
                params={"payout": payout, "limit": MAX_LISTED_LINES}).auto_paging_iter())
            if line.get("type") != "payout")
