"""One exception per broken rule, each with a stable `code`, an HTTP status and, for bad input,
the field it concerns. The API maps them to RFC 9457 problem responses in one place
(kassa/api.py); the web forms put the same message beside the field.
"""

from __future__ import annotations

import re

# How a field's name reads in a sentence, where its words alone would not do.
FIELD_WORDS = {"refund_to": "refund", "email": "e-mail", "tax_rate": "tax rate",
               "package_template": "package template"}
_INDEXED = re.compile(r"([a-z_]+)\[(\d+)\]")


def field_words(field: str) -> str:
    """`lines[0].unit_price` as people say it: "line 1's unit price"."""
    words = []
    for part in field.split("."):
        indexed = _INDEXED.fullmatch(part)
        if indexed:
            name = FIELD_WORDS.get(indexed.group(1), indexed.group(1).replace("_", " "))
            words.append(f"{name.removesuffix('s')} {int(indexed.group(2)) + 1}")
        else:
            words.append(FIELD_WORDS.get(part, part.replace("_", " ")))
    return "'s ".join(words)


def sentence(field: str, message: str) -> str:
    """A field's message as a whole sentence for `detail`: "The amount must be greater than
    zero." (the field's own `errors[].message` stays the short one)."""
    words = field_words(field) if field else "request"
    subject = words if _INDEXED.match(field.split(".")[0] if field else "") else f"the {words}"
    subject = subject[:1].upper() + subject[1:]
    message = message.strip().rstrip(".")
    if message[:1].islower():
        return f"{subject} {message}."
    return f"{subject}: {message}."


class DomainError(Exception):
    code = "domain_error"
    status = 422
    title = "The request breaks a rule"

    def __init__(self, detail: str = "", *, field: str | None = None) -> None:
        self.detail = detail or self.title
        self.field = field
        super().__init__(self.detail)

    @property
    def errors(self) -> list[dict[str, str]]:
        return [{"field": self.field, "message": self.detail}] if self.field else []


class ValidationFailed(DomainError):
    code = "validation_error"
    title = "The request is not valid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(sentence(field, message), field=field)
        self.message = message

    @property
    def errors(self) -> list[dict[str, str]]:
        return [{"field": self.field or "", "message": self.message}]


class InvalidAmount(ValidationFailed):
    code = "invalid_amount"
    title = "The amount is not valid"


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class PermissionDenied(DomainError):
    code = "forbidden"
    status = 403
    title = "Your role may not do this"


class RefundNotPermitted(PermissionDenied):
    code = "refund_not_permitted"
    title = "Your role may not refund"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    title = "The Idempotency-Key was used with another request"


class PaymentExceedsBalance(DomainError):
    code = "payment_exceeds_balance"
    title = "The payment is more than the invoice's balance due"


class PaymentDeclined(DomainError):
    code = "payment_declined"
    status = 402
    title = "The payment was declined"


class GatewayUnavailable(DomainError):
    """The gateway did not answer or answered 5xx: retryable, never the customer's fault."""

    code = "gateway_unavailable"
    status = 503
    title = "The payment gateway is unavailable; try again"


class RefundExceedsRefundable(DomainError):
    code = "refund_exceeds_refundable"
    title = "The refund is more than the payment's refundable amount"


class PaymentNotSucceeded(DomainError):
    """A refund of a payment whose charge is still processing, failed or was declined: no
    money was booked, so there is none to give back."""

    code = "payment_not_succeeded"
    status = 409
    title = "This payment has not succeeded, so nothing of it can be refunded"


class Busy(DomainError):
    """A row lock waited for longer than settings.LOCK_WAIT_SECONDS: retry."""

    code = "busy"
    status = 503
    title = "Kassa is busy; try again"


class ChargeNotStuck(DomainError):
    code = "charge_not_stuck"
    status = 409
    title = "The worker has not given up on this payment's charge"


class RefundPending(DomainError):
    code = "refund_pending"
    status = 409
    title = "An online refund of this payment is pending"


class OnlineRefundNotAllowed(DomainError):
    code = "online_refund_not_allowed"
    title = "Only an online payment can be refunded online"


class NoteRequired(DomainError):
    code = "note_required"
    title = "A note is required when the method is other"


class PackageRefundExceedsBalance(DomainError):
    code = "package_refund_exceeds_balance"
    title = "The refund is more than the package's balance"


class PackageAlreadyRefunded(DomainError):
    code = "package_already_refunded"
    status = 409
    title = "This package was refunded already, and the organization allows one refund"


class PackageClosed(DomainError):
    code = "package_closed"
    title = "The package is closed"


class BenefitExhausted(DomainError):
    code = "benefit_exhausted"
    title = "Not enough of this benefit is left"


class RefundNotStuck(DomainError):
    code = "refund_not_stuck"
    status = 409
    title = "The refund is not waiting for a person"


class GatewayRefundExists(DomainError):
    code = "gateway_refund_exists"
    status = 409
    title = "The gateway has this refund"


class CreditInsufficient(DomainError):
    code = "credit_insufficient"
    title = "The customer's credit is less than the amount"


class CardRefundMustGoToCard(DomainError):
    code = "card_refund_must_go_to_card"
    title = "Credit that came from a card payment is refunded to that card"


class PaymentDisputed(DomainError):
    code = "payment_disputed"
    status = 409
    title = "This payment is disputed"


class DisputeNotLost(DomainError):
    code = "dispute_not_lost"
    status = 409
    title = "Only a lost dispute is settled"


class DisputeSettled(DomainError):
    code = "dispute_settled"
    status = 409
    title = "This dispute is settled already"


class ReturnNotAllowed(DomainError):
    code = "return_not_allowed"
    title = "Only a check or ACH payment can be returned"


class ReturnExceedsUnrefunded(DomainError):
    code = "return_exceeds_unrefunded"
    title = "The return is more than the payment has left"


class PaymentAlreadyReturned(DomainError):
    code = "payment_already_returned"
    status = 409
    title = "This payment was returned already"


class RefundRequestOpen(DomainError):
    code = "refund_request_open"
    status = 409
    title = "A refund request of this is open already"


class SelfApprovalNotAllowed(PermissionDenied):
    code = "self_approval_not_allowed"
    title = "A refund request is approved by someone else than who asked"


class RequestNotOpen(DomainError):
    code = "request_not_open"
    status = 409
    title = "The refund request is no longer open"


class ReasonCodeRequired(DomainError):
    code = "reason_code_required"
    title = "A reason code is required"


class UnknownReasonCode(DomainError):
    code = "unknown_reason_code"
    title = "The reason code is not one of the organization's"


class RefundWindowClosed(DomainError):
    code = "refund_window_closed"
    title = "The payment is older than the online refund window"


class RefundLimitExceeded(DomainError):
    code = "refund_limit_exceeded"
    title = "The refund is past the daily refund limit"
