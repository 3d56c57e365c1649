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
from kassa.billing.models import Customer, Invoice, Payment, PaymentEvent
from kassa.core.errors import (
    CreditInsufficient,
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
from kassa.core.locks import (
    lock_customer,
    lock_package,
    lock_payment,
    lock_refund_request,
    money_transaction,
)
from kassa.core.lookup import get_scoped
from kassa.core.money import display, parse_amount
from kassa.packages.models import Package
from kassa.packages.services import check_within_balance
from kassa.refunds import request_mail, services
from kassa.refunds.models import (
    Refund,
    RefundRequest,
    RefundStatus,
    RequestHold,
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
        return services.refund_package(actor=actor, package=target, on_locked=on_locked,
                                       **args)
    if kind == RequestKind.CREDIT:
        return services.refund_credit(actor=actor, customer=target, on_locked=on_locked,
                                      **args)
    parts = [services.Part(**p) for p in args.pop("parts")]
    return services.refund_invoice(actor=actor, invoice=target, parts=parts,
                                   on_locked=on_locked, **args)


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
    """The request, reserving what it asks under the locks of what it reserves (the usual
    order: customer, payments, package): of each payment it refunds (a split: each part's),
    of the package's balance, of the customer's credit. One open request per payment or
    package (409); more than is left after the other requests' reservations is refused."""
    organization = actor.organization
    target_id, payment_id, package_id = _targets(organization, kind, target, body)
    holds = _holds(organization, kind, target_id, body, amount_minor, payment_id)
    customer = lock_customer(target_id) if kind == RequestKind.CREDIT else None
    locked = {pk: lock_payment(pk) for pk in sorted(holds)}
    pkg = lock_package(package_id) if package_id is not None else None
    for pk, (held, where) in holds.items():
        payment = locked[pk]
        if payment.requested_minor:
            raise RefundRequestOpen(f"A refund request of payment {pk} is open: approve, "
                                    "reject or cancel it first", field=f"{where}payment")
        if kind != RequestKind.CREDIT and held > payment.refundable_minor:
            left = display(payment.refundable_minor, organization.currency, organization.locale)
            raise RefundExceedsRefundable(f"At most {left} of this payment can be refunded.",
                                          field=f"{where}amount")
    if pkg is not None:
        if pkg.requested_minor:
            raise RefundRequestOpen("A refund request of this package is open: approve, "
                                    "reject or cancel it first", field="package")
        check_within_balance(pkg, amount_minor, organization)
    if customer is not None and amount_minor > customer.credit_minor - customer.requested_minor:
        left = max(customer.credit_minor - customer.requested_minor, 0)
        raise CreditInsufficient(
            f"At most {display(left, organization.currency, organization.locale)} of "
            f"{customer.name}'s credit can be refunded"
            + (", the rest is held by open refund requests" if customer.requested_minor else ""),
            field="amount")
    now = timezone.now()
    request = RefundRequest.objects.create(
        organization=organization, kind=kind, target_id=target_id,
        payment_id=payment_id if package_id is None else None, package_id=package_id,
        body=body, amount_minor=amount_minor, requested_by=actor.user, requested_at=now,
        expires_at=now + dt.timedelta(days=organization.request_expiry_days))
    RequestHold.objects.bulk_create([
        RequestHold(organization=organization, request=request, payment_id=pk,
                    amount_minor=held) for pk, (held, _) in sorted(holds.items())])
    _refresh_all(customer, list(locked.values()), pkg)
    _step(request, "refund_requested", actor.user, now,
          f"Refund of {display(amount_minor, organization.currency, organization.locale)} "
          f"requested: {body.get('reason', '')}")
    announce("refund_request.created", request)
    return request


def _holds(organization: Organization, kind: str, target_id: int, body: dict[str, Any],
           amount_minor: int, payment_id: int | None) -> dict[int, tuple[int, str]]:
    """What the request holds of each payment: {payment id: (amount, field prefix)}."""
    if kind == RequestKind.SPLIT:
        holds: dict[int, tuple[int, str]] = {}
        for i, part in enumerate(body.get("parts") or []):
            where = f"parts[{i}]."
            found = get_scoped(Payment.objects.filter(organization=organization),
                               part.get("payment"), field=f"{where}payment")
            if found.invoice_id != target_id:
                raise ValidationFailed(f"{where}payment", "is a payment of another invoice")
            if found.pk in holds:
                raise ValidationFailed(f"{where}payment", "is listed twice: one part per "
                                       "payment")
            holds[found.pk] = (parse_amount(part["amount"], organization.currency,
                                            field=f"{where}amount"), where)
        return holds
    if kind == RequestKind.PACKAGE or payment_id is None:
        return {}
    return {payment_id: (amount_minor, "refund_to." if kind == RequestKind.CREDIT else "")}


def _refresh_all(customer: Customer | None, payments: list[Payment],
                 pkg: Package | None) -> None:
    if customer is not None:
        refresh_customer_requested(customer)
    for payment in payments:
        refresh_requested(payment)
    if pkg is not None:
        refresh_package_requested(pkg)


# The one writer of each reserved figure: derived from the open requests, the row locked by the
# caller (kassa verify holds each: kassa/refunds/request_checks.py).

def refresh_requested(payment: Payment) -> None:
    """`Payment.requested_minor`: the holds of its open requests."""
    total = int(RequestHold.objects.filter(
        organization_id=payment.organization_id, payment_id=payment.pk,
        request__status=RequestStatus.OPEN).aggregate(t=Sum("amount_minor"))["t"] or 0)
    if total != payment.requested_minor:
        payment.requested_minor = total
        payment.save(update_fields=["requested_minor"])


def refresh_package_requested(pkg: Package) -> None:
    """`Package.requested_minor`: its open request's amount (of its balance)."""
    total = int(RefundRequest.objects.filter(
        organization_id=pkg.organization_id, package_id=pkg.pk, status=RequestStatus.OPEN,
    ).aggregate(t=Sum("amount_minor"))["t"] or 0)
    if total != pkg.requested_minor:
        pkg.requested_minor = total
        pkg.save(update_fields=["requested_minor"])


def refresh_customer_requested(customer: Customer) -> None:
    """`Customer.requested_minor`: the open requests of refunds of their credit."""
    total = int(RefundRequest.objects.filter(
        organization_id=customer.organization_id, kind=RequestKind.CREDIT,
        target_id=customer.pk, status=RequestStatus.OPEN,
    ).aggregate(t=Sum("amount_minor"))["t"] or 0)
    if total != customer.requested_minor:
        customer.requested_minor = total
        customer.save(update_fields=["requested_minor"])


def _release_locked(found: RefundRequest) -> None:
    """A request decided or expired without a refund: its reservations released, each under
    its lock (request → customer → payments → package: the order)."""
    customer = (lock_customer(found.target_id) if found.kind == RequestKind.CREDIT else None)
    payments = [lock_payment(pk) for pk in sorted(found.holds.values_list("payment_id",
                                                                          flat=True))]
    pkg = lock_package(found.package_id) if found.package_id is not None else None
    _refresh_all(customer, payments, pkg)


def _targets(organization: Organization, kind: str, target: Any,
             body: dict[str, Any]) -> tuple[int, int | None, int | None]:
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
    requester (its outbox row and task: kassa/refunds/request_mail.py)."""
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
    request_mail.queue(request, kind, now)


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


def _reserved(found: RefundRequest) -> set[tuple[str, int]]:
    """The rows whose reserved figure the request holds: ("Payment", id), ("Package", id),
    ("Customer", id)."""
    held = {("Payment", pk) for pk in found.holds.values_list("payment_id", flat=True)}
    if found.package_id is not None:
        held.add(("Package", found.package_id))
    if found.kind == RequestKind.CREDIT:
        held.add(("Customer", found.target_id))
    return held


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
    held = _reserved(found)
    released: set[tuple[str, int]] = set()

    def release(row: Any) -> None:
        """Called by the refund service with each row it has just locked."""
        key = (type(row).__name__, row.pk)
        if key not in held:
            return
        if isinstance(row, Payment):
            refresh_requested(row)
        elif isinstance(row, Package):
            refresh_package_requested(row)
        else:
            refresh_customer_requested(row)
        released.add(key)

    made = _refund(actor, found.kind, found.target_id, found.body, on_locked=release)
    assert released == held, f"an approval left reservations: {held - released}"
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
    _release_locked(found)
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



