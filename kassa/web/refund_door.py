"""What every refund page shares about the policy (DESIGN.md, "Governed refunds"): each
page's refund goes through `kassa.refunds.requests.refund_or_request`, the API's one door, so
the reason codes, the online window, the daily limits and the approval threshold hold on the
pages too. Here: the *Reason code* field a form gains when the organization has codes, the
review of a refund that will be asked for instead of made, and the words of its outcome."""

from __future__ import annotations

from typing import Any

from django import forms

from kassa.core.money import display
from kassa.refunds.models import RefundRequest

REQUESTED = "Refund requested — a manager will approve it."
REASON_CODE = "reason_code"


def reason_code_choices(organization: Any) -> list[tuple[str, str]]:
    codes = organization.reason_codes or []
    return [("", "Choose a reason code")] + [
        (c["code"], c["label"] + (" (say why in the internal notes)"
                                  if c.get("note_required") else "")) for c in codes]


def add_reason_code(form: forms.Form, organization: Any) -> None:
    """With reason codes configured, the form asks for one, after its reason (whether one is
    given, and which, is the service's rule and message)."""
    if not organization.reason_codes:
        return
    fields = list(form.fields.items())
    at = next((i + 1 for i, (name, _) in enumerate(fields) if name == "reason"), len(fields))
    fields.insert(at, (REASON_CODE, forms.ChoiceField(
        label="Reason code", required=False, choices=reason_code_choices(organization))))
    form.fields = dict(fields)  # type: ignore[assignment]


def requested_review(request: RefundRequest) -> dict[str, Any]:
    """The review of a refund that this person asks for: nothing moves until it is approved."""
    organization = request.organization
    return {"requested": True, "request_id": request.pk,
            "amount": display(request.amount_minor, organization.currency,
                              organization.locale)}


def review_of(made: tuple[str, Any], refunded: Any) -> dict[str, Any]:
    """The review of what `refund_or_request` made: `refunded(what)` for a refund made."""
    status, what = made
    return requested_review(what) if status == "requested" else refunded(what)
