"""The refund forms without a browser: the plain-HTML fallback (no JavaScript) and the htmx
answers — a partial for the panel, the error's own status, a client redirect on success."""

from __future__ import annotations

import pytest
from django.test import Client

from kassa.billing.models import Payment, PaymentEvent
from kassa.ledger.models import JournalEntry
from kassa.refunds.models import Refund

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def desk(tenant) -> Client:
    client = Client()
    client.force_login(tenant.admin.user)
    return client


def counts() -> tuple[int, int, int]:
    return Refund.objects.count(), PaymentEvent.objects.count(), JournalEntry.objects.count()


def test_without_javascript_the_form_is_a_page_and_a_refusal_is_shown_beside_its_field(
        tenant, desk):
    inv = tenant.invoice()
    cash = tenant.pay(inv["id"], "100.00", method="cash")
    url = f"/payments/{cash['id']}/refund/offline/"

    page = desk.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Payment details" in html and 'name="amount"' in html  # the page, form open
    assert 'value="100.00"' not in html  # the amount is typed, never the whole refundable
    assert '<label for="id_method">Refund method</label>' in html

    before = counts()
    refused = desk.post(url, {"amount": "10.00", "reason": "", "method": "cash"})
    assert refused.status_code == 422
    assert "is required" in refused.content.decode()
    assert counts() == before

    review = desk.post(url, {"amount": "10.00", "reason": "Broken vase", "method": "check"})
    assert review.status_code == 200 and "Record refund of $10.00" in review.content.decode()
    assert counts() == before  # the review wrote nothing
    done = desk.post(url, {"amount": "10.00", "reason": "Broken vase", "method": "check",
                           "confirm": "1"})
    assert done.status_code == 302 and done["Location"] == f"/payments/{cash['id']}/"
    refund = Refund.objects.get()
    assert (refund.method, refund.amount_minor, refund.status) == ("check", 1000, "recorded")


def test_with_htmx_the_form_is_a_partial_and_errors_keep_their_status(tenant, desk):
    inv = tenant.invoice()
    card = tenant.pay(inv["id"], "100.00", method="card", online=True)
    url = f"/payments/{card['id']}/refund/online/"

    partial = desk.get(url, headers=HTMX)
    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html and "Issue online refund" in html
    assert 'name="method"' not in html  # an online refund goes back by the card

    done = desk.post(url, {"amount": "20.00", "reason": "Late", "confirm": "1"}, headers=HTMX)
    assert done.status_code == 200 and done["HX-Redirect"] == f"/payments/{card['id']}/"

    before = counts()
    pending = desk.post(url, {"amount": "5.00", "reason": "Again", "confirm": "1"},
                        headers=HTMX)
    assert pending.status_code == 409
    assert "wait until it settles" in pending.content.decode()  # the rule's message
    assert counts() == before
    assert Payment.objects.get(pk=card["id"]).refunded_minor == 2000


def test_an_accountant_gets_403_with_the_rules_message(tenant):
    inv = tenant.invoice()
    cash = tenant.pay(inv["id"], "100.00", method="cash")
    accountant, _ = tenant.user("accountant")
    client = Client()
    client.force_login(accountant.user)
    url = f"/payments/{cash['id']}/refund/offline/"
    assert "Record offline refund" not in client.get(f"/payments/{cash['id']}/").content.decode()
    answer = client.post(url, {"amount": "1.00", "reason": "x", "method": "cash"}, headers=HTMX)
    assert answer.status_code == 403 and "may not refund" in answer.content.decode()
    assert Refund.objects.count() == 0


def test_another_organizations_payment_form_is_404(tenant, other_tenant, desk):
    inv = other_tenant.invoice()
    cash = other_tenant.pay(inv["id"], "100.00", method="cash")
    assert desk.get(f"/payments/{cash['id']}/refund/offline/").status_code == 404
    assert desk.post(f"/payments/{cash['id']}/refund/offline/",
                     {"amount": "1.00", "reason": "x", "method": "cash"}).status_code == 404
    assert Refund.objects.count() == 0
