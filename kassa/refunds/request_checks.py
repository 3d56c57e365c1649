"""`kassa verify` of what open refund requests reserve (DESIGN.md, "Governed refunds"): each
payment's stored `requested_minor` is the sum of its open requests' amounts. Set-based, batch by
batch of payments (see kassa/ledger/verify.py)."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.ledger.verify import PAYMENTS, Run, check, each, within
from kassa.refunds.models import RequestStatus
from kassa.tenancy.models import Organization

assert RequestStatus.OPEN == "open"


@check
def payments_requested_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.requested_minor, COALESCE(r.held, 0)
        FROM billing_payment y LEFT JOIN (
            SELECT q.payment_id, SUM(q.amount_minor) AS held
            FROM refunds_refundrequest q
            WHERE q.organization_id = %(org)s AND q.status = 'open'
              AND q.package_id IS NULL AND {within('q.payment_id', PAYMENTS, run)}
            GROUP BY q.payment_id) r ON r.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND y.requested_minor <> COALESCE(r.held, 0)
        ORDER BY y.id""")
    for pk, stored, held in rows:
        yield f"payment {pk}: requested is {stored}, its open refund requests reserve {held}"
