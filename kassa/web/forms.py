"""Forms of the front desk. They parse and label input; the rules stay in the services, whose
DomainError `show_error` puts next to the field it names."""

from __future__ import annotations

import re
from typing import Any

from babel.numbers import get_currency_symbol, get_decimal_symbol, get_group_symbol
from django import forms
from django.contrib.auth.forms import AuthenticationForm

from kassa.core.errors import DomainError, InvalidAmount


class EmailLoginForm(AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That e-mail and password do not match an account. Check both and "
                         "try again (the password is case-sensitive).",
    }


def show_error(form: forms.Form, error: DomainError, *, fields: dict[str, str] | None = None,
               organization: Any = None) -> None:
    """Attach a service's error to the form: beside its field when the form has one (names may
    be mapped, e.g. the API's `refund_to.method` to the form's `method`), else on top."""
    name = error.field or ""
    name = (fields or {}).get(name, name)
    message = getattr(error, "message", None) or error.detail
    if isinstance(error, InvalidAmount) and organization is not None:
        message = amount_error_message(error, organization)
    if name in form.fields:
        form.add_error(name, message)
    else:
        form.add_error(None, message)


def typed_amount(text: object, organization: Any) -> str:
    """Money as a person types it into a page, as the services' plain decimal string: the
    locale's grouping taken out ("1,000.00" → "1000.00", DESIGN.md v2), a leading currency
    symbol dropped, the locale's decimal mark made a point. Anything else is passed on as it
    came, for the service to say what is wrong with it (the API stays strict)."""
    value = str(text or "").strip()
    locale = getattr(organization, "locale", "en_US")
    currency = getattr(organization, "currency", "USD")
    symbol = get_currency_symbol(currency, locale=locale)
    for prefix in (symbol, currency):
        if prefix and value.startswith(prefix):
            value = value[len(prefix):].strip()
    group = re.escape(get_group_symbol(locale))
    decimal = re.escape(get_decimal_symbol(locale))
    grouped = re.fullmatch(rf"([0-9]{{1,3}}(?:{group}[0-9]{{3}})+)(?:{decimal}([0-9]+))?", value)
    plain = re.fullmatch(rf"([0-9]+)(?:{decimal}([0-9]+))?", value)
    found = grouped or plain
    if found is None:
        return value
    whole = re.sub(group, "", found.group(1))
    return f"{whole}.{found.group(2)}" if found.group(2) is not None else whole


def amount_error_message(error: DomainError, organization: Any) -> str:
    """An amount the money parser refused, as a sentence for a person ("Enter at most 2
    decimal places for USD.") rather than the API's field message."""
    message = getattr(error, "message", None) or error.detail
    found = re.search(r"more than (\d+) decimal places", message)
    if found:
        places = int(found.group(1))
        if places == 0:
            return f"Enter a whole amount: {organization.currency} has no decimal places."
        return f"Enter at most {places} decimal places for {organization.currency}."
    if "greater than zero" in message:
        return "Enter an amount greater than zero."
    if "too large" in message:
        return "This amount is too large."
    return "Enter an amount such as 150.00."
