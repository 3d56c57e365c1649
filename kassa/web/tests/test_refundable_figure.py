"""A payment's Refundable on its page is what a refund could truly take now (issue 15, item 4):
less what it paid into a package used since, with the reason beside it — and the refund form
refuses exactly above that figure."""

from __future__ import annotations

import re

from django.test import Client

from kassa.packages.tests.test_package_refunds_api import redeem, sell, template


def refundable_on_page(tenant, payment_id):
    client = Client()
    client.force_login(tenant.admin.user)
    html = client.get(f"/payments/{payment_id}/").content.decode()
    found = re.search(r'data-testid="refundable">([^<]+)', html)
    assert found is not None
    return found.group(1).strip(), html


def test_refundable_says_what_a_package_used_since_leaves(tenant):
    tpl = template(tenant, price="500.00")
    inv, pkg = sell(tenant, tpl, extra_lines=[{"kind": "service", "description": "Consult",
                                               "unit_price": "100.00"}])
    payment = tenant.pay(inv["id"], "600.00", method="cash")
    assert refundable_on_page(tenant, payment["id"])[0] == "$600.00"
    redeem(tenant, pkg, 2)  # 400.00 of the package used: it can give back 100.00
    shown, html = refundable_on_page(tenant, payment["id"])
    assert shown == "$200.00"  # the consult's 100.00 and the package's 100.00 left
    assert "of $600.00 not yet refunded" in html and 'data-testid="refundable-why"' in html
    too_much = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "200.01", "reason": "x"})
    assert too_much.status_code == 422 and "$200.00" in too_much.json()["detail"]
    assert tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "200.00",
        "reason": "x"}).status_code == 201
