"""`kassa verify` checks of refunds and the payments' refunded figures: set-based, batch by
batch of payments, invoices, packages or refunds (see kassa/ledger/verify.py)."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.ledger.models import TENDER_CODES
from kassa.ledger.verify import (
    INVOICES,
    PACKAGES,
    PAYMENTS,
    REFUNDS,
    Run,
    check,
    each,
    in_list,
    spans,
    within,
)
from kassa.refunds.models import RefundStatus
from kassa.tenancy.models import Organization

# What a refund that did not fail gives back: its amount and the tax returned with it.
LIVE_TOTAL = "CASE WHEN f.status <> 'failed' THEN f.amount_minor + f.tax_minor ELSE 0 END"
assert RefundStatus.FAILED == "failed" and RefundStatus.PENDING == "pending"


@check
def payments_refunded_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.refunded_minor, y.refund_pending, COALESCE(r.refunded, 0),
               COALESCE(r.pending, 0), y.refunded_online_minor, COALESCE(r.online, 0)
        FROM billing_payment y LEFT JOIN (
            SELECT f.payment_id,
                   SUM(CASE WHEN f.from_credit THEN 0 ELSE {LIVE_TOTAL} END) AS refunded,
                   SUM(CASE WHEN f.type = 'online' THEN {LIVE_TOTAL} ELSE 0 END) AS online,
                   SUM(CASE WHEN f.status = 'pending' THEN 1 ELSE 0 END) AS pending
            FROM refunds_refund f
            WHERE f.organization_id = %(org)s AND {within('f.payment_id', PAYMENTS, run)}
            GROUP BY f.payment_id) r ON r.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND (y.refunded_minor <> COALESCE(r.refunded, 0)
               OR y.refunded_online_minor <> COALESCE(r.online, 0)
               OR y.refund_pending <> (COALESCE(r.pending, 0) > 0))
        ORDER BY y.id""")
    for pk, refunded, refund_pending, live, pending, online, live_online in rows:
        if refunded != live:
            yield (f"payment {pk}: refunded is {refunded}, its refunds that did not "
                   f"fail add up to {live}")
        if online != live_online:
            yield (f"payment {pk}: refunded online is {online}, its online refunds that did "
                   f"not fail add up to {live_online}")
        if bool(refund_pending) != (pending > 0):
            yield f"payment {pk}: refund_pending is {bool(refund_pending)}, its refunds disagree"


@check
def invoices_refunded_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, INVOICES, run, f"""
        SELECT i.number, i.refunded_minor, COALESCE(r.refunded, 0)
        FROM billing_invoice i LEFT JOIN (
            SELECT f.invoice_id, SUM({LIVE_TOTAL}) AS refunded FROM refunds_refund f
            WHERE f.organization_id = %(org)s AND {within('f.invoice_id', INVOICES, run)}
            GROUP BY f.invoice_id) r ON r.invoice_id = i.id
        WHERE i.organization_id = %(org)s AND {within('i.id', INVOICES, run)}
          AND i.refunded_minor <> COALESCE(r.refunded, 0)
        ORDER BY i.id""")
    for number, refunded, live in rows:
        yield f"invoice {number}: refunded is {refunded}, its refunds add up to {live}"


@check
def package_refunds_agree_with_lines(org: Organization, run: Run | None = None) -> Iterable[str]:
    """What package refunds that did not fail gave back is their package line's refunded."""
    run = run or Run()
    rows = each(org, PACKAGES, run, f"""
        SELECT l.id, l.refunded_net_minor, l.refunded_tax_minor, COALESCE(r.n, 0),
               COALESCE(r.t, 0)
        FROM packages_package k
        JOIN billing_invoiceline l
          ON l.id = k.line_id AND {spans('l.id', PACKAGES, 'line_id')}
        LEFT JOIN (
            SELECT f.package_id, SUM(f.amount_minor) AS n, SUM(f.tax_minor) AS t
            FROM refunds_refund f
            WHERE f.status <> 'failed' AND f.organization_id = %(org)s
              AND {within('f.package_id', PACKAGES, run)}
            GROUP BY f.package_id) r ON r.package_id = k.id
        WHERE k.organization_id = %(org)s AND {within('k.id', PACKAGES, run)}
          AND (l.refunded_net_minor <> COALESCE(r.n, 0) OR l.refunded_tax_minor <> COALESCE(r.t, 0))
        ORDER BY l.id""")
    for pk, net, tax, n, t in rows:
        yield (f"invoice line {pk}: refunded {net}+{tax}, the refunds of "
               f"its package {(n, t)}")


@check
def refund_credits_agree_with_ledger(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A payment refund's credit (decrease balance owed) is what its issuing entry posted to
    sales credits and tax payable."""
    run = run or Run()
    rows = each(org, REFUNDS, run, f"""
        SELECT f.id, f.credit_net_minor, f.credit_tax_minor, COALESCE(g.net, 0), COALESCE(g.tax, 0)
        FROM refunds_refund f LEFT JOIN (
            SELECT p.refund_id,
                   SUM(CASE WHEN p.code = 'sales_credits' THEN p.amount_minor ELSE 0 END) AS net,
                   SUM(CASE WHEN p.code = 'tax_payable' THEN p.amount_minor ELSE 0 END) AS tax
            FROM ledger_posting p
            WHERE p.code IN ('sales_credits', 'tax_payable')
              AND p.kind IN ('refund_issued', 'refund_recorded', 'refund_to_credit')
              AND p.organization_id = %(org)s AND {within('p.refund_id', REFUNDS, run)}
            GROUP BY p.refund_id) g ON g.refund_id = f.id
        WHERE f.organization_id = %(org)s AND {within('f.id', REFUNDS, run)}
          AND f.package_id IS NULL
          AND (f.credit_net_minor <> COALESCE(g.net, 0) OR f.credit_tax_minor <> COALESCE(g.tax, 0))
        ORDER BY f.id""")
    for pk, net, tax, posted_net, posted_tax in rows:
        yield f"refund {pk}: credit {net}+{tax}, its entry posted {posted_net}+{posted_tax}"


@check
def refunds_agree_with_ledger(org: Organization, run: Run | None = None) -> Iterable[str]:
    """What a refund holds in transit, paid out by a tender and moved of a customer's credit is
    what its status and type say: a refund to credit pays nothing out but puts its total into
    credit; a refund out of credit that did not fail took its total out of it."""
    run = run or Run()
    run = run or Run()
    total = "(f.amount_minor + f.tax_minor)"
    expected_transit = f"CASE WHEN f.status = 'pending' THEN -{total} ELSE 0 END"
    expected_out = (f"CASE WHEN f.type = 'credit' THEN 0 "
                    f"WHEN f.status IN ('succeeded', 'recorded') THEN {total} ELSE 0 END")
    expected_credit = (f"CASE WHEN f.type = 'credit' AND f.status <> 'failed' THEN -{total} "
                       f"WHEN f.from_credit AND f.status <> 'failed' THEN {total} ELSE 0 END")
    rows = each(org, REFUNDS, run, f"""
        SELECT f.id, f.status, COALESCE(g.transit, 0), -COALESCE(g.tendered, 0),
               {expected_transit}, {expected_out}, COALESCE(g.credit, 0), {expected_credit}
        FROM refunds_refund f LEFT JOIN (
            SELECT p.refund_id,
                   SUM(CASE WHEN p.code = 'refunds_in_transit' THEN p.amount_minor ELSE 0 END)
                       AS transit,
                   SUM(CASE WHEN p.code IN {in_list(TENDER_CODES)} THEN p.amount_minor ELSE 0 END)
                       AS tendered,
                   SUM(CASE WHEN p.code = 'customer_credit' THEN p.amount_minor ELSE 0 END)
                       AS credit
            FROM ledger_posting p
            WHERE p.code IN {in_list(('refunds_in_transit', 'customer_credit', *TENDER_CODES))}
              AND p.organization_id = %(org)s AND {within('p.refund_id', REFUNDS, run)}
            GROUP BY p.refund_id) g ON g.refund_id = f.id
        WHERE f.organization_id = %(org)s AND {within('f.id', REFUNDS, run)}
          AND (COALESCE(g.transit, 0) <> {expected_transit}
               OR -COALESCE(g.tendered, 0) <> {expected_out}
               OR COALESCE(g.credit, 0) <> {expected_credit})
        ORDER BY f.id""")
    for pk, status, transit, paid_out, want_transit, want_out, moved, want_moved in rows:
        if moved != want_moved:
            yield (f"refund {pk} ({status}): it moved {-moved} into the customer's credit, "
                   f"expected {-want_moved}")
        if transit != want_transit:
            yield (f"refund {pk} ({status}): refunds in transit holds {-transit}, "
                   f"expected {-want_transit}")
        if paid_out != want_out:
            yield (f"refund {pk} ({status}): the tenders paid out {paid_out}, "
                   f"expected {want_out}")
