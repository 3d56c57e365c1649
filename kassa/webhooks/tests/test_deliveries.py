"""Deliveries through a real local HTTP receiver: signed, retried on anything but a 2xx with
the same event id and body, nothing lost while the receiver is down, nothing sent twice once
it answered, nothing announced by a change that rolled back."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conftest import run_tasks
from kassa.core.errors import RefundExceedsRefundable
from kassa.core.outbox import SWEEPS, WEBHOOK_QUEUE
from kassa.refunds import services as refunds
from kassa.webhooks import delivery as delivering
from kassa.webhooks.events import emit
from kassa.webhooks.models import WebhookDelivery, WebhookEvent
from kassa.webhooks.tasks import sweep_deliveries
from kassa.webhooks.tests.receiver import (
    add_endpoint,
    free_port,
    make_deliveries_due,
    receiver,
    verify,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_allowed")]

REFUND = {"type": "offline", "method": "cash", "amount": "25.00", "reason": "Moved away"}


def refund(tenant, payment_id, **body):
    r = tenant.api.post(f"/payments/{payment_id}/refunds", {**REFUND, **body})
    assert r.status_code == 201, r.content
    return r.json()


def deliveries(endpoint):
    return WebhookDelivery.objects.filter(endpoint_id=endpoint["id"]).order_by("pk")


def test_each_delivery_is_signed_with_the_endpoints_secret(tenant):
    with receiver() as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["payment.succeeded", "refund.created"])
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        paid = tenant.api.get(f"/payments/{payment['id']}").json()
        made = refund(tenant, payment["id"])
        before = int(time.time())
        run_tasks()

    assert [e["type"] for e in hook.events()] == ["payment.succeeded", "refund.created"]
    for request in hook.requests:
        assert request.path == "/hooks/kassa?from=test"
        assert request.headers["Content-Type"] == "application/json"
        header = request.headers["Kassa-Signature"]
        assert verify(endpoint["secret"], header, request.body)
        assert verify(endpoint["secret"], header, request.body, tolerance=300, now=before)
        assert not verify(endpoint["secret"], header, request.body + b" ")  # tampered
        assert not verify("whsec_another", header, request.body)
        event = request.event
        assert set(event) == {"id", "type", "created", "data"}
        assert event["id"].startswith("evt_") and request.headers["Kassa-Event-Id"] == event["id"]
        assert abs(event["created"] - before) < 60
    # data.object is the object as the API answers it at the moment of the event.
    assert hook.events()[0]["data"]["object"] == paid
    assert hook.events()[1]["data"]["object"] == made
    assert [d.status for d in deliveries(endpoint)] == ["delivered", "delivered"]
    listed = tenant.api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").json()
    assert [(d["type"], d["status"], d["attempts"], d["last_status_code"]) for d in listed] == [
        ("refund.created", "delivered", 1, 200), ("payment.succeeded", "delivered", 1, 200)]
    assert listed[0]["event"] == hook.events()[1]["id"]


def test_500_then_200_delivers_the_same_event_twice_and_nothing_more(tenant):
    with receiver(answers=[500]) as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        made = refund(tenant, tenant.pay(tenant.invoice()["id"], "100.00")["id"])
        run_tasks()
        [first] = deliveries(endpoint)
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
        assert "answered 500" in first.last_error
        assert first.next_attempt_at - first.claimed_at == delivering.backoff(1)
        run_tasks()  # the retry waits for its time
        assert len(hook.requests) == 1

        make_deliveries_due()
        for sweep in SWEEPS:  # the sweep may queue it too: it is still sent once
            sweep(timezone.now() + dt.timedelta(minutes=5))  # type: ignore[call-arg]
        run_tasks()
        make_deliveries_due()
        for sweep in SWEEPS:
            sweep(timezone.now() + dt.timedelta(days=1))  # type: ignore[call-arg]
        run_tasks()

    assert len(hook.requests) == 2
    first_try, second_try = hook.requests
    assert first_try.body == second_try.body  # the same id, type, created and object
    assert first_try.event["id"] == second_try.event["id"]
    assert second_try.event["data"]["object"] == made
    [done] = deliveries(endpoint)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 2, 200)
    assert WebhookEvent.objects.count() == 1


def test_a_receiver_down_for_a_while_loses_nothing(tenant):
    port = free_port()  # nobody listens there yet
    endpoint = add_endpoint(tenant.api, f"http://127.0.0.1:{port}/in", ["refund.created"])
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    made = [refund(tenant, payment["id"], amount=amount) for amount in ("1.00", "2.00")]
    for _ in range(3):
        run_tasks()
        make_deliveries_due()
    assert [(d.status, d.attempts) for d in deliveries(endpoint)] == [("pending", 3)] * 2
    assert all("no answer" in d.last_error and d.last_status_code is None
               for d in deliveries(endpoint))

    with receiver(port=port) as hook:
        # Later, the worker's sweep finds them due again (their own retries are queued too).
        DBTaskResult.objects.filter(status="READY").delete()
        assert sweep_deliveries(timezone.now() + dt.timedelta(hours=1)) == 2
        run_tasks()
        assert sweep_deliveries(timezone.now() + dt.timedelta(days=1)) == 0
        run_tasks()
    assert sorted(e["data"]["object"]["id"] for e in hook.events()) == sorted(
        m["id"] for m in made)
    assert [(d.status, d.attempts) for d in deliveries(endpoint)] == [("delivered", 4)] * 2


def test_a_delivery_gives_up_three_days_after_its_event(tenant):
    endpoint = add_endpoint(tenant.api, f"http://127.0.0.1:{free_port()}/", ["refund.created"])
    refund(tenant, tenant.pay(tenant.invoice()["id"], "100.00")["id"])
    # Its next try would come after the three days: it is the last.
    WebhookEvent.objects.update(created_at=timezone.now() - dt.timedelta(days=3, seconds=-10))
    run_tasks()
    [gone] = deliveries(endpoint)
    assert (gone.status, gone.attempts, gone.next_attempt_at) == ("gave_up", 1, None)
    assert DBTaskResult.objects.filter(status="READY").count() == 0


def test_the_waits_double_and_are_bounded():
    waits = [delivering.backoff(n).total_seconds() for n in range(1, 12)]
    assert waits[:4] == [30, 60, 120, 240]
    assert max(waits) == delivering.LONGEST_WAIT_SECONDS == 3 * 3600
    # Tries over three days, then none: bounded.
    at, tries = 0.0, 1
    while at + delivering.backoff(tries).total_seconds() <= delivering.RETRY_FOR.total_seconds():
        at += delivering.backoff(tries).total_seconds()
        tries += 1
    assert 20 < tries < 40


def test_only_the_types_an_endpoint_listens_for_and_only_its_organizations(tenant,
                                                                           other_tenant):
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["refund.created"])
        refund(other_tenant, other_tenant.pay(other_tenant.invoice()["id"], "100.00")["id"])
        tenant.pay(tenant.invoice()["id"], "100.00")  # payment.succeeded: not listened for
        run_tasks()
    assert hook.requests == []
    assert WebhookEvent.objects.count() == 0  # no listener, no event row


def test_a_rolled_back_refund_announces_nothing(tenant):
    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["refund.created"])
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        tasks_before = DBTaskResult.objects.count()

        class Abort(Exception):
            pass

        with pytest.raises(Abort), transaction.atomic():
            refunds.refund_payment(actor=tenant.admin, payment=payment["id"], type="offline",
                                   amount="10.00", reason="x", method="cash")
            assert WebhookDelivery.objects.count() == 1  # written with the refund...
            raise Abort  # ...and rolled back with it
        # Refused by a rule: nothing either.
        with pytest.raises(RefundExceedsRefundable):
            refunds.refund_payment(actor=tenant.admin, payment=payment["id"], type="offline",
                                   amount="500.00", reason="x", method="cash")
        assert (WebhookEvent.objects.count(), WebhookDelivery.objects.count()) == (0, 0)
        assert DBTaskResult.objects.count() == tasks_before
        run_tasks()
    assert hook.requests == []


@pytest.mark.django_db(transaction=True)  # no test transaction around it: autocommit
def test_emit_belongs_inside_the_transaction_of_the_change(tenant):
    with pytest.raises(AssertionError, match="inside the transaction"):
        emit("refund.created", organization_id=tenant.organization.pk, render=dict)


def test_a_url_that_now_resolves_to_a_private_address_is_not_sent_to(tenant, settings):
    """Checked again at every try (DNS rebinding): made while private addresses were allowed,
    refused once they are not."""
    with receiver() as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        settings.KASSA_WEBHOOKS_ALLOW_PRIVATE = False
        refund(tenant, tenant.pay(tenant.invoice()["id"], "100.00")["id"])
        run_tasks()
    assert hook.requests == []
    [refused] = deliveries(endpoint)
    assert refused.status == "pending" and "refused now" in refused.last_error


def test_a_slow_receiver_costs_a_try_at_most_the_timeout(tenant, monkeypatch):
    import threading

    monkeypatch.setattr(delivering, "TIMEOUT_SECONDS", 1.0)
    never = threading.Event()
    with receiver(hold=never) as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        refund(tenant, tenant.pay(tenant.invoice()["id"], "100.00")["id"])
        started = time.monotonic()
        run_tasks()
        took = time.monotonic() - started
    assert len(hook.requests) == 1
    assert took < 5, took
    [slow] = deliveries(endpoint)
    assert slow.status == "pending" and slow.last_status_code is None


def test_deliveries_run_on_their_own_queue_apart_from_mail_and_gateway_calls(tenant):
    from kassa import worker

    with receiver() as hook:
        add_endpoint(tenant.api, hook.url, ["refund.created"])
        refund(tenant, tenant.pay(tenant.invoice()["id"], "100.00")["id"],
               type="offline")
        queues = dict(DBTaskResult.objects.values_list("task_path", "queue_name"))
        assert queues["kassa.webhooks.tasks.deliver"] == WEBHOOK_QUEUE
        main, _mail = worker.lanes()
        assert WEBHOOK_QUEUE in main.excluded_queue_names
        assert worker.webhook_lane().ready().filter(
            task_path="kassa.webhooks.tasks.deliver").count() == 1
        assert not main.ready().filter(task_path="kassa.webhooks.tasks.deliver").exists()


def test_the_worker_prunes_events_a_month_old_with_their_deliveries(tenant):
    from kassa import worker

    with receiver() as hook:
        endpoint = add_endpoint(tenant.api, hook.url, ["refund.created"])
        payment = tenant.pay(tenant.invoice()["id"], "100.00")
        refund(tenant, payment["id"], amount="1.00")
        refund(tenant, payment["id"], amount="2.00")
        run_tasks()
    old, recent = WebhookEvent.objects.order_by("pk")
    WebhookEvent.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - worker.KEEP_WEBHOOK_EVENTS - dt.timedelta(hours=1))
    assert worker.prune(timezone.now())["webhook_events"] == 1
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert [d.event_id for d in deliveries(endpoint)] == [recent.pk]
