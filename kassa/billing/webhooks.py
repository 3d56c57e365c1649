"""What Stripe tells us of an online payment's charge (`payment_intent.succeeded`,
`payment_intent.processing`, `payment_intent.payment_failed`), sooner than the worker's poll.

The endpoint and its signature check are the refunds' (`kassa.refunds.webhooks`); this finds
the payment — by the PaymentIntent id its charge recorded, or else by the key `charge` wrote
into the PaymentIntent's metadata (the answer was lost, and only the event tells the id) — and
books the news through `settle_charge`, which moves a payment on once: a duplicate or late
event changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from kassa.billing import charges
from kassa.billing.models import Payment
from kassa.gateways.stripe import KEY_METADATA, charge_result

PAYMENT_EVENTS = ("payment_intent.succeeded", "payment_intent.processing",
                  "payment_intent.payment_failed")
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,200}")
# Ours or another installation's (whose name may hold "-"): `payment_key` decides below.
_PAYMENT_KEY = re.compile(r"kassa-[A-Za-z0-9_.-]{1,64}-payment-([0-9]{1,18})")


def apply_payment_intent(obj: dict[str, Any]) -> str:
    """Book one PaymentIntent event's object; say what was done (for logs and tests)."""
    payment = _find_payment(obj)
    if payment is None:
        return "unknown payment"
    before = payment.status, payment.charge_state
    after = charges.settle_charge(payment.pk, charge_result(obj))
    return "applied" if (after.status, after.charge_state) != before else "unchanged"


def _find_payment(obj: dict[str, Any]) -> Payment | None:
    reference = obj.get("id")
    if not isinstance(reference, str) or not _STRIPE_ID.fullmatch(reference):
        return None
    found = Payment.objects.filter(gateway="stripe", gateway_reference=reference).first()
    if found is not None:
        return found
    metadata = obj.get("metadata")
    key = metadata.get(KEY_METADATA) if isinstance(metadata, dict) else None
    match = _PAYMENT_KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        return None
    payment = Payment.objects.filter(pk=int(match.group(1)), gateway="stripe").first()
    if payment is None or charges.payment_key(payment) != key:
        return None  # another installation's payment, sharing the Stripe account
    if payment.gateway_reference not in ("", reference):
        return None
    return payment
