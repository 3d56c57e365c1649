"""Writes of one organization racing on PostgreSQL each append their entries to one unbroken
chain: the chain head's lock serialises the appends (no fork, no gap, no duplicate seq)."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import Api, outcome, race
from kassa.audit.chain import broken_links
from kassa.audit.models import AuditEntry
from kassa.billing.services import create_customer
from kassa.tenancy.models import Membership

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_simultaneous_writes_keep_one_unbroken_chain(tenant):
    before = AuditEntry.objects.filter(organization=tenant.organization).count()
    invoice = tenant.invoice()

    def work(i: int) -> object:
        actor = Membership.objects.select_related("organization", "user").get(
            pk=tenant.admin.pk)
        if i % 2:
            return Api(tenant.token, Client()).post(f"/invoices/{invoice['id']}/payments", {
                "amount": "1.00", "method": "cash", "online": False}).status_code
        return create_customer(actor=actor, name=f"Guest {i}", email=f"g{i}@example.com")

    results = race(12, work)
    assert [outcome(r) for r in results] == ["ok"] * 12, results
    assert [r for r in results if isinstance(r, int)] == [201] * 6
    seqs = list(AuditEntry.objects.filter(organization=tenant.organization)
                .order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= before + 1 + 12
    assert list(broken_links(tenant.organization.pk)) == []
