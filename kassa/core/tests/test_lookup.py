"""Ids as the API spells them: ASCII digits within a BIGINT; anything else names nothing."""

from __future__ import annotations

import pytest

from kassa.core.lookup import MAX_ID, parse_id


@pytest.mark.parametrize(("text", "pk"), [("1", 1), ("42", 42), (7, 7), (str(MAX_ID), MAX_ID)])
def test_an_id_is_ascii_digits(text, pk):
    assert parse_id(text) == pk


@pytest.mark.parametrize("text", [
    "", "0", "-1", "+1", " 1", "1 ", "1_0", "1.0", "1e3", "abc", "²",
    "\u0661\u0662", "\uff11", str(MAX_ID + 1),
    "9" * 64, "1\x00",
])
def test_anything_else_names_no_object(text):
    assert parse_id(text) is None
