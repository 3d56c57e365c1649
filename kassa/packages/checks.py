"""`kassa verify` checks of packages against their sub-ledgers and their own rows. (Their paid
and refunded figures are their lines', held by billing's checks; what refunds gave back, by the
refunds' checks.) Set-based, batch by batch of packages (see kassa/ledger/verify.py)."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.ledger.verify import PACKAGES, Run, check, each, spans, within
from kassa.packages.models import PackageStatus
from kassa.tenancy.models import Organization


@check
def packages_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    # balance = paid − redeemed − refunded − forfeited, from the package's line and its row.
    balance = ("(l.paid_net_minor - k.redeemed_minor - l.refunded_net_minor"
               " - k.forfeited_minor)")
    rows = each(org, PACKAGES, run, f"""
        SELECT k.id, k.name, k.status, {balance}, -COALESCE(g.liability, 0),
               k.redeemed_minor, COALESCE(r.redeemed, 0),
               k.price_minor - l.paid_net_minor - COALESCE(c.cancelled, 0),
               -COALESCE(g.unpaid, 0), l.paid_tax_minor, l.refunded_tax_minor
        FROM packages_package k
        JOIN billing_invoiceline l
          ON l.id = k.line_id AND {spans('l.id', PACKAGES, 'line_id')}
        LEFT JOIN (
            SELECT p.package_id,
                   SUM(CASE WHEN p.code = 'package_liability' THEN p.amount_minor ELSE 0 END)
                       AS liability,
                   SUM(CASE WHEN p.code = 'package_sold_unpaid' THEN p.amount_minor ELSE 0 END)
                       AS unpaid
            FROM ledger_posting p
            WHERE p.code IN ('package_liability', 'package_sold_unpaid')
              AND p.organization_id = %(org)s AND {within('p.package_id', PACKAGES, run)}
            GROUP BY p.package_id) g ON g.package_id = k.id
        LEFT JOIN (
            SELECT d.package_id, SUM(d.amount_minor) AS redeemed FROM packages_redemption d
            WHERE {within('d.package_id', PACKAGES, run)}
            GROUP BY d.package_id) r ON r.package_id = k.id
        LEFT JOIN (
            -- A closed package's unpaid remainder is the line credit that no refund made.
            SELECT c.line_id, SUM(c.net_minor) AS cancelled
            FROM billing_linecredit c JOIN packages_package ck ON ck.line_id = c.line_id
            WHERE c.refund_id IS NULL AND {within('ck.id', PACKAGES, run)}
            GROUP BY c.line_id) c ON c.line_id = k.line_id
        WHERE k.organization_id = %(org)s AND {within('k.id', PACKAGES, run)}
          AND ({balance} <> -COALESCE(g.liability, 0)
               OR k.redeemed_minor <> COALESCE(r.redeemed, 0)
               OR k.price_minor - l.paid_net_minor - COALESCE(c.cancelled, 0)
                  <> -COALESCE(g.unpaid, 0)
               OR l.refunded_tax_minor > l.paid_tax_minor
               OR (k.status = %(closed)s AND {balance} > 0))
        ORDER BY k.id""", {"closed": PackageStatus.CLOSED.value})
    for (pk, name, status, balance_, liability, redeemed, redemptions, unpaid, unpaid_booked,
         tax_paid, tax_refunded) in rows:
        label = f"package {pk} ({name})"
        figures = {"balance": (balance_, liability), "redeemed": (redeemed, redemptions),
                   "sold unpaid": (unpaid, unpaid_booked)}
        for figure, (stored, expected) in figures.items():
            if stored != expected:
                yield f"{label}: {figure} is {stored}, its ledger and rows say {expected}"
        if tax_refunded > tax_paid:
            yield f"{label}: gave back {tax_refunded} of tax, only {tax_paid} came in"
        if status == PackageStatus.CLOSED and balance_ > 0:
            yield f"{label}: closed with a balance of {balance_} not forfeited"


@check
def benefits_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, PACKAGES, run, f"""
        SELECT b.id, b.name, b.used, COALESCE(r.used, 0)
        FROM packages_benefit b
        JOIN packages_package k ON k.id = b.package_id
        LEFT JOIN (
            SELECT d.benefit_id, SUM(d.quantity) AS used FROM packages_redemption d
            WHERE {within('d.package_id', PACKAGES, run)}
            GROUP BY d.benefit_id) r ON r.benefit_id = b.id
        WHERE k.organization_id = %(org)s AND {within('b.package_id', PACKAGES, run)}
          AND {within('k.id', PACKAGES, run)}
          AND b.used <> COALESCE(r.used, 0)
        ORDER BY b.id""")
    for pk, name, used, redeemed in rows:
        yield f"benefit {pk} ({name}): used {used}, redeemed {redeemed}"
