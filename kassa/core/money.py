"""Money: integer minor units in storage, `Decimal` in computation, never float.

A currency's minor unit comes from ISO 4217 through Babel (USD 2, JPY 0, KWD 3). Amounts are
parsed strictly: a value with more decimals than the currency has is refused, not rounded,
because silently rounding money a client sent is how cents go missing. Rounding happens only
where a rule says so (tax), once, half-up.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision

from kassa.core.errors import InvalidAmount

# Bound every amount: no business takes a single payment of a trillion units, and the bound
# keeps every sum of many amounts far inside a signed 64-bit integer.
MAX_MINOR = 10**15

# What a client may send: plain decimal notation in ASCII digits ("150.00", "1500", "-3").
# `Decimal()` alone would also take "1e2", Arabic-Indic or full-width digits, ".5", "5." and " NaN".
AMOUNT_GRAMMAR = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)


def exponent(currency: str) -> int:
    return int(get_currency_precision(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """An exact Decimal amount as integer minor units; refuses a value finer than the unit."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_decimal_string(minor: int, currency: str) -> str:
    """The API's money: a decimal string at the currency's precision ("150.00", "1500")."""
    return str(from_minor(minor, currency))


def round_half_up_minor(value: Decimal) -> int:
    """Round a Decimal count of minor units to a whole one, half away from zero."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def parse_amount(
    value: object, currency: str, *, field: str = "amount", allow_zero: bool = False
) -> int:
    """Parse a client's decimal string into minor units, or raise InvalidAmount naming the field."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidAmount(field, "must be a decimal string such as \"150.00\"")
    text = str(value).strip()
    if not AMOUNT_GRAMMAR.fullmatch(text):
        raise InvalidAmount(field, "is not a number")
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the grammar admits only valid decimals
        raise InvalidAmount(field, "is not a number") from None
    places = exponent(currency)
    if amount.adjusted() > 18:  # before any arithmetic: "1e999999" must not overflow a context
        raise InvalidAmount(field, "is too large")
    if -amount.as_tuple().exponent > places:  # type: ignore[operator]
        raise InvalidAmount(
            field, f"has more than {places} decimal places, which {currency} allows")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmount(field, "must be greater than zero")
    if amount.scaleb(places) > MAX_MINOR:
        raise InvalidAmount(field, "is too large")
    return int(amount.scaleb(places))


def display(minor: int, currency: str, locale: str = "en_US") -> str:
    """Money for people, in the organization's locale: "$1,000.00", "¥1,500"."""
    return format_currency(from_minor(minor, currency), currency, locale=locale)
