"""The logs an operator reads: JSON lines, each with its request's id, which the answer carries
in `X-Request-ID`; a 500 logged with its traceback; money events at info with their ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.test import Client


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the configured console handler writes, read back (the real formatter and filter)."""
    [handler] = [h for h in logging.getLogger("kassa").handlers if h.name == "console"]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_every_answer_carries_a_request_id_and_keeps_a_sensible_given_one(tenant):
    mine = tenant.api.client.get("/api/v1/centers", headers={
        "Authorization": f"Bearer {tenant.token}", "X-Request-ID": "lb-1234.abc"})
    assert mine["X-Request-ID"] == "lb-1234.abc"
    made = tenant.api.client.get("/api/v1/centers", headers={
        "Authorization": f"Bearer {tenant.token}", "X-Request-ID": "no spaces\nor newlines"})
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"] != "no spaces\nor newlines"


def test_a_money_event_is_a_json_line_with_the_request_id(tenant, log_lines):
    invoice = tenant.invoice()
    r = tenant.api.client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json.dumps({"amount": "10.00", "method": "cash", "online": False}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.token}", "X-Request-ID": "req-77"})
    assert r.status_code == 201
    [line] = [rec for rec in records(log_lines) if rec["logger"] == "kassa.billing"]
    assert line["request_id"] == "req-77" and line["level"] == "INFO"
    assert line["message"] == f"payment {r.json()['id']}: 1000 by cash on invoice {invoice['id']}"
    assert "time" in line


def test_a_500_is_logged_with_its_traceback_and_request_id(tenant, monkeypatch, log_lines):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr("kassa.tenancy.api.selectors.centers", broken)
    client = Client(raise_request_exception=False)
    r = client.get("/api/v1/centers", headers={"Authorization": f"Bearer {tenant.token}",
                                               "X-Request-ID": "req-500"})
    assert r.status_code == 500
    [line] = [rec for rec in records(log_lines) if rec["logger"] == "django.request"]
    assert line["request_id"] == "req-500" and line["level"] == "ERROR"
    assert "RuntimeError: the disk is on fire" in line["exc_info"]
