"""A document laid out as PDF (fpdf2): a heading, a few facts, a table, the total, the code."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpdf import FPDF


@dataclass(frozen=True)
class Document:
    kind: str  # "Refund receipt", "Statement of account"
    organization: str
    title: str  # "Refund #12", "Statement for Ann Guest"
    as_of: str  # the moment, as the organization reads it
    facts: list[tuple[str, str]] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    total_label: str = "Total"
    total: str = ""
    code: str = ""


def _text(value: str) -> str:
    # The core fonts are Latin-1: anything else is shown as "?" rather than failing.
    return value.encode("latin-1", "replace").decode("latin-1")


def render(doc: Document) -> bytes:
    out = FPDF(format="A4")
    out.set_title(_text(f"{doc.kind}: {doc.title}"))
    out.set_author(_text(doc.organization))
    out.add_page()
    out.set_font("Helvetica", "B", 16)
    out.cell(0, 10, _text(doc.organization), new_x="LMARGIN", new_y="NEXT")
    out.set_font("Helvetica", "B", 13)
    out.cell(0, 8, _text(f"{doc.kind}: {doc.title}"), new_x="LMARGIN", new_y="NEXT")
    out.set_font("Helvetica", "", 10)
    out.cell(0, 6, _text(f"As of {doc.as_of}"), new_x="LMARGIN", new_y="NEXT")
    out.ln(2)
    for label, value in doc.facts:
        out.cell(45, 6, _text(label))
        out.cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")
    if doc.columns:
        out.ln(3)
        width = (out.w - out.l_margin - out.r_margin) / len(doc.columns)
        out.set_font("Helvetica", "B", 10)
        for name in doc.columns:
            out.cell(width, 7, _text(name), border="B")
        out.ln()
        out.set_font("Helvetica", "", 9)
        for row in doc.rows:
            for value in row:
                out.cell(width, 6, _text(value)[:40])
            out.ln()
    out.ln(3)
    out.set_font("Helvetica", "B", 11)
    out.cell(0, 8, _text(f"{doc.total_label}: {doc.total}"), new_x="LMARGIN", new_y="NEXT")
    out.ln(4)
    out.set_font("Helvetica", "", 9)
    out.cell(0, 6, _text(f"Verification code: {doc.code}"), new_x="LMARGIN", new_y="NEXT")
    out.cell(0, 6, "Check it at /verify/<code> on this organization's Kassa.",
             new_x="LMARGIN", new_y="NEXT")
    return bytes(out.output())
