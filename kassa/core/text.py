"""Input text types for the API schemas: bounded length, no control characters.

PostgreSQL cannot store a NUL byte in text (a 500 if it reaches the database), and no field of
ours has a use for other control characters either (C0, DEL, and the C1 block U+0080–U+009F,
which only ever arrives from a mangled encoding), so they are refused at the edge with a 422
that names the field. Tab and newline stay allowed in notes.

Each type also *documents* its rule in the OpenAPI document as a `pattern`, written to accept
exactly what the validator accepts, so that a client (or schemathesis) reading the document
knows what will be refused. The validators, not the patterns, give the messages.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints
from pydantic_core import PydanticCustomError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_NO_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# A line: no control character, and something besides white space (it is stripped).
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
# Money: plain digits with an optional fraction; no sign, exponent, separators or spaces.
# How many decimals the currency allows is checked by the service (422 invalid_amount).
MONEY_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
_MONEY = re.compile(r"[0-9]+(\.[0-9]+)?")
# An object's id: ASCII digits (str.isdigit() also takes "³", which int() refuses).
ID_PATTERN = r"^[0-9]{1,19}$"
MAX_ID = 2**63 - 1
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def clean_line(value: str) -> str:
    if _CONTROL_NO_NEWLINE.search(value):
        raise ValueError("must not contain control characters")
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def clean_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value.strip()


def iso_day(value: object) -> object:
    """Only "2026-11-03": pydantic alone also reads "0" or 1730592000 as a Unix timestamp."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not (isinstance(value, str) and _DAY.fullmatch(value)):
        raise ValueError("must be a date such as 2026-11-03")
    return value


def iso_moment(value: object) -> object:
    """An ISO 8601 date-time ("2026-12-01T17:00:00Z", "2026-12-01T17:00+01:00") or a date
    ("2026-12-01", its midnight); without an offset it is UTC. Nothing else (no timestamps)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    message = "must be a date-time such as 2026-12-01T17:00:00Z"
    if not (isinstance(value, str) and value[:4].isdigit() and len(value) <= 40):
        raise ValueError(message)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(message) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def clean_id(value: str) -> str:
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
        raise ValueError("is not an id")
    return value


def clean_money(value: str) -> str:
    """A decimal string such as "150.00". Its errors carry the type `invalid_amount`, which the
    API's handler answers with that code, as it does the service's own amount checks."""
    if _MONEY.fullmatch(value):
        return value
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        raise PydanticCustomError("invalid_amount", "is not a number") from None
    if amount.is_finite() and amount <= 0:
        raise PydanticCustomError("invalid_amount", "must be greater than zero")
    if not amount.is_finite():
        raise PydanticCustomError("invalid_amount", "is not a number")
    raise PydanticCustomError("invalid_amount", 'must be a decimal string such as "150.00"')


Name = Annotated[str, StringConstraints(max_length=200),
                 Field(json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(clean_line)]
# A line that may be empty (a contact name that can be cleared): still no control character.
OptionalName = Annotated[str, StringConstraints(max_length=200),
                         Field(json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}),
                         AfterValidator(lambda v: clean_line(v) if v.strip() else "")]
ShortText = Annotated[str, StringConstraints(max_length=500),
                      Field(json_schema_extra={"pattern": LINE_PATTERN}),
                      AfterValidator(clean_line)]
Note = Annotated[str, StringConstraints(max_length=2000),
                 Field(json_schema_extra={"pattern": TEXT_PATTERN}), AfterValidator(clean_text)]
Code = Annotated[str, StringConstraints(max_length=64),
                 Field(json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(clean_line)]
# An id in a query filter (an id in a path is looked up as it comes: malformed is 404).
ObjectId = Annotated[str, StringConstraints(max_length=19),
                     Field(json_schema_extra={"pattern": ID_PATTERN}), AfterValidator(clean_id)]
# true or false, nothing else: pydantic alone also takes 0, 1.0, "yes" and "off".
Flag = Annotated[bool, Strict()]


def whole_number(value: object) -> object:
    """A JSON integer and nothing else: pydantic alone also reads true as 1, 1.0 as 1 and "2"
    as 2 — a client that sends those has a bug we would hide by guessing."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number such as 2 (not true, 1.0 or \"2\")")
    return value


# A count in a body (a quantity): a JSON integer; bounds are the field's (ge, le).
Count = Annotated[int, BeforeValidator(whole_number)]
# A calendar day, ISO 8601 (documented as `format: date`).
Day = Annotated[dt.date, BeforeValidator(iso_day)]
# A moment, ISO 8601 (documented as `format: date-time`), always with its time zone.
Moment = Annotated[dt.datetime, BeforeValidator(iso_moment)]
# Money as a decimal string; parsed against the organization's currency in the service.
MoneyText = Annotated[str, StringConstraints(max_length=40),
                      Field(json_schema_extra={"pattern": MONEY_PATTERN}),
                      AfterValidator(clean_money)]


def clean_email(value: str) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    value = clean_line(value).lower()
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("is not a valid e-mail address") from None
    return value


Email = Annotated[str, StringConstraints(max_length=254),
                  Field(json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(clean_email)]
