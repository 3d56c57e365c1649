"""`kassa verify` checks of packages against their sub-ledgers and their own rows. (Their paid
and refunded figures are their lines', held by billing's checks; what refunds gave back, by the
refunds' checks.)"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, Sum

from kassa.billing.models import LineCredit
from kassa.ledger.selectors import balances_by
from kassa.ledger.verify import check
from kassa.packages.models import Benefit, Package, PackageStatus, Redemption
from kassa.tenancy.models import Organization


def _by(model: type, group: str, fields: tuple[str, ...], **scope: object) -> dict:
    rows = model.objects.filter(**scope).values(group).annotate(  # type: ignore[attr-defined]
        **{f: Sum(f) for f in fields})
    return {row[group]: tuple(int(row[f] or 0) for f in fields) for row in rows}


@check
def packages_agree(org: Organization) -> Iterable[str]:
    liability = balances_by("package_id", "package_liability", organization=org)
    unpaid = balances_by("package_id", "package_sold_unpaid", organization=org)
    redeemed = _by(Redemption, "package_id", ("amount_minor",), package__organization=org)
    # A closed package's unpaid remainder is the line credit that no refund made.
    cancelled = _by(LineCredit, "line_id", ("net_minor",), refund__isnull=True,
                    line__invoice__organization=org, line__kind="package")
    for p in Package.objects.filter(organization=org).select_related("line").iterator():
        name = f"package {p.pk} ({p.name})"
        figures = {
            "balance": (p.balance_minor, -liability.get(p.pk, 0)),
            "redeemed": (p.redeemed_minor, redeemed.get(p.pk, (0,))[0]),
            "sold unpaid": (p.price_minor - p.paid_minor - cancelled.get(p.line_id, (0,))[0],
                            -unpaid.get(p.pk, 0)),
        }
        for figure, (stored, expected) in figures.items():
            if stored != expected:
                yield f"{name}: {figure} is {stored}, its ledger and rows say {expected}"
        if p.tax_refunded_minor > p.tax_paid_minor:
            yield (f"{name}: gave back {p.tax_refunded_minor} of tax, "
                   f"only {p.tax_paid_minor} came in")
        if p.status == PackageStatus.CLOSED and p.balance_minor > 0:
            yield f"{name}: closed with a balance of {p.balance_minor} not forfeited"


@check
def benefits_agree(org: Organization) -> Iterable[str]:
    used = _by(Redemption, "benefit_id", ("quantity",), package__organization=org)
    for b in Benefit.objects.filter(package__organization=org).filter(
            Q(used__gt=0) | Q(redemptions__isnull=False)).distinct().iterator():
        if b.used != used.get(b.pk, (0,))[0]:
            yield f"benefit {b.pk} ({b.name}): used {b.used}, redeemed {used.get(b.pk, (0,))[0]}"
