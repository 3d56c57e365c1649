"""Why a refund failed, in plain words for the front desk (issue 15, item 7). The gateways give
codes (Stripe's refund `failure_reason`, the sandbox's source names); an unknown one is shown
as it came, after the plain sentence."""

from __future__ import annotations

PLAIN = {
    "sandbox_refund_fails": "The card network did not accept the refund (a sandbox test card "
                            "whose refunds fail)",
    "declined": "The card's bank declined the refund",
    "expired_or_canceled_card": "The card has expired or was cancelled",
    "lost_or_stolen_card": "The card was reported lost or stolen",
    "insufficient_funds": "The processor's balance could not cover the refund",
    "charge_for_pending_refund_disputed": "The customer disputed the charge with their bank",
    "merchant_request": "The refund was cancelled at the processor",
    "unknown": "The processor did not say why",
}


def plain_reason(code: str) -> str:
    code = (code or "").strip()
    if not code:
        return "The gateway did not say why"
    return PLAIN.get(code, f"The gateway said: {code}")
