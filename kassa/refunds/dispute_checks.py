"""`kassa verify` checks of disputes and returned payments: the payments' `taken_back` and
`disputed`, what `disputed_funds` holds for each payment, and what each return and re-billed
dispute re-opened — set-based, batch by batch of payments (see kassa/ledger/verify.py)."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.ledger.verify import PAYMENTS, Run, check, each, within
from kassa.tenancy.models import Organization

OPEN = "('warning', 'needs_response', 'under_review')"


@check
def payments_taken_back_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A payment's taken_back is its lost disputes and its return (at most its amount); it is
    disputed while a dispute is open, or lost and not settled."""
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.taken_back_minor, y.disputed, COALESCE(d.lost, 0) + COALESCE(r.back, 0),
               y.amount_minor, COALESCE(d.holding, 0)
        FROM billing_payment y
        LEFT JOIN (
            SELECT d.payment_id,
                   SUM(CASE WHEN d.status = 'lost' THEN d.amount_minor ELSE 0 END) AS lost,
                   SUM(CASE WHEN d.status IN {OPEN}
                             OR (d.status = 'lost' AND d.settlement = '') THEN 1 ELSE 0 END)
                       AS holding
            FROM refunds_dispute d
            WHERE d.organization_id = %(org)s AND {within('d.payment_id', PAYMENTS, run)}
            GROUP BY d.payment_id) d ON d.payment_id = y.id
        LEFT JOIN (
            SELECT r.payment_id, SUM(r.amount_minor) AS back FROM refunds_paymentreturn r
            WHERE r.organization_id = %(org)s AND {within('r.payment_id', PAYMENTS, run)}
            GROUP BY r.payment_id) r ON r.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND (y.taken_back_minor <> CASE
                   WHEN COALESCE(d.lost, 0) + COALESCE(r.back, 0) > y.amount_minor
                   THEN y.amount_minor ELSE COALESCE(d.lost, 0) + COALESCE(r.back, 0) END
               OR y.disputed <> (COALESCE(d.holding, 0) > 0))
        ORDER BY y.id""")
    for pk, taken, disputed, derived, amount, holding in rows:
        if taken != min(derived, amount):
            yield (f"payment {pk}: taken back is {taken}, its lost disputes and return add up "
                   f"to {min(derived, amount)}")
        if bool(disputed) != (holding > 0):
            yield (f"payment {pk}: disputed is {bool(disputed)}, its disputes say "
                   f"{holding > 0}")


@check
def disputed_funds_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """What `disputed_funds` holds for a payment is what its disputes withdrew and neither won
    back nor settled; every settled dispute has its settling entry."""
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, COALESCE(l.held, 0), COALESCE(d.held, 0), COALESCE(d.unposted, 0)
        FROM billing_payment y
        LEFT JOIN (
            SELECT p.payment_id, SUM(p.amount_minor) AS held FROM ledger_posting p
            WHERE p.code = 'disputed_funds' AND p.organization_id = %(org)s
              AND {within('p.payment_id', PAYMENTS, run)}
            GROUP BY p.payment_id) l ON l.payment_id = y.id
        LEFT JOIN (
            SELECT d.payment_id,
                   SUM(CASE WHEN d.withdraw_entry_id IS NOT NULL AND d.status <> 'won'
                             AND d.settlement = '' THEN d.amount_minor ELSE 0 END) AS held,
                   SUM(CASE WHEN (d.settlement <> '') <> (d.settle_entry_id IS NOT NULL)
                            THEN 1 ELSE 0 END) AS unposted
            FROM refunds_dispute d
            WHERE d.organization_id = %(org)s AND {within('d.payment_id', PAYMENTS, run)}
            GROUP BY d.payment_id) d ON d.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND (COALESCE(l.held, 0) <> COALESCE(d.held, 0) OR COALESCE(d.unposted, 0) > 0)
        ORDER BY y.id""")
    for pk, booked, held, unposted in rows:
        if booked != held:
            yield (f"payment {pk}: disputed funds hold {booked}, its disputes withdrew {held} "
                   "not yet won or settled")
        if unposted:
            yield f"payment {pk}: a settled dispute has no settling entry, or the reverse"


@check
def reopened_agrees_with_lines(org: Organization, run: Run | None = None) -> Iterable[str]:
    """What a return or a re-billed dispute re-opened on the invoice (its receivable posting)
    is what it took back from the lines; a return's tender posting is its amount."""
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT w.kind, w.id, w.reopened, w.tendered, w.expected_tendered,
               COALESCE(a.taken, 0)
        FROM (
            SELECT 'return' AS kind, r.id, r.payment_id,
                   SUM(CASE WHEN p.code = 'receivable' THEN p.amount_minor ELSE 0 END)
                       AS reopened,
                   SUM(CASE WHEN p.code IN ('check', 'ach') THEN p.amount_minor ELSE 0 END)
                       AS tendered, -r.amount_minor AS expected_tendered
            FROM refunds_paymentreturn r JOIN ledger_posting p ON p.entry_id = r.entry_id
            WHERE r.organization_id = %(org)s AND {within('r.payment_id', PAYMENTS, run)}
            GROUP BY r.id, r.payment_id, r.amount_minor
            UNION ALL
            SELECT 'dispute', d.id, d.payment_id,
                   SUM(CASE WHEN p.code = 'receivable' THEN p.amount_minor ELSE 0 END), 0, 0
            FROM refunds_dispute d JOIN ledger_posting p ON p.entry_id = d.settle_entry_id
            WHERE d.organization_id = %(org)s AND {within('d.payment_id', PAYMENTS, run)}
            GROUP BY d.id, d.payment_id) w
        LEFT JOIN (
            SELECT COALESCE(a.payment_return_id, a.dispute_id) AS id,
                   CASE WHEN a.payment_return_id IS NULL THEN 'dispute' ELSE 'return' END
                       AS kind,
                   -SUM(a.net_minor + a.tax_minor) AS taken
            FROM billing_paymentallocation a
            WHERE (a.payment_return_id IS NOT NULL OR a.dispute_id IS NOT NULL)
              AND {within('a.payment_id', PAYMENTS, run)}
            GROUP BY COALESCE(a.payment_return_id, a.dispute_id),
                     CASE WHEN a.payment_return_id IS NULL THEN 'dispute' ELSE 'return' END
        ) a ON a.id = w.id AND a.kind = w.kind
        WHERE w.reopened <> COALESCE(a.taken, 0) OR w.tendered <> w.expected_tendered
        ORDER BY w.kind, w.id""")
    for kind, pk, reopened, tendered, expected, taken in rows:
        if reopened != taken:
            yield (f"{kind} {pk}: re-opened {reopened} on its invoice, took back {taken} "
                   "from the lines")
        if tendered != expected:
            yield f"{kind} {pk}: the tender posted {tendered}, expected {expected}"
