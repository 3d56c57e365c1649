"""Verification codes: derived, not stored.

A code names what the document is — organization, kind, object, the moment it is as of — and
ends in a tag: an HMAC (keyed by Django's SECRET_KEY) over those and the document's figures.
So the same document as of the same moment always has the same code, issuing one writes
nothing, and `/verify/<code>` recomputes the figures as of that moment from the ledger and
checks the tag: a code someone made up, or altered, or whose figures the books no longer give
for that moment, is not found. Shape: `R-3-41-lq2v9x3k0a-7QK2M4XH9C` (kind, organization, object,
the moment in base-36 microseconds since the epoch, ten base-32 characters of tag).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass

from django.utils.crypto import constant_time_compare, salted_hmac

KINDS = {"R": "refund receipt", "C": "customer statement", "K": "case statement"}
_SHAPE = re.compile(r"^([RCK])-([1-9][0-9]{0,18})-([1-9][0-9]{0,18})-([0-9a-z]{1,13})-"
                    r"([A-Z2-7]{10})$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Coded:
    kind: str  # R, C or K
    organization_id: int
    object_id: int
    as_of: dt.datetime


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _micros(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _tag(prefix: str, figures: tuple[object, ...]) -> str:
    text = prefix + "|" + "|".join(str(f) for f in figures)
    digest = salted_hmac("kassa.documents", text, algorithm="sha256").digest()
    return base64.b32encode(digest).decode()[:10]


def code_for(coded: Coded, figures: tuple[object, ...]) -> str:
    prefix = (f"{coded.kind}-{coded.organization_id}-{coded.object_id}-"
              f"{_base36(_micros(coded.as_of))}")
    return f"{prefix}-{_tag(prefix, figures)}"


def parse(code: str) -> Coded | None:
    """What the code says it is (None: not a code's shape); its tag is checked by `matches`."""
    found = _SHAPE.match(code or "")
    if not found:
        return None
    kind, org, obj, when, _ = found.groups()
    micros = int(when, 36)
    if micros > 10**17:  # past the year 5000: not a moment of ours
        return None
    return Coded(kind, int(org), int(obj), _EPOCH + dt.timedelta(microseconds=micros))


def matches(code: str, coded: Coded, figures: tuple[object, ...]) -> bool:
    return constant_time_compare(code, code_for(coded, figures))
