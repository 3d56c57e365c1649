"""The e-mail to the requester of a refund request is durable, as the receipts are: queued in
the step's transaction, retried with backoff while the mail server is down, sent once it is
back, and re-enqueued by the sweep when its task was lost."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend

from conftest import run_tasks
from kassa.core.outbox import run_sweeps
from kassa.refunds.models import RequestMail

pytestmark = pytest.mark.django_db


class DownBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_a_request_mail_waits_out_a_mail_server_that_is_down_then_goes_once(tenant, settings):
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    desk_member, desk = tenant.user("front_desk")
    settings.EMAIL_BACKEND = "kassa.refunds.tests.test_request_mail.DownBackend"
    r = desk.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "40.00", "reason": "Family request"})
    assert r.status_code == 202, r.content
    rid = r.json()["request"]["id"]
    run_tasks()
    queued = RequestMail.objects.get()
    assert (queued.request_id, queued.step, queued.to_email) == (
        int(rid), "refund_requested", desk_member.user.email)
    assert (queued.status, queued.attempts) == ("pending", 1)
    assert "SMTPServerDisconnected" in queued.last_error
    assert queued.next_attempt_at > dt.datetime.now(dt.UTC)  # backoff
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    run_tasks()  # not due yet: nothing sent early
    assert RequestMail.objects.get().status == "pending" and not mail.outbox
    with time_machine.travel(queued.next_attempt_at + dt.timedelta(seconds=1)):
        run_tasks()
        sent = RequestMail.objects.get()
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, "")
        assert [m.subject for m in mail.outbox] == [f"Refund request {rid}: refund requested"]
        assert mail.outbox[0].to == [desk_member.user.email]
        run_sweeps()
        run_tasks()
    assert len(mail.outbox) == 1  # once


def test_the_sweep_sends_a_request_mail_whose_task_was_lost(tenant):
    from django_tasks_db.models import DBTaskResult

    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    _, desk = tenant.user("front_desk")
    rid = desk.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "40.00", "reason": "Family request"}
    ).json()["request"]["id"]
    DBTaskResult.objects.all().delete()  # the task lost (a queue wiped, a crash)
    mail.outbox.clear()
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)):
        run_sweeps()
        run_tasks()
    assert RequestMail.objects.get().status == "sent"
    assert [m.subject for m in mail.outbox] == [f"Refund request {rid}: refund requested"]
