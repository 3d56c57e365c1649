"""The refund receipt as a document (kassa.documents): what the customer got back, as of the
moment the refund was made. Its figures (amount, tax, total) are the refund's own and never
change; the books have moved since when the refund later failed (the money did not go back)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from kassa.core.money import display
from kassa.documents import codes
from kassa.documents.pdf import Document, render
from kassa.refunds.models import Refund, RefundStatus
from kassa.refunds.selectors import get_refund
from kassa.tenancy.models import Organization


@dataclass(frozen=True)
class Issued:
    document: Document
    code: str
    total_minor: int
    as_of: dt.datetime
    moved_since: bool

    def pdf(self) -> bytes:
        return render(self.document)


def _figures(refund: Refund) -> tuple[object, ...]:
    return (refund.amount_minor, refund.tax_minor, refund.total_minor, refund.payment_id,
            refund.package_id, refund.customer_id)


def receipt(refund: Refund) -> Issued:
    """The receipt of this refund (its organization, invoice and payment read along)."""
    org = refund.organization
    money = lambda minor: display(minor, org.currency, org.locale)  # noqa: E731
    coded = codes.Coded("R", org.pk, refund.pk, refund.created_at)
    code = codes.code_for(coded, _figures(refund))
    when = refund.created_at.astimezone(zoneinfo.ZoneInfo(org.timezone))
    facts = [("Refund", f"#{refund.pk}"), ("Date", when.strftime("%Y-%m-%d %H:%M")),
             ("Method", refund.method or refund.type), ("Reason", refund.reason or "-")]
    if refund.invoice is not None:
        facts.append(("Invoice", refund.invoice.number))
    if refund.payment_id:
        facts.append(("Payment", f"#{refund.payment_id}"))
    if refund.package_id:
        facts.append(("Package", f"#{refund.package_id}"))
    document = Document(
        kind="Refund receipt", organization=org.name, title=f"Refund #{refund.pk}",
        as_of=when.strftime("%Y-%m-%d %H:%M:%S %Z"), facts=facts,
        columns=("", "Amount"),
        rows=[("Refunded", money(refund.amount_minor)), ("Tax returned", money(refund.tax_minor))],
        total_label="Total refunded", total=money(refund.total_minor), code=code)
    return Issued(document, code, refund.total_minor, refund.created_at,
                  moved_since=refund.status == RefundStatus.FAILED)


def find_receipt(organization: Organization, refund_id: object) -> Issued:
    return receipt(get_refund(organization, refund_id))


def verify(coded: codes.Coded, code: str) -> Issued | None:
    """The receipt a code names, if the code is its code."""
    refund = (Refund.objects.select_related("organization", "invoice")
              .filter(organization_id=coded.organization_id, pk=coded.object_id).first())
    if refund is None or refund.created_at != coded.as_of:
        return None
    if not codes.matches(code, coded, _figures(refund)):
        return None
    return receipt(refund)
