"""The shapes in which an invoice's lines arrive, from the API and the pages alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LineInput:
    kind: str
    description: str
    quantity: int
    unit_price: str | None = None  # a package line defaults to its template's price
    tax_rate: str | None = None  # and tax rate; other lines default to no tax
    package_template: str | None = None
