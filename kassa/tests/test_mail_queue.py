"""E-mail tasks go on a queue of their own, so that `kassa worker` can run them beside the
rest: a mail server that never answers must not hold up a gateway call."""

from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from kassa.core.outbox import MAIL_QUEUE


@pytest.mark.django_db
def test_receipts_go_on_the_mail_queue_and_gateway_calls_do_not(tenant):
    card = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{card['id']}/refunds",
                        {"type": "online", "amount": "30.00", "reason": "x"})
    assert r.status_code == 201, r.content
    queues = dict(DBTaskResult.objects.values_list("task_path", "queue_name"))
    assert queues == {"kassa.refunds.tasks.send_receipt": MAIL_QUEUE,
                      "kassa.refunds.tasks.call_gateway": "default"}
