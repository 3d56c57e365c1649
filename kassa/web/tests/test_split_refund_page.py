"""*Refund invoice* in a browser: a split refund of $60 to the card and $40 in cash, with the
live total, and the rule's message beside the part that breaks it (nothing written)."""

from __future__ import annotations

import re

import pytest

from kassa.ledger.verify import verify
from kassa.refunds.models import Refund
from kassa.web.tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_split_refund_from_the_invoice_page(page, tenant):
    invoice = tenant.invoice({"kind": "service", "description": "Arrangements",
                              "unit_price": "100.00"})
    card = tenant.pay(invoice["id"], "60.00", method="card", online=True)
    cash = tenant.pay(invoice["id"], "40.00", method="cash")
    sign_in(page, tenant.admin.user.email)
    page.goto(f"/invoices/{invoice['id']}/")
    page.locator(".page-head > a", has_text="Refund invoice").click()
    page.wait_for_url(re.compile(rf".*/invoices/{invoice['id']}/refund/$"))

    page.get_by_label(f"Amount from payment #{cash['id']}").fill("100.00")
    page.get_by_label(f"Refund payment #{cash['id']} to").select_option("offline:cash")
    total = page.locator("[data-live-total-out]")
    assert total.inner_text() == "100.00"
    page.get_by_label("Reason for refund").fill("Service cancelled")
    page.get_by_role("button", name="Review refund").click()
    alert = page.locator(f"#amount-{cash['id']}-error")
    alert.wait_for()
    assert "At most $40.00" in alert.inner_text()
    screenshot(page, "split-refund-refused-part")
    assert Refund.objects.count() == 0

    page.get_by_label(f"Amount from payment #{card['id']}").fill("60.00")
    page.get_by_label(f"Amount from payment #{cash['id']}").fill("40.00")
    assert total.inner_text() == "100.00"
    screenshot(page, "split-refund")
    page.get_by_role("button", name="Review refund").click()
    review = page.get_by_test_id("review")
    review.wait_for()
    effects = page.locator(".review-effects").inner_text()
    assert "$60.00 back to the card of payment" in effects and "$40.00 by cash" in effects
    assert "balance due becomes $100.00" in effects
    assert Refund.objects.count() == 0  # nothing moved at the review
    screenshot(page, "split-refund-review")
    page.get_by_role("button", name="Confirm refund of $100.00").click()
    page.wait_for_url(re.compile(rf".*/invoices/{invoice['id']}/$"))
    assert ("Refund of $100.00 recorded in 2 parts: $60.00 back to the card of payment "
            f"#{card['id']}, $40.00 by cash") in (
        page.content())
    assert sorted(Refund.objects.values_list("type", "amount_minor")) == [
        ("offline", 4000), ("online", 6000)]
    assert verify(tenant.organization) == []
