"""A document as an HTTP answer: the PDF, its code in `Kassa-Document-Code`."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse

HEADER = "Kassa-Document-Code"

# For the OpenAPI document: the 200 is a PDF, with its code in a header.
PDF_ANSWER: dict[str, Any] = {"responses": {200: {
    "description": "the document as PDF",
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    "headers": {HEADER: {"schema": {"type": "string"},
                         "description": "the verification code printed on it"}}}}}


def pdf_answer(pdf: bytes, code: str, filename: str) -> HttpResponse:
    answer = HttpResponse(pdf, content_type="application/pdf")
    answer[HEADER] = code
    answer["Content-Disposition"] = f'inline; filename="{filename}"'
    return answer
