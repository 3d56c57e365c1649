"""The documents: a refund receipt and statements of account as PDF, each with a verification
code printed on it and in `Kassa-Document-Code`, the same for the same `as_of`; `/verify/<code>`
without signing in; another organization's document is a 404; bad input changes nothing."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from conftest import Tenant, run_tasks
from kassa.documents.answer import HEADER


def ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.content
    return response


def text_of(response: Any) -> str:
    assert response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    return "\n".join(page.extract_text() for page in reader.pages)


def refunded(tenant: Tenant) -> tuple[str, dict[str, Any], dict[str, Any]]:
    customer = tenant.customer()
    invoice = tenant.invoice(customer=customer)
    payment = tenant.pay(invoice["id"], "100.00")
    refund = ok(tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "40.00", "method": "cash", "reason": "Too much"})).json()
    return customer, payment, refund


@pytest.fixture(autouse=True)
def fresh_rate_limit() -> None:
    cache.clear()


def test_the_refund_receipt_shows_the_amounts_and_its_code(tenant):
    _, _, refund = refunded(tenant)
    answer = ok(tenant.api.get(f"/refunds/{refund['id']}/document"), 200)
    code = answer[HEADER]
    text = text_of(answer)
    assert "Refund receipt" in text and f"Refund #{refund['id']}" in text
    assert "$40.00" in text and code in text
    assert tenant.organization.name in text
    assert ok(tenant.api.get(f"/refunds/{refund['id']}/document"), 200)[HEADER] == code


def test_a_statement_shows_what_is_owed_from_the_ledger_and_its_code(tenant):
    customer, _, _ = refunded(tenant)
    tenant.invoice(customer=customer)  # a second invoice, unpaid: $100.00 owed
    answer = ok(tenant.api.get(f"/customers/{customer}/statement"), 200)
    text = text_of(answer)
    assert "Statement of account" in text
    # Invoiced 100, paid 100, owed 40 again once 40 was given back, then 100 more.
    assert "-$100.00" in text and "$40.00" in text
    assert "Balance owed: $140.00" in text
    assert answer[HEADER] in text


def test_the_same_as_of_gives_the_same_code_and_a_later_one_another(tenant):
    customer, _, _ = refunded(tenant)
    as_of = timezone.now().isoformat()
    first = ok(tenant.api.get(f"/customers/{customer}/statement", as_of=as_of), 200)
    tenant.invoice(customer=customer)
    again = ok(tenant.api.get(f"/customers/{customer}/statement", as_of=as_of), 200)
    assert first[HEADER] == again[HEADER]
    assert "Balance owed: $40.00" in text_of(again)  # the later invoice is not in it
    now = ok(tenant.api.get(f"/customers/{customer}/statement"), 200)
    assert now[HEADER] != first[HEADER]


def test_a_case_statement_lists_the_cases_invoices(tenant):
    customer = tenant.customer()
    case = ok(tenant.api.post("/cases", {"customer": customer, "name": "J. Doe"})).json()
    invoice = tenant.invoice(customer=customer, case=case["id"])
    tenant.invoice(customer=customer)  # not the case's
    answer = ok(tenant.api.get(f"/cases/{case['id']}/statement"), 200)
    text = text_of(answer)
    assert "Statement for J. Doe" in text and invoice["number"] in text
    assert "Balance owed: $100.00" in text


def test_verify_shows_only_organization_kind_date_and_total(tenant):
    _, _, refund = refunded(tenant)
    code = ok(tenant.api.get(f"/refunds/{refund['id']}/document"), 200)[HEADER]
    page = Client().get(f"/verify/{code}")  # nobody signed in
    assert page.status_code == 200
    text = page.content.decode()
    assert tenant.organization.name in text and "Refund receipt" in text and "$40.00" in text
    assert "valid as of" in text and "moved since" not in text
    assert "Too much" not in text  # the reason, like every other detail, is not shown


def test_verify_of_a_statement_issued_before_a_correction_says_the_books_moved(tenant):
    customer, payment, _ = refunded(tenant)
    issued = ok(tenant.api.get(f"/customers/{customer}/statement"), 200)[HEADER]
    time.sleep(0.01)
    ok(tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "amount": "10.00", "method": "cash", "reason": "Correction"}))
    page = Client().get(f"/verify/{issued}")
    assert page.status_code == 200
    text = page.content.decode()
    assert "valid as of" in text and "The books have moved since" in text


@pytest.mark.parametrize("code", [
    "nonsense", "R-1-1-abc-AAAAAAAAAA", "C-999-1-lq2v9x3k0a-AAAAAAAAAA"])
def test_an_unknown_code_is_a_404(db, code):
    assert Client().get(f"/verify/{code}").status_code == 404


def test_an_altered_code_is_a_404(tenant):
    _, _, refund = refunded(tenant)
    code = ok(tenant.api.get(f"/refunds/{refund['id']}/document"), 200)[HEADER]
    altered = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert Client().get(f"/verify/{altered}").status_code == 404


def test_verify_is_rate_limited(db, settings):
    settings.KASSA_VERIFY_PER_MINUTE = 3
    client = Client()
    assert [client.get("/verify/nonsense").status_code for _ in range(4)] == [404] * 3 + [429]


def test_another_organizations_documents_are_404(tenant, other_tenant):
    customer, _, refund = refunded(other_tenant)
    case = ok(other_tenant.api.post("/cases", {"customer": customer, "name": "X"})).json()
    for path in (f"/refunds/{refund['id']}/document", f"/customers/{customer}/statement",
                 f"/cases/{case['id']}/statement"):
        assert tenant.api.get(path).status_code == 404, path


def test_as_of_not_a_date_time_is_422_naming_the_field_and_changes_nothing(tenant, unchanged):
    customer = tenant.customer()
    with unchanged():
        answer = tenant.api.get(f"/customers/{customer}/statement", as_of="last tuesday")
    assert answer.status_code == 422
    problem = answer.json()
    assert [e["field"] for e in problem["errors"]] == ["as_of"]
    assert "must be a date-time" in problem["detail"]
    assert answer["Content-Type"].startswith("application/problem+json")


def test_the_receipt_email_attaches_its_pdf(tenant):
    _, _, refund = refunded(tenant)
    run_tasks()
    (message,) = [m for m in mail.outbox if "refund receipt" in m.subject]
    (name, content, kind) = message.attachments[0]
    assert (name, kind) == (f"refund-{refund['id']}.pdf", "application/pdf")
    reader = PdfReader(io.BytesIO(content))
    assert "$40.00" in reader.pages[0].extract_text()


def test_print_links_serve_the_pdfs_to_the_signed_in_desk(tenant):
    customer, payment, refund = refunded(tenant)
    client = Client()
    client.force_login(tenant.admin.user)
    page = client.get(f"/payments/{payment['id']}/").content.decode()
    assert f"/refunds/{refund['id']}/receipt.pdf" in page
    assert f"/customers/{customer}/statement.pdf" in page
    assert f"/customers/{customer}/statement.pdf" in client.get(
        f"/customers/{customer}/").content.decode()
    for path in (f"/refunds/{refund['id']}/receipt.pdf", f"/customers/{customer}/statement.pdf"):
        answer = client.get(path)
        assert answer.status_code == 200 and answer[HEADER]
