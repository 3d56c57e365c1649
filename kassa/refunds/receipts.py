"""Refund receipts by e-mail: durable, retried while the mail server is down, sent once.

A Receipt row is claimed (pending → sending) with a conditional update before the message goes
out and marked sent right after, so two workers never send the same one. The only window for a
duplicate is a worker dying between the SMTP server's "250 OK" and that mark; the message then
goes again with the same Message-ID, which lets mail systems recognise it as one message.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import zoneinfo

from django.core.mail import EmailMessage
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from kassa.billing.models import Customer, PaymentEvent
from kassa.core import rows
from kassa.core.locks import assert_outside_transaction
from kassa.core.money import display
from kassa.core.outbox import enqueue
from kassa.refunds import documents
from kassa.refunds.models import OutgoingMail, Receipt, ReceiptKind, ReceiptStatus, Refund

logger = logging.getLogger("kassa.receipts")

MAX_ATTEMPTS = 20
CLAIM_SECONDS = 300


def backoff(attempt: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(15 * 2 ** max(attempt - 1, 0), 3600))


def queue(refund: Refund, kind: str, now: dt.datetime) -> None:
    """The e-mail about this refund event, to be sent by a task (in the caller's transaction:
    a refund never exists without its receipt, nor a receipt without its refund)."""
    receipt = Receipt(organization_id=refund.organization_id, refund=refund, kind=kind,
                      to_email=customer_of(refund).email, next_attempt_at=now)
    # Its task names it by its refund and kind (one receipt of each kind per refund), not by its
    # id: so the row needs no id back and goes with the transaction's next statement
    # (kassa.core.batch), one round trip less while the payment is locked (issue 17).
    rows.insert([receipt], returning=False)
    enqueue("refunds.send_receipt", refund.pk, kind)


def customer_of(refund: Refund) -> Customer:
    """Whom a refund gives money back to: its invoice's customer, or the customer whose credit
    it refunds out."""
    owner = refund.customer if refund.invoice is None else refund.invoice.customer
    assert owner is not None
    return owner


def build_message(receipt: Receipt) -> EmailMessage:
    refund = receipt.refund
    org = refund.organization
    money = lambda minor: display(minor, org.currency, org.locale)  # noqa: E731
    context = {
        "receipt": receipt, "refund": refund, "organization": org, "invoice": refund.invoice,
        "customer": customer_of(refund), "amount": money(refund.amount_minor),
        "tax": money(refund.tax_minor), "total": money(refund.total_minor),
        "payment": refund.payment,
        "payment_amount": money(refund.payment.amount_minor) if refund.payment else "",
        "failure": receipt.kind == ReceiptKind.FAILURE_NOTICE,
        # A refund that failed after it succeeded, once its balance was paid again: kept as
        # credit instead.
        "kept_as_credit": (receipt.kind == ReceiptKind.FAILURE_NOTICE
                           and (refund.from_credit
                                or Refund.objects.filter(replaces=refund).exists())),
        "paid_another_way": receipt.kind == ReceiptKind.PAID_ANOTHER_WAY,
    }
    if context["failure"]:
        subject = f"{org.name}: your refund of {context['total']} could not be completed"
    elif context["paid_another_way"]:
        subject = f"{org.name}: your refund of {context['total']} was paid by {refund.method}"
    else:
        subject = f"{org.name}: refund receipt for {context['total']}"
    # Its dates in the organization's time zone, as its pages show them (the worker runs in UTC).
    with timezone.override(zoneinfo.ZoneInfo(org.timezone)):
        body = render_to_string("refunds/receipt.txt", context)
    message = EmailMessage(
        subject=subject, body=body, to=[receipt.to_email],
        headers={"Message-ID": f"<kassa-receipt-{receipt.pk}@{org.pk}.kassa>"},
    )
    if not context["failure"]:  # the money went back: its receipt, with its code, as PDF
        issued = documents.receipt(refund)
        message.attach(f"refund-{refund.pk}.pdf", issued.pdf(), "application/pdf")
    return message


def send_receipt(receipt_id: int, kind: str | None = None) -> None:
    """Send the receipt, once. With `kind`, `receipt_id` is its refund's id and the receipt is
    that refund's of that kind (as `queue` enqueues it); without, the receipt's own id (the
    sweep's and the retries' tasks)."""
    if kind is not None:
        found = Receipt.objects.filter(refund_id=receipt_id, kind=kind).values_list(
            "pk", flat=True).first()
        if found is None:
            return  # its refund's transaction rolled back: nothing to send
        receipt_id = found
    now = timezone.now()
    # Only when due, so a copy queued by the sweep beside a delayed retry cannot run it early.
    claimed = Receipt.objects.filter(pk=receipt_id, status=ReceiptStatus.PENDING,
                                     next_attempt_at__lte=now).update(
        status=ReceiptStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return
    receipt = Receipt.objects.select_related(
        "refund__organization", "refund__invoice__customer", "refund__customer",
        "refund__payment").get(pk=receipt_id)
    assert_outside_transaction("sending a receipt")
    try:
        build_message(receipt).send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        _failed(receipt, exc, now)
        return
    Receipt.objects.filter(pk=receipt_id).update(status=ReceiptStatus.SENT, sent_at=timezone.now(),
                                                 last_error="")
    if receipt.refund.payment_id:
        PaymentEvent.objects.create(
            organization_id=receipt.organization_id, payment_id=receipt.refund.payment_id,
            at=timezone.now(), kind="receipt_sent",
            status="sent", detail=f"{receipt.get_kind_display()} for refund "
            f"{receipt.refund_id} e-mailed to {receipt.to_email}")


def _failed(receipt: Receipt, exc: Exception, now: dt.datetime) -> None:
    mail_failed(receipt, exc, now, what="receipt", task="refunds.send_receipt")


def mail_failed(mail: OutgoingMail, exc: Exception, now: dt.datetime, *, what: str,
                task: str) -> None:
    """An e-mail the mail server did not take: retried by `task` with backoff, or given up
    after MAX_ATTEMPTS (receipts and request mails alike)."""
    rows = type(mail).objects  # type: ignore[attr-defined]
    message = f"{type(exc).__name__}: {exc}"[:500]
    if mail.attempts >= MAX_ATTEMPTS:
        logger.error("%s %s: gave up after %s attempts: %s", what, mail.pk, mail.attempts,
                     message)
        rows.filter(pk=mail.pk).update(status=ReceiptStatus.GAVE_UP, last_error=message)
        return
    retry_at = now + backoff(mail.attempts)
    logger.warning("%s %s: mail server unavailable (%s); retry at %s", what, mail.pk, message,
                   retry_at.isoformat())
    rows.filter(pk=mail.pk, status=ReceiptStatus.SENDING).update(
        status=ReceiptStatus.PENDING, next_attempt_at=retry_at, last_error=message)
    enqueue(task, mail.pk, run_after=retry_at)
