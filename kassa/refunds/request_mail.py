"""The e-mail that tells a requester what became of their refund request: durable and retried
while the mail server is down, as the refund receipts are (kassa/refunds/receipts.py).

Each step of a request (asked, approved, rejected, cancelled, expired) queues one RequestMail
row in the step's transaction; a task on the mail lane claims it (pending → sending, a
conditional update), sends it outside any transaction and marks it sent, or puts it back with
backoff, until MAX_ATTEMPTS; the worker's sweep re-enqueues what is overdue or whose claim died.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib

from django.core.mail import EmailMessage
from django.db.models import F
from django.utils import timezone

from kassa.core.locks import assert_outside_transaction
from kassa.core.outbox import enqueue
from kassa.refunds.models import ReceiptStatus, RefundRequest, RequestMail
from kassa.refunds.receipts import CLAIM_SECONDS, MAX_ATTEMPTS, mail_failed

logger = logging.getLogger("kassa.receipts")


def queue(request: RefundRequest, step: str, now: dt.datetime) -> RequestMail | None:
    """The e-mail of this step to the requester (in the step's transaction); none when they
    have no address."""
    to = request.requested_by.email if request.requested_by is not None else ""
    if not to:
        return None
    mail, _ = RequestMail.objects.get_or_create(
        organization_id=request.organization_id, request=request, step=step,
        defaults={"to_email": to, "next_attempt_at": now})
    enqueue("refunds.send_request_mail", mail.pk)
    return mail


def build_message(mail: RequestMail) -> EmailMessage:
    request = mail.request
    words = mail.step.removeprefix("refund_request_").replace("_", " ")
    return EmailMessage(
        subject=f"Refund request {request.pk}: {words}",
        body=f"Your refund request {request.pk} is {request.status}."
        + (f"\n\n{request.note}" if request.note else ""),
        to=[mail.to_email],
        headers={"Message-ID": f"<kassa-request-mail-{mail.pk}@{mail.organization_id}.kassa>"})


def send_request_mail(mail_id: int) -> None:
    now = timezone.now()
    claimed = RequestMail.objects.filter(pk=mail_id, status=ReceiptStatus.PENDING,
                                         next_attempt_at__lte=now).update(
        status=ReceiptStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return
    mail = RequestMail.objects.select_related("request").get(pk=mail_id)
    assert_outside_transaction("sending a refund request's e-mail")
    try:
        build_message(mail).send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        _failed(mail, exc, now)
        return
    RequestMail.objects.filter(pk=mail_id).update(status=ReceiptStatus.SENT,
                                                  sent_at=timezone.now(), last_error="")


def _failed(mail: RequestMail, exc: Exception, now: dt.datetime) -> None:
    mail_failed(mail, exc, now, what="request mail", task="refunds.send_request_mail")


def due(now: dt.datetime, grace: dt.timedelta, batch: int) -> list[int]:
    """For the sweep: claims that died put back (or given up), then what is overdue."""
    expired = RequestMail.objects.filter(
        status=ReceiptStatus.SENDING, claimed_at__lt=now - dt.timedelta(seconds=CLAIM_SECONDS))
    expired.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=ReceiptStatus.GAVE_UP,
        last_error="sending never came back (worker died?) after every attempt")
    expired.update(status=ReceiptStatus.PENDING, next_attempt_at=now - grace)
    return list(RequestMail.objects.filter(status=ReceiptStatus.PENDING,
                                           next_attempt_at__lte=now - grace)
                .values_list("id", flat=True)[:batch])
