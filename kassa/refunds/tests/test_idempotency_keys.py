"""A refund's gateway key names this installation, is the same for every try, and a refund
made before keys named the installation keeps the key it was called with."""

from __future__ import annotations

import pytest

from kassa.core.installation import installation_key
from kassa.refunds.gateway_calls import idempotency_key
from kassa.refunds.models import Refund


@pytest.fixture
def refund(tenant) -> Refund:
    payment = tenant.pay(tenant.invoice()["id"], "100.00", method="card", online=True)
    r = tenant.api.post(f"/payments/{payment['id']}/refunds",
                        {"type": "online", "amount": "5.00", "reason": "x"})
    assert r.status_code == 201, r.content
    return Refund.objects.get(pk=r.json()["id"])


def test_the_key_names_the_installation_and_stays_the_same(refund):
    key = installation_key()
    assert len(key) == 12 and key == installation_key()  # made once, then kept
    assert idempotency_key(refund) == f"kassa-{key}-refund-{refund.pk}"
    assert idempotency_key(Refund.objects.get(pk=refund.pk)) == idempotency_key(refund)


def test_a_copy_of_the_database_sends_other_keys(refund, settings):
    mine = idempotency_key(refund)
    settings.KASSA_INSTALLATION = "staging"
    assert idempotency_key(refund) == f"kassa-staging-refund-{refund.pk}" != mine


def test_a_refund_made_before_keeps_its_old_key(refund):
    Refund.objects.filter(pk=refund.pk).update(keyed_by_installation=False)
    assert idempotency_key(Refund.objects.get(pk=refund.pk)) == f"kassa-refund-{refund.pk}"
