"""Refund receipts through a real SMTP server (aiosmtpd) on this machine.

pytest-django swaps in the in-memory mail backend for every test; these tests put Django's SMTP
backend back and point it at a server they start and stop themselves, so that "the mail server
is down" is a refused connection and "it came back" is a server on the same port again.
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import make_all_tasks_due, run_tasks
from kassa.ledger.verify import verify
from kassa.refunds.models import Receipt
from kassa.refunds.sandbox import settle


def free_port() -> int:
    # aiosmtpd's Controller cannot take port 0: ask the kernel for a free port first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What the server received: one parsed message per DATA."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return self.inbox.messages


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    """A real SMTP server, not started yet; Django's SMTP backend points at it."""
    server = SmtpServer(free_port())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


def refund(tenant: Any, payment_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("reason", "Guest changed plans")
    r = tenant.api.post(f"/payments/{payment_id}/refunds", body)
    assert r.status_code == 201, r.content
    return r.json()


def queued_sends(receipt_id: int) -> list[Any]:
    from django_tasks_db.models import DBTaskResult

    return [t for t in DBTaskResult.objects.filter(status="READY",
                                                   task_path__endswith=".send_receipt")
            if t.args_kwargs["args"] == [receipt_id]]


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_refund_receipt_arrives_through_the_smtp_server(tenant, smtp):
    smtp.start()
    customer = tenant.customer("Maria Alvarez", "maria@example.com")
    inv = tenant.invoice(customer=customer)
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    body = refund(tenant, payment["id"], type="offline", amount="12.50", method="check",
                  reason="Candle set returned")

    run_tasks()

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert smtp.inbox.recipients == [["maria@example.com"]]
    assert message["To"] == "maria@example.com"
    assert message["Subject"] == "Acme Spa: refund receipt for $12.50"
    text = text_of(message)
    for expected in ("Acme Spa",                       # organization
                     f"#{payment['id']} of $100.00",   # payment
                     "$12.50",                         # amount
                     "Offline",                        # type
                     "check",                          # method
                     "Candle set returned",            # reason
                     "Recorded",                       # status
                     inv["number"]):
        assert expected in text, (expected, text)
    receipt = Receipt.objects.get(refund_id=body["id"])
    assert (receipt.status, receipt.attempts, receipt.last_error) == ("sent", 1, "")
    assert receipt.sent_at is not None
    kinds = [e["kind"] for e in tenant.api.get(f"/payments/{payment['id']}/history").json()]
    assert kinds.count("receipt_sent") == 1


def test_a_receipts_task_names_its_refund_and_kind_and_sends_it_once(tenant, smtp):
    """The refund's transaction writes the receipt without reading its id back (issue 17), so
    its task finds it by refund and kind; a second copy of that task (a sweep's) sends
    nothing more, and one whose refund has no such receipt sends nothing at all."""
    from django_tasks_db.models import DBTaskResult

    from kassa.refunds import receipts

    smtp.start()
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="cash")
    body = refund(tenant, payment["id"], type="offline", amount="10.00", method="cash")
    [task] = DBTaskResult.objects.filter(status="READY", task_path__endswith=".send_receipt")
    assert task.args_kwargs["args"] == [int(body["id"]), "receipt"]
    run_tasks()
    receipts.send_receipt(int(body["id"]), "receipt")
    receipts.send_receipt(int(body["id"]), "failure_notice")
    assert len(smtp.messages) == 1
    assert Receipt.objects.get(refund_id=body["id"]).status == "sent"


def test_online_refund_receipt_names_the_card_and_the_pending_status(tenant, smtp):
    smtp.start()
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True)
    refund(tenant, payment["id"], type="online", amount="30.00")
    run_tasks()
    assert len(smtp.messages) == 1
    text = text_of(smtp.messages[0])
    for expected in ("Online", "card", "Pending", "$30.00", f"#{payment['id']}"):
        assert expected in text, (expected, text)


def test_receipt_waits_while_the_server_is_down_then_arrives_exactly_once(tenant, smtp):
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    body = refund(tenant, payment["id"], type="offline", amount="40.00", method="cash")

    run_tasks()  # the server is down: the first attempt fails

    receipt = Receipt.objects.get(refund_id=body["id"])
    assert receipt.status == "pending" and receipt.attempts == 1
    assert "ConnectionRefusedError" in receipt.last_error
    assert receipt.sent_at is None
    [retry] = queued_sends(receipt.pk)
    assert retry.run_after == receipt.next_attempt_at
    assert receipt.next_attempt_at > receipt.claimed_at  # backed off, not retried at once

    # Still down when the retry comes due: still pending, nothing lost, nothing sent.
    make_all_tasks_due()
    run_tasks()
    receipt.refresh_from_db()
    assert receipt.status == "pending" and receipt.attempts >= 2

    smtp.start()
    # Time passes: the retry comes due and the sweep, finding the receipt overdue, enqueues it
    # too. Two tasks for one receipt, one message.
    make_all_tasks_due()
    assert len(queued_sends(receipt.pk)) >= 2
    run_tasks()
    make_all_tasks_due()
    run_tasks()

    assert len(smtp.messages) == 1
    assert smtp.messages[0]["To"] == "ann@example.com"
    assert "$40.00" in text_of(smtp.messages[0])
    receipt.refresh_from_db()
    assert receipt.status == "sent" and receipt.last_error == "" and receipt.sent_at
    assert verify(tenant.organization) == []


def test_failed_online_refund_sends_a_failure_notice(tenant, smtp):
    smtp.start()
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="card", online=True,
                         source="sandbox_refund_fails")
    body = refund(tenant, payment["id"], type="online", amount="25.00",
                  reason="Treatment cancelled")
    run_tasks()
    settle(refund_ids=[body["id"]], everything=False)
    run_tasks()
    make_all_tasks_due()
    run_tasks()

    subjects = [m["Subject"] for m in smtp.messages]
    assert subjects == ["Acme Spa: refund receipt for $25.00",
                        "Acme Spa: your refund of $25.00 could not be completed"]
    notice = text_of(smtp.messages[1])
    for expected in ("could not be completed", "Failed", "Online", "card",
                     "Treatment cancelled", "$25.00", f"#{payment['id']}"):
        assert expected in notice, (expected, notice)
    kinds = sorted(Receipt.objects.filter(refund_id=body["id"])
                   .values_list("kind", "status"))
    assert kinds == [("failure_notice", "sent"), ("receipt", "sent")]
    assert verify(tenant.organization) == []


class WorkerDied(BaseException):
    """What the process sees of a kill -9: nothing after this point runs."""


def test_receipt_whose_worker_died_while_sending_is_sent_once_later(tenant, smtp, monkeypatch):
    from kassa.refunds import receipts
    from kassa.refunds.tasks import sweep_receipts

    smtp.start()
    inv = tenant.invoice()
    payment = tenant.pay(inv["id"], "100.00", method="cash")
    body = refund(tenant, payment["id"], type="offline", amount="10.00", method="cash")

    def die(receipt: Receipt) -> Any:
        raise WorkerDied

    monkeypatch.setattr(receipts, "build_message", die)
    run_tasks()
    monkeypatch.undo()
    receipt = Receipt.objects.get(refund_id=body["id"])
    assert receipt.status == "sending" and smtp.messages == []

    # Its claim still stands: the sweep leaves it to the worker that may still be sending it.
    assert sweep_receipts() == 0 and run_tasks() == 0

    make_all_tasks_due()  # the claim expires: the receipt is due again, at once
    run_tasks()
    make_all_tasks_due()
    run_tasks()

    assert len(smtp.messages) == 1
    receipt.refresh_from_db()
    assert receipt.status == "sent" and receipt.attempts == 2
