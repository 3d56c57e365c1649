"""`POST /api/v1/webhooks/{gateway}`: what a gateway tells us about refunds (and, through
`kassa.billing.webhooks`, about payments' charges), sooner than a poll.

Only Stripe sends webhooks. Its signature (`Stripe-Signature`, HMAC-SHA256 with
`STRIPE_WEBHOOK_SECRET`, at most five minutes old) is checked before anything is read: a bad,
missing or stale one is 400 `invalid_signature` and changes nothing (a signed body that is not
an event, which Stripe never sends, is 422 `validation_error`). The refund events
(`refund.created`, `refund.updated`, `refund.failed`, `charge.refund.updated`) all carry a
Refund object; its status goes through `apply_gateway_result`, which only moves a refund forwards
(pending → succeeded → failed) and each step once, so a duplicate or late event changes nothing.

`charge.dispute.*` events carry a Dispute object, read by `dispute_news` and booked by
`kassa.refunds.disputes.apply_news` (found by its id: duplicates and any order are safe). A
refund event for a refund no Kassa made (no key in its metadata: made in Stripe's dashboard)
is booked by `kassa.refunds.gateway_refunds` with origin gateway, when it fits.

An event may arrive before the refund's gateway call has recorded Stripe's id (the call timed
out, or is still under way): the refund is then found by the idempotency key that
`StripeGateway.refund` writes into the Stripe refund's metadata. An event for no refund of ours
is answered 200 and ignored (logged), as is every other event type, so that Stripe stops
resending it.
Whatever the body, the answer is never a 500.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import stripe
from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema

from kassa.billing.webhooks import PAYMENT_EVENTS, apply_payment_intent
from kassa.core.errors import DomainError, NotFound, ValidationFailed
from kassa.core.schemas import Problem
from kassa.gateways.stripe import KEY_METADATA, refund_result
from kassa.refunds import disputes, gateway_refunds
from kassa.refunds.gateway_calls import idempotency_key
from kassa.refunds.lifecycle import apply_gateway_result, record_gateway_reference
from kassa.refunds.models import DisputeStatus, Refund

logger = logging.getLogger("kassa.refunds")

router = Router(tags=["webhooks"])

REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
# Stripe ids are short ASCII words; anything else (NUL, megabytes) never reaches a query.
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,200}")
# Ours, or another installation's (which the key's own check below then refuses).
_REFUND_KEY = re.compile(r"kassa-(?:[A-Za-z0-9_.-]{1,64}-)?refund-([0-9]{1,18})")


class Received(Schema):
    received: bool


class InvalidSignature(DomainError):
    code = "invalid_signature"
    status = 400
    title = "The webhook signature is not valid"


@router.post("/webhooks/{gateway}", auth=None,
             response={200: Received, 400: Problem, 404: Problem, 422: Problem})
def receive(request: HttpRequest, gateway: str) -> Any:
    if gateway != "stripe":
        raise NotFound("No webhooks for this gateway")
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        logger.error("a Stripe webhook arrived, but STRIPE_WEBHOOK_SECRET is not set")
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature"), secret).to_dict()
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(exc.user_message or "The signature does not match") from None
    except UnicodeDecodeError:
        raise InvalidSignature("The body is not UTF-8: no signature can match it") from None
    except Exception:  # signed, yet not an event: not JSON, not an object
        raise ValidationFailed("body", "is not a Stripe event") from None
    outcome = handle_stripe_event(event)
    logger.info("stripe event %s (%s): %s", event.get("id"), event.get("type"), outcome)
    return {"received": True}


def handle_stripe_event(event: dict[str, Any]) -> str:
    """Apply one verified Stripe event; say what was done (for logs and tests)."""
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return "ignored"
    if kind in PAYMENT_EVENTS:
        return apply_payment_intent(obj)
    if isinstance(kind, str) and kind.startswith("charge.dispute."):
        news = dispute_news(obj)
        return disputes.apply_news(news) if news is not None else "ignored"
    if kind not in REFUND_EVENTS:
        return "ignored"
    refund_id = _find_refund(obj)
    if refund_id is None:
        if _made_at_stripe(obj):
            result = refund_result(obj)
            return gateway_refunds.book(
                gateway="stripe", reference=result.reference,
                charge_reference=str(obj.get("payment_intent") or ""),
                amount_minor=_amount(obj), state=result.state,
                failure_reason=result.failure_reason)
        logger.info("stripe event %s for refund %r: no refund of ours", kind, obj.get("id"))
        return "unknown refund"
    result = refund_result(obj)
    changed = apply_gateway_result(refund_id=refund_id, state=result.state,
                                   failure_reason=result.failure_reason)
    return "applied" if changed else "unchanged"


def _find_refund(obj: dict[str, Any]) -> int | None:
    """Our refund of this Stripe refund: by the reference its gateway call recorded, or else by
    the key in its metadata (recording the reference then, which a lost answer never gave)."""
    reference = obj.get("id")
    if not isinstance(reference, str) or not _STRIPE_ID.fullmatch(reference):
        return None
    found = Refund.objects.filter(gateway="stripe", gateway_reference=reference)
    refund_id = found.values_list("id", flat=True).first()
    if refund_id is not None:
        return refund_id
    metadata = obj.get("metadata")
    key = metadata.get(KEY_METADATA) if isinstance(metadata, dict) else None
    match = _REFUND_KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        return None
    refund = (Refund.objects.select_related("payment")
              .filter(pk=int(match.group(1)), gateway="stripe").first())
    if (refund is None or idempotency_key(refund) != key or refund.payment is None
            or refund.payment.gateway_reference != obj.get("payment_intent")
            or refund.gateway_reference not in ("", reference)):
        return None
    record_gateway_reference(refund_id=refund.pk, reference=reference)
    return refund.pk


def _amount(obj: dict[str, Any]) -> int:
    amount = obj.get("amount")
    return amount if isinstance(amount, int) and not isinstance(amount, bool) else 0


def _made_at_stripe(obj: dict[str, Any]) -> bool:
    """A refund no Kassa made: made in Stripe's dashboard, say. Every refund Kassa makes, and
    every charge it gives back, carries its key in the metadata (whichever installation)."""
    reference, intent = obj.get("id"), obj.get("payment_intent")
    metadata = obj.get("metadata")
    ours = isinstance(metadata, dict) and KEY_METADATA in metadata
    return (not ours and isinstance(reference, str) and bool(_STRIPE_ID.fullmatch(reference))
            and isinstance(intent, str) and bool(_STRIPE_ID.fullmatch(intent)))


# Stripe's dispute statuses as ours: an inquiry (warning_*) withdraws nothing; one closed
# without a chargeback is as good as won.
DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.WARNING,
    "warning_under_review": DisputeStatus.WARNING,
    "warning_closed": DisputeStatus.WON,
    "needs_response": DisputeStatus.NEEDS_RESPONSE,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
}


def dispute_news(obj: dict[str, Any]) -> disputes.DisputeNews | None:
    """A Stripe Dispute object (`charge.dispute.*`) as news for `disputes.apply_news`; None
    for one that cannot be read (logged)."""
    reference, intent = obj.get("id"), obj.get("payment_intent")
    status = DISPUTE_STATUSES.get(obj.get("status"))  # type: ignore[arg-type]
    if (not isinstance(reference, str) or not _STRIPE_ID.fullmatch(reference)
            or not isinstance(intent, str) or not _STRIPE_ID.fullmatch(intent)
            or status is None or _amount(obj) <= 0):
        logger.warning("stripe dispute %r: cannot read it (status %r, payment_intent %r)",
                       reference, obj.get("status"), intent)
        return None
    evidence = obj.get("evidence_details")
    due = evidence.get("due_by") if isinstance(evidence, dict) else None
    respond_by = (dt.datetime.fromtimestamp(due, tz=dt.UTC)
                  if isinstance(due, int) and 0 < due < 2**33 else None)
    reason = obj.get("reason")
    return disputes.DisputeNews(
        gateway="stripe", reference=reference, charge_reference=intent,
        amount_minor=_amount(obj), status=status, respond_by=respond_by,
        reason="".join(c for c in reason if c.isprintable())[:100]
        if isinstance(reason, str) else "")
