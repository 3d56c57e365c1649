"""Governed refunds (DESIGN.md, "Governed refunds"): the policy's rules, and refund requests.

`refund_or_request` is the one door of every kind of refund (payment, package, split,
credit): it checks the policy's rules (reason codes, the online window), then either calls
the refund service (`kassa.refunds.services`) or, when the actor only asks, the amount is above
the approval threshold or past the actor's daily limit, records a request that reserves the
amount. Approval calls the same door in one transaction, the request marked approved first
(so its own reservation no longer counts), under the usual lock order; any rule that fails
rolls it all back and the request stays open.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, Sum
from django.utils import timezone

from kassa.audit.services import record
from kassa.billing.models import Payment, PaymentEvent
from kassa.core.errors import (
    ReasonCodeRequired,
    RefundExceedsRefundable,
    RefundLimitExceeded,
    RefundNotPermitted,
    RefundRequestOpen,
    RefundWindowClosed,
    RequestNotOpen,
    SelfApprovalNotAllowed,
    UnknownReasonCode,
    ValidationFailed,
)
from kassa.core.locks import lock_payment, lock_refund_request, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.core.outbox import enqueue
from kassa.packages.models import Package
from kassa.refunds import services
from kassa.refunds.models import (
    Refund,
    RefundRequest,
    RefundStatus,
    RequestKind,
    RequestStatus,
)
from kassa.tenancy.models import Membership, Organization, Role
from kassa.tenancy.services import may_refund, require_refund_permission
from kassa.webhooks.events import emit

Made = tuple[str, Any]  # ("refunded", Refund | (group, [Refund])) or ("requested", request)


# --- the rules of the policy -----------------------------------------------------------------

def check_reason_code(organization: Organization, body: dict[str, Any]) -> None:
    """With reason codes configured, `reason_code` is required and must be one of them; a
    code whose `note_required` is set needs an `internal_note`."""
    codes = {c["code"]: c for c in organization.reason_codes or []}
    given = (body.get("reason_code") or "").strip()
    if not codes:
        return
    if not given:
        raise ReasonCodeRequired("Choose a reason code for this refund", field="reason_code")
    if given not in codes:
        raise UnknownReasonCode(f"{given} is not one of this organization's reason codes: "
                                f"{', '.join(codes)}", field="reason_code")
    if codes[given].get("note_required") and not (body.get("internal_note") or "").strip():
        raise ValidationFailed("internal_note", f"is required with the reason code {given}")


def check_window(organization: Organization, payment: Payment, *, online: bool,
                 field: str = "type") -> None:
    """An online refund of a payment older than the window is refused; offline is allowed."""
    days = organization.online_refund_window_days
    if not online or days is None:
        return
    if payment.created_at < timezone.now() - dt.timedelta(days=days):
        raise RefundWindowClosed(
            f"Payment {payment.pk} is older than {days} days: online refunds are closed for "
            "it; record an offline refund instead", field=field)


def refunded_today(actor: Membership) -> int:
    """What this person refunded this business day (the organization's time zone), refunds
    to credit and failed ones not counted."""
    zone = ZoneInfo(actor.organization.timezone)
    start = timezone.now().astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    total = (Refund.objects.filter(organization_id=actor.organization_id,
                                   created_by_id=actor.user_id, created_at__gte=start)
             .exclude(status=RefundStatus.FAILED).exclude(method=services.CREDIT)
             .aggregate(t=Sum(F("amount_minor") + F("tax_minor")))["t"])
    return int(total or 0)


def _limit(actor: Membership) -> int | None:
    limits = actor.organization.daily_refund_limit or {}
    value = limits.get(actor.role)
    return None if value is None else int(value)


def someone_can_approve(actor: Membership) -> bool:
    return Membership.objects.filter(
        organization_id=actor.organization_id,
        role__in=actor.organization.approver_roles).exclude(user_id=actor.user_id).exists()


def may_ask(actor: Membership) -> bool:
    """Whether this person may ask for refunds they may not make (`request_roles`)."""
    return (actor.role in (actor.organization.request_roles or [])
            and actor.role != Role.ACCOUNTANT)


def require_refund_or_ask(actor: Membership) -> None:
    """For the refund forms: who may neither refund nor ask is refused (v1's words)."""
    if not may_refund(actor) and not may_ask(actor):
        require_refund_permission(actor)


def must_request(actor: Membership, amount_minor: int) -> bool:
    """Whether this refund is asked for rather than made (raises when it may be neither)."""
    organization = actor.organization
    if not may_refund(actor):
        if may_ask(actor):
            return True
        require_refund_permission(actor)  # raises refund_not_permitted, v1's words
    threshold = organization.approval_threshold_minor
    if threshold is not None and amount_minor > threshold:
        return True
    limit = _limit(actor)
    if limit is not None and refunded_today(actor) + amount_minor > limit:
        if someone_can_approve(actor):
            return True
        raise RefundLimitExceeded(
            f"This refund would take you past your daily refund limit of "
            f"{display(limit, organization.currency, organization.locale)}, and no one can "
            "approve it", field="amount")
    return False


# --- what a body asks --------------------------------------------------------------------------

def _amount(organization: Organization, kind: str, body: dict[str, Any]) -> int:
    if kind == RequestKind.SPLIT:
        return sum(parse_amount(p["amount"], organization.currency,
                                field=f"parts[{i}].amount")
                   for i, p in enumerate(body.get("parts") or []))
    return parse_amount(body["amount"], organization.currency)


def _payment_of(organization: Organization, kind: str, target: Any,
                body: dict[str, Any]) -> Payment | None:
    """The payment a request reserves on (a payment's refund, a credit's online refund, a
    package's online refund)."""
    if kind == RequestKind.PAYMENT:
        return get_scoped(Payment.objects.filter(organization=organization), target)
    ref = (body.get("refund_to") or {}).get("payment") if kind != RequestKind.SPLIT else None
    if ref:
        return get_scoped(Payment.objects.filter(organization=organization), ref,
                          field="refund_to.payment")
    return None


def check_rules(actor: Membership, kind: str, target: Any, body: dict[str, Any]) -> None:
    organization = actor.organization
    check_reason_code(organization, body)
    if organization.online_refund_window_days is None:
        return  # no window: no payment to read
    if kind == RequestKind.PAYMENT:
        payment = _payment_of(organization, kind, target, body)
        assert payment is not None
        check_window(organization, payment, online=body.get("type") == "online")
    elif kind == RequestKind.SPLIT:
        for i, part in enumerate(body.get("parts") or []):
            if part.get("type") == "online":
                found = get_scoped(Payment.objects.filter(organization=organization),
                                   part.get("payment"), field=f"parts[{i}].payment")
                check_window(organization, found, online=True, field=f"parts[{i}].type")
    else:
        payment = _payment_of(organization, kind, target, body)
        if payment is not None:
            check_window(organization, payment, online=True, field="refund_to.payment")


def _refund(actor: Membership, kind: str, target: Any, body: dict[str, Any],
            on_locked: services.OnLocked = None) -> Any:
    """The refund service of that kind, as the direct path calls it (`on_locked`: an
    approval's release of its reservation, under the payment's lock)."""
    args = {k: v for k, v in body.items() if k != "reason_code"}
    if kind == RequestKind.PAYMENT:
        return services.refund_payment(actor=actor, payment=target, on_locked=on_locked,
                                       **args)
    if kind == RequestKind.PACKAGE:
        return services.refund_package(actor=actor, package=target, **args)
    if kind == RequestKind.CREDIT:
        return services.refund_credit(actor=actor, customer=target, on_locked=on_locked,
                                      **args)
    parts = [services.Part(**p) for p in args.pop("parts")]
    return services.refund_invoice(actor=actor, invoice=target, parts=parts, **args)


# --- the door --------------------------------------------------------------------------------

def refund_or_request(*, actor: Membership, kind: str, target: Any,
                      body: dict[str, Any]) -> Made:
    organization = actor.organization
    check_rules(actor, kind, target, body)
    amount_minor = _amount(organization, kind, body)
    if not must_request(actor, amount_minor):
        return "refunded", _refund(actor, kind, target, body)
    return "requested", _open_request(actor=actor, kind=kind, target=target, body=body,
                                      amount_minor=amount_minor)


@money_transaction()
def _open_request(*, actor: Membership, kind: str, target: Any, body: dict[str, Any],
                  amount_minor: int) -> RefundRequest:
    organization = actor.organization
    target_id, payment_id, package_id = _targets(organization, kind, target, body)
    payment = lock_payment(payment_id) if payment_id is not None else None
    if payment is not None and package_id is None:
        if RefundRequest.objects.filter(payment=payment, status=RequestStatus.OPEN,
                                        package__isnull=True).exists():
            raise RefundRequestOpen(f"A refund request of payment {payment.pk} is open: "
                                    "approve, reject or cancel it first", field="payment")
        left = payment.refundable_minor - payment.requested_minor
        if amount_minor > left:
            raise RefundExceedsRefundable(
                f"At most {display(max(left, 0), organization.currency, organization.locale)}"
                " of this payment can be refunded.", field="amount")
    if package_id is not None and RefundRequest.objects.filter(
            package_id=package_id, status=RequestStatus.OPEN).exists():
        raise RefundRequestOpen("A refund request of this package is open: approve, reject "
                                "or cancel it first", field="package")
    now = timezone.now()
    request = RefundRequest.objects.create(
        organization=organization, kind=kind, target_id=target_id,
        payment=payment if package_id is None else None, package_id=package_id, body=body,
        amount_minor=amount_minor, requested_by=actor.user, requested_at=now,
        expires_at=now + dt.timedelta(days=organization.request_expiry_days))
    if request.payment_id is not None:
        assert payment is not None
        refresh_requested(payment)
    _step(request, "refund_requested", actor.user, now,
          f"Refund of {display(amount_minor, organization.currency, organization.locale)} "
          f"requested: {body.get('reason', '')}")
    announce("refund_request.created", request)
    return request


def refresh_requested(payment: Payment) -> None:
    """The one writer of `Payment.requested_minor`: what the payment's open requests reserve
    of it, derived from them. The caller holds the payment's lock."""
    total = int(RefundRequest.objects.filter(
        payment_id=payment.pk, status=RequestStatus.OPEN, package__isnull=True,
    ).aggregate(t=Sum("amount_minor"))["t"] or 0)
    if total != payment.requested_minor:
        payment.requested_minor = total
        payment.save(update_fields=["requested_minor"])


def _targets(organization: Organization, kind: str, target: Any,
             body: dict[str, Any]) -> tuple[int, int | None, int | None]:
    from kassa.billing.models import Customer, Invoice

    if kind == RequestKind.PAYMENT:
        found = get_scoped(Payment.objects.filter(organization=organization), target)
        return found.pk, found.pk, None
    if kind == RequestKind.PACKAGE:
        pkg = get_scoped(Package.objects.filter(organization=organization), target)
        pay = _payment_of(organization, kind, target, body)
        return pkg.pk, pay.pk if pay else None, pkg.pk
    if kind == RequestKind.CREDIT:
        owner = get_scoped(Customer.objects.filter(organization=organization), target)
        pay = _payment_of(organization, kind, target, body)
        return owner.pk, pay.pk if pay else None, None
    invoice = get_scoped(Invoice.objects.filter(organization=organization), target)
    return invoice.pk, None, None


def _step(request: RefundRequest, kind: str, by: Any, now: dt.datetime, detail: str) -> None:
    """The step in the payment's history, its entry in the audit log, and the e-mail to the
    requester (by a task)."""
    record(organization_id=request.organization_id, actor=by,
           action="refund_request." + ("created" if kind == "refund_requested"
                                       else kind.removeprefix("refund_request_")),
           object=f"refund_request:{request.pk}",
           detail={"kind": request.kind, "target": request.target_id,
                   "amount_minor": request.amount_minor, "status": request.status,
                   "note": request.note, "refunds": list(request.refunds or [])})
    if request.payment_id is not None:
        PaymentEvent.objects.create(organization_id=request.organization_id,
                                    payment_id=request.payment_id, at=now, kind=kind,
                                    amount_minor=request.amount_minor, status=request.status,
                                    by=by, detail=detail[:500])
    enqueue("refunds.send_request_mail", request.pk, kind)


def check_approvers_limit(actor: Membership, amount_minor: int) -> None:
    """The approver makes the refund, so it counts against their own daily limit; past it,
    the approval is refused and the request stays open (for another approver, or tomorrow)."""
    limit = _limit(actor)
    if limit is not None and refunded_today(actor) + amount_minor > limit:
        organization = actor.organization
        raise RefundLimitExceeded(
            f"Approving this refund would take you past your daily refund limit of "
            f"{display(limit, organization.currency, organization.locale)}: the request stays "
            "open for another approver", field="amount")


# --- decisions -------------------------------------------------------------------------------

def _decidable(actor: Membership, request_id: Any) -> RefundRequest:
    found = get_scoped(RefundRequest.objects.filter(organization=actor.organization),
                       request_id)
    request = lock_refund_request(found.pk)
    if request.status != RequestStatus.OPEN:
        raise RequestNotOpen(f"Refund request {request.pk} is {request.status}: it can no "
                             "longer be decided")
    return request


def _require_approver(actor: Membership, request: RefundRequest) -> None:
    if request.requested_by_id == actor.user_id:
        raise SelfApprovalNotAllowed("You asked for this refund: someone else approves it")
    if actor.role not in (actor.organization.approver_roles or []):
        raise RefundNotPermitted("Your role may not decide refund requests in this "
                                 "organization")


@money_transaction()
def approve(*, actor: Membership, request: Any) -> RefundRequest:
    found = _decidable(actor, request)
    _require_approver(actor, found)
    now = timezone.now()
    found.status = RequestStatus.APPROVED
    found.decided_by, found.decided_at = actor.user, now
    found.save(update_fields=["status", "decided_by", "decided_at"])
    # Every rule again, now: the refund service of its kind, as the approver makes it. Its
    # reservation is released under the payment's lock, before the service reads what is left.
    check_rules(actor, found.kind, found.target_id, found.body)
    check_approvers_limit(actor, found.amount_minor)
    released: list[int] = []

    def release(payment: Payment) -> None:
        assert payment.pk == found.payment_id, (payment.pk, found.payment_id)
        refresh_requested(payment)
        released.append(payment.pk)

    made = _refund(actor, found.kind, found.target_id, found.body,
                   on_locked=release if found.payment_id is not None else None)
    assert released or found.payment_id is None, "an approval released no reservation"
    refunds = made[1] if isinstance(made, tuple) else [made]
    found.refunds = [r.pk for r in refunds]
    found.save(update_fields=["refunds"])
    _step(found, "refund_request_approved", actor.user, now, f"Request {found.pk} approved")
    announce("refund_request.decided", found)
    return found


@money_transaction()
def reject(*, actor: Membership, request: Any, reason: str) -> RefundRequest:
    reason = services._clean(reason, "reason", services.MAX_REASON, required=True)
    found = _decidable(actor, request)
    _require_approver(actor, found)
    return _close(found, RequestStatus.REJECTED, actor.user, reason,
                  f"Request {found.pk} rejected: {reason}")


@money_transaction()
def cancel(*, actor: Membership, request: Any) -> RefundRequest:
    found = _decidable(actor, request)
    if found.requested_by_id != actor.user_id:
        raise RefundNotPermitted("Only who asked for this refund may cancel the request")
    return _close(found, RequestStatus.CANCELLED, actor.user, "",
                  f"Request {found.pk} cancelled")


def _close(found: RefundRequest, status: str, by: Any, note: str,
           detail: str) -> RefundRequest:
    now = timezone.now()
    found.status, found.decided_by, found.decided_at, found.note = status, by, now, note
    found.save(update_fields=["status", "decided_by", "decided_at", "note"])
    if found.payment_id is not None:  # the reservation released (request → payment: the order)
        refresh_requested(lock_payment(found.payment_id))
    _step(found, f"refund_request_{status}", by, now, detail)
    announce("refund_request.decided", found)
    return found


def expire_requests(now: dt.datetime | None = None) -> int:
    """Open requests past their expiry: expired, releasing the reservation (the worker)."""
    now = now or timezone.now()
    count = 0
    for request_id in RefundRequest.objects.filter(
            status=RequestStatus.OPEN, expires_at__lte=now).values_list("pk", flat=True)[:500]:
        count += _expire(request_id, now)
    return count


@money_transaction()
def _expire(request_id: int, now: dt.datetime) -> int:
    found = lock_refund_request(request_id)
    if found.status != RequestStatus.OPEN or found.expires_at > now:
        return 0
    _close(found, RequestStatus.EXPIRED, None, "", f"Request {found.pk} expired")
    return 1


# --- reading --------------------------------------------------------------------------------

def request_object(request: RefundRequest) -> dict[str, Any]:
    currency = request.organization.currency
    from kassa.core.money import format_decimal_string

    return {
        "id": str(request.pk), "kind": request.kind, "target": str(request.target_id),
        "body": request.body, "amount": format_decimal_string(request.amount_minor, currency),
        "status": request.status,
        "requested_by": str(request.requested_by_id) if request.requested_by_id else None,
        "requested_at": request.requested_at.isoformat(),
        "decided_by": str(request.decided_by_id) if request.decided_by_id else None,
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "note": request.note, "refunds": [str(r) for r in request.refunds],
    }


def announce(type: str, request: RefundRequest) -> None:
    emit(type, organization_id=request.organization_id, render=lambda: request_object(request))


def find_requests(actor: Membership, status: str | None) -> Any:
    found = RefundRequest.objects.filter(organization=actor.organization).order_by("-pk")
    if actor.role not in (actor.organization.approver_roles or []):
        found = found.filter(requested_by_id=actor.user_id)
    if status:
        if status not in RequestStatus.values:
            raise ValidationFailed("status", f"must be one of {', '.join(RequestStatus.values)}")
        found = found.filter(status=status)
    return found


def get_request(actor: Membership, request_id: Any) -> RefundRequest:
    return get_scoped(find_requests(actor, None), request_id)



