"""`kassa verify` of what open refund requests reserve (DESIGN.md, "Governed refunds"): each
payment's stored `requested_minor` is the sum of its open requests' holds, each package's the
amount of its open request, each customer's that of their credit's open requests. Set-based,
batch by batch (see kassa/ledger/verify.py)."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.ledger.verify import CUSTOMERS, PACKAGES, PAYMENTS, Run, check, each, within
from kassa.refunds.models import RequestKind, RequestStatus
from kassa.tenancy.models import Organization

assert RequestStatus.OPEN == "open" and RequestKind.CREDIT == "credit"


@check
def payments_requested_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.requested_minor, COALESCE(r.held, 0)
        FROM billing_payment y LEFT JOIN (
            SELECT h.payment_id, SUM(h.amount_minor) AS held
            FROM refunds_requesthold h JOIN refunds_refundrequest q ON q.id = h.request_id
            WHERE h.organization_id = %(org)s AND q.status = 'open'
              AND {within('h.payment_id', PAYMENTS, run)}
            GROUP BY h.payment_id) r ON r.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND y.requested_minor <> COALESCE(r.held, 0)
        ORDER BY y.id""")
    for pk, stored, held in rows:
        yield f"payment {pk}: requested is {stored}, its open refund requests reserve {held}"


@check
def packages_requested_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, PACKAGES, run, f"""
        SELECT k.id, k.requested_minor, COALESCE(r.held, 0)
        FROM packages_package k LEFT JOIN (
            SELECT q.package_id, SUM(q.amount_minor) AS held FROM refunds_refundrequest q
            WHERE q.organization_id = %(org)s AND q.status = 'open'
              AND {within('q.package_id', PACKAGES, run)}
            GROUP BY q.package_id) r ON r.package_id = k.id
        WHERE k.organization_id = %(org)s AND {within('k.id', PACKAGES, run)}
          AND k.requested_minor <> COALESCE(r.held, 0)
        ORDER BY k.id""")
    for pk, stored, held in rows:
        yield f"package {pk}: requested is {stored}, its open refund request reserves {held}"


@check
def customers_requested_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, CUSTOMERS, run, f"""
        SELECT c.id, c.requested_minor, COALESCE(r.held, 0)
        FROM billing_customer c LEFT JOIN (
            SELECT q.target_id, SUM(q.amount_minor) AS held FROM refunds_refundrequest q
            WHERE q.organization_id = %(org)s AND q.status = 'open' AND q.kind = 'credit'
              AND {within('q.target_id', CUSTOMERS, run)}
            GROUP BY q.target_id) r ON r.target_id = c.id
        WHERE c.organization_id = %(org)s AND {within('c.id', CUSTOMERS, run)}
          AND c.requested_minor <> COALESCE(r.held, 0)
        ORDER BY c.id""")
    for pk, stored, held in rows:
        yield (f"customer {pk}: requested is {stored}, the open refund requests of their "
               f"credit reserve {held}")
