"""Input text types for the API schemas: bounded length, no control characters.

PostgreSQL cannot store a NUL byte in text (a 500 if it reaches the database), and no field of
ours has a use for other control characters either, so they are refused at the edge with a 422
that names the field. Tab and newline stay allowed in notes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_NO_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


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


Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]
ShortText = Annotated[str, StringConstraints(max_length=500), AfterValidator(clean_line)]
Note = Annotated[str, StringConstraints(max_length=2000), AfterValidator(clean_text)]
Code = Annotated[str, StringConstraints(max_length=64), AfterValidator(clean_line)]
# Money as a decimal string; parsed against the organization's currency in the service.
MoneyText = Annotated[str, StringConstraints(max_length=40), AfterValidator(clean_line)]


def clean_email(value: str) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    value = clean_line(value).lower()
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("is not a valid e-mail address") from None
    return value


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(clean_email)]
