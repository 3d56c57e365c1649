"""Disputes (chargebacks): what a card payment's processor decides, booked as it tells it.

The news comes from the gateway — Stripe's `charge.dispute.*` events (kassa.refunds.webhooks),
the sandbox's `kassa sandbox dispute` — as one `DisputeNews`, applied by `apply_news` in one
money transaction under the payment's invoice and payment locks (the payment's lock serialises
every change of its disputes: no lock of their own). It is safe against duplicates and any
order: a dispute is found by the gateway's id, created by whichever news comes first, and only
moves forwards (open → won or lost, once).

The books (DESIGN.md, "What the processor and the bank decide"):

    funds withdrawn     Dr disputed_funds · Cr card          (not for an inquiry: `warning`)
    won                 the withdrawal reversed              (the funds are reinstated)
    lost                nothing yet: an admin settles it     (`settle`)
      re-bill           Dr receivable · Cr disputed_funds    taken back from the lines and
                                                             packages as the payment paid them
      write off         Dr chargeback_losses · Cr disputed_funds

While a dispute is open, or lost and not settled, its payment takes no refund (the refund
services ask `payment.disputed`); what a lost one took comes off the payment's refundable
(`kassa.refunds.taken_back`, the figures' one owner).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from kassa.audit.services import record
from kassa.billing import allocation
from kassa.billing.models import Invoice, LineKind, Payment, PaymentEvent
from kassa.core.errors import DisputeNotLost, DisputeSettled, ValidationFailed
from kassa.core.locks import lock_invoice, lock_payment, money_transaction
from kassa.core.lookup import get_scoped
from kassa.core.money import display
from kassa.ledger.services import Line, credit, debit, post, reverse
from kassa.packages import services as packages
from kassa.refunds import taken_back
from kassa.refunds.models import OPEN_DISPUTE, Dispute, DisputeStatus, Settlement
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_admin
from kassa.webhooks.events import emit

logger = logging.getLogger("kassa.disputes")

MAX_REASON = 500
CLOSED = (DisputeStatus.WON, DisputeStatus.LOST)


@dataclass(frozen=True)
class DisputeNews:
    """One thing the gateway says of a dispute."""

    gateway: str
    reference: str  # the gateway's id of the dispute (Stripe's du_…)
    charge_reference: str  # the payment's gateway reference (its PaymentIntent, sandbox charge)
    amount_minor: int
    status: str  # one of DisputeStatus
    reason: str = ""
    respond_by: dt.datetime | None = None
    at: dt.datetime | None = None  # when the gateway says it happened (default: now)


def dispute_object(dispute: Dispute) -> dict[str, object]:
    """A dispute as `GET /disputes/{id}` answers it and the webhooks send it."""
    from kassa.core.money import format_decimal_string

    currency = dispute.organization.currency
    return {
        "id": str(dispute.pk), "payment": str(dispute.payment_id),
        "invoice": str(dispute.invoice_id) if dispute.invoice_id else None,
        "amount": format_decimal_string(dispute.amount_minor, currency),
        "reason": dispute.reason, "status": dispute.status,
        "respond_by": dispute.respond_by.isoformat() if dispute.respond_by else None,
        "created_at": dispute.created_at.isoformat(),
        "closed_at": dispute.closed_at.isoformat() if dispute.closed_at else None,
        "settlement": ({"action": dispute.settlement, "reason": dispute.settlement_reason,
                        "settled_at": dispute.settled_at.isoformat() if dispute.settled_at
                        else None,
                        "settled_by": dispute.settled_by.email if dispute.settled_by else None}
                       if dispute.settlement else None),
    }


def _announce(kind: str, dispute: Dispute) -> None:
    emit(kind, organization_id=dispute.organization_id, render=lambda: dispute_object(dispute))


def _audit(action: str, dispute: Dispute, actor: Any = None, **detail: Any) -> None:
    record(organization_id=dispute.organization_id, actor=actor, action=action,
           object=f"dispute:{dispute.pk}",
           detail={"payment": dispute.payment_id, "amount_minor": dispute.amount_minor,
                   "status": dispute.status, **detail})


def apply_news(news: DisputeNews) -> str:
    """Book what the gateway says; say what was done (for logs and tests). A dispute of a
    charge Kassa does not know is acknowledged and logged, never an error."""
    payment = (Payment.objects.filter(gateway=news.gateway,
                                      gateway_reference=news.charge_reference)
               .only("pk", "invoice_id").first()) if news.charge_reference else None
    if payment is None:
        logger.warning("dispute %s of %s charge %r: no payment of ours", news.reference,
                       news.gateway, news.charge_reference)
        return "unknown charge"
    if news.status not in DisputeStatus.values or news.amount_minor <= 0:
        logger.warning("dispute %s: cannot read status %r, amount %r", news.reference,
                       news.status, news.amount_minor)
        return "ignored"
    with money_transaction():
        invoice = lock_invoice(payment.invoice_id) if payment.invoice_id else None
        locked = lock_payment(payment.pk)
        dispute = (Dispute.objects.select_related("organization")
                   .filter(organization_id=locked.organization_id, gateway=news.gateway,
                           gateway_reference=news.reference).first())
        now = news.at or timezone.now()
        if dispute is None:
            dispute = _open(locked, invoice, news, now)
            outcome = "opened"
        elif dispute.status in CLOSED:
            return "unchanged"  # decided already: a duplicate, or news that came late
        else:
            outcome = _move(dispute, locked, invoice, news, now)
        taken_back.refresh(locked)
        return outcome


def _open(payment: Payment, invoice: Invoice | None, news: DisputeNews,
          now: dt.datetime) -> Dispute:
    dispute = Dispute.objects.create(
        organization_id=payment.organization_id, center_id=payment.center_id, payment=payment,
        invoice=invoice, amount_minor=news.amount_minor, reason=news.reason[:100],
        status=DisputeStatus.WARNING if news.status == DisputeStatus.WARNING
        else DisputeStatus.NEEDS_RESPONSE,
        gateway=news.gateway, gateway_reference=news.reference[:200],
        respond_by=news.respond_by, created_at=now)
    _history(payment, now, "dispute_opened", dispute,
             f"Disputed by the cardholder's bank ({news.reason or 'no reason given'})"
             + (f"; respond by {news.respond_by:%Y-%m-%d}" if news.respond_by else ""))
    if dispute.status != DisputeStatus.WARNING:
        _withdraw(dispute, payment, invoice, now)
    _announce("dispute.created", dispute)
    _audit("dispute.opened", dispute, gateway=dispute.gateway,
           reference=dispute.gateway_reference)
    if news.status != dispute.status:
        _move(dispute, payment, invoice, news, now)
    return dispute


def _move(dispute: Dispute, payment: Payment, invoice: Invoice | None, news: DisputeNews,
          now: dt.datetime) -> str:
    if news.respond_by and news.respond_by != dispute.respond_by:
        dispute.respond_by = news.respond_by
    if news.status in OPEN_DISPUTE:
        if news.status == DisputeStatus.WARNING or dispute.status == news.status:
            dispute.save(update_fields=["respond_by"])
            return "unchanged"
        # An inquiry became a chargeback: the funds go now.
        if dispute.withdraw_entry_id is None:
            _withdraw(dispute, payment, invoice, now)
        dispute.status = news.status
        dispute.save(update_fields=["status", "respond_by", "withdraw_entry"])
        _audit("dispute.moved", dispute)
        return "moved"
    # Decided. A chargeback lost must have had its funds withdrawn; one won gives them back.
    if news.status == DisputeStatus.LOST and dispute.withdraw_entry_id is None:
        _withdraw(dispute, payment, invoice, now)
    if news.status == DisputeStatus.WON and dispute.withdraw_entry is not None:
        reverse(dispute.withdraw_entry, at=now, kind="dispute_won")
    dispute.status = news.status
    dispute.closed_at = now
    dispute.save(update_fields=["status", "respond_by", "closed_at", "withdraw_entry"])
    _history(payment, now, f"dispute_{news.status}", dispute,
             "Dispute won: the funds were reinstated" if news.status == DisputeStatus.WON
             else "Dispute lost: the funds stay with the cardholder; an administrator "
             "re-bills the customer or writes the loss off")
    _announce("dispute.closed", dispute)
    _audit(f"dispute.{news.status}", dispute)
    return news.status


def _withdraw(dispute: Dispute, payment: Payment, invoice: Invoice | None,
              now: dt.datetime) -> None:
    refs = {"invoice": invoice, "payment": payment}
    dispute.withdraw_entry = post(
        organization=dispute.organization, center=payment.center, kind="dispute_opened",
        at=now, memo=f"Dispute {dispute.pk} of payment {payment.pk}: funds withdrawn",
        lines=[debit("disputed_funds", dispute.amount_minor, **refs),
               credit(payment.method, dispute.amount_minor, **refs)])
    dispute.save(update_fields=["withdraw_entry"])


def _history(payment: Payment, now: dt.datetime, kind: str, dispute: Dispute, detail: str,
             by: Any = None) -> None:
    PaymentEvent.objects.create(organization_id=payment.organization_id, payment=payment,
                                at=now, kind=kind, amount_minor=dispute.amount_minor,
                                status=dispute.status, by=by,
                                detail=f"Dispute {dispute.pk}: {detail}"[:500])


# --- a lost dispute, settled by an admin ----------------------------------------------------

def settle(*, actor: Membership, dispute: str | int, action: str, reason: str) -> Dispute:
    """`POST /disputes/{id}/settle`: re-bill the customer for what the lost dispute took (the
    invoice's balance due re-opens, taken back from its lines and packages as the payment paid
    them — a package may go below zero), or write it off as a loss."""
    require_admin(actor)
    target = get_scoped(Dispute.objects.filter(organization=actor.organization), dispute)
    if action not in Settlement.values or not action:
        raise ValidationFailed("action", "must be rebill or write_off")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("reason", "is required")
    if len(reason) > MAX_REASON:
        raise ValidationFailed("reason", f"at most {MAX_REASON} characters")
    with money_transaction():
        invoice = lock_invoice(target.invoice_id) if target.invoice_id else None
        payment = lock_payment(target.payment_id)
        found = Dispute.objects.select_related("organization").get(pk=target.pk)
        if found.settlement:
            raise DisputeSettled(f"Dispute {found.pk} was settled already "
                                 f"({found.get_settlement_display().lower()})")
        if found.status != DisputeStatus.LOST:
            raise DisputeNotLost(f"Dispute {found.pk} is {found.get_status_display().lower()}: "
                                 "only a lost dispute is settled", field="action")
        if action == Settlement.REBILL and invoice is None:
            raise ValidationFailed("action", "a deposit's dispute is written off: there is no "
                                   "invoice to re-bill")
        now = timezone.now()
        if action == Settlement.REBILL:
            assert invoice is not None
            lines = _rebill(found, payment, invoice, now)
        else:
            refs = {"invoice": invoice, "payment": payment}
            lines = [debit("chargeback_losses", found.amount_minor, **refs),
                     credit("disputed_funds", found.amount_minor, **refs)]
        found.settle_entry = post(
            organization=found.organization, center=payment.center,
            kind="dispute_rebilled" if action == Settlement.REBILL else "dispute_written_off",
            at=now, created_by=actor.user, lines=lines,
            memo=f"Dispute {found.pk} settled ({action}): {reason}")
        found.settlement, found.settlement_reason = action, reason
        found.settled_at, found.settled_by = now, actor.user
        found.save(update_fields=["settle_entry", "settlement", "settlement_reason",
                                  "settled_at", "settled_by"])
        if invoice is not None:
            allocation.refresh(invoice)
        taken_back.refresh(payment)
        _audit("dispute.settled", found, actor.user, settlement=action, reason=reason)
        org = found.organization
        amount = display(found.amount_minor, org.currency, org.locale)
        _history(payment, now, "dispute_settled", found,
                 (f"{amount} re-billed: the invoice's balance due is open again"
                  if action == Settlement.REBILL else f"{amount} written off as a loss")
                 + f" ({reason})", by=actor.user)
        return found


def _rebill(dispute: Dispute, payment: Payment, invoice: Invoice, now: dt.datetime
            ) -> list[Line]:
    """What the lost dispute took is owed again: taken back out of what the payment paid into
    each line, pro rata, like a refund of it. What the payment no longer holds (refunded
    since) cannot be owed again: that rest is written off."""
    held = allocation.held_by(payment)
    owed_again = min(dispute.amount_minor, held.net + held.tax)
    shares = allocation.plan_take_back(held, owed_again)
    out_of_packages = packages.pay_in(shares={
        line_id: (-net, -tax) for line_id, (net, tax) in shares.items()
        if held.kinds[line_id] == LineKind.PACKAGE and (net or tax)}, may_go_negative=True)
    allocation.take_back(payment=payment, dispute_id=dispute.pk, shares=shares, now=now)
    refs = {"invoice": invoice, "payment": payment}
    lines = [debit("receivable", owed_again, **refs)] if owed_again else []
    if dispute.amount_minor > owed_again:
        lines.append(debit("chargeback_losses", dispute.amount_minor - owed_again, **refs))
    lines.append(credit("disputed_funds", dispute.amount_minor, **refs))
    return lines + out_of_packages.ledger_lines(**refs)
