"""Money: integer minor units in storage, `Decimal` in computation, never float.

A currency's minor unit comes from ISO 4217 itself, from the table below (USD 2, JPY 0, KWD 3,
IQD 3): Babel's CLDR data says what a currency is *shown* with, which is not always what the
standard defines (CLDR gives IQD 0), so Babel only formats. Amounts are
parsed strictly: a value with more decimals than the currency has is refused, not rounded,
because silently rounding money a client sent is how cents go missing. Rounding happens only
where a rule says so (tax), once, half-up.
"""

from __future__ import annotations

import copy
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel import Locale
from babel.numbers import parse_pattern

from kassa.core.errors import InvalidAmount

# Bound every amount: no business takes a single payment of a trillion units, and the bound
# keeps every sum of many amounts far inside a signed 64-bit integer.
MAX_MINOR = 10**15

# What a client may send: plain decimal notation in ASCII digits ("150.00", "1500", "-3").
# `Decimal()` alone would also take "1e2", Arabic-Indic or full-width digits, ".5", "5." and " NaN".
AMOUNT_GRAMMAR = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)


# ISO 4217 List One, the minor unit of every active currency that has other than two, as the
# maintenance agency (SIX) published it in 2024 (transcribed 2026-12-01). Every other active
# currency has two. The funds codes and metals with no minor unit ("N.A.") are not money a
# business takes and are refused as currencies (kassa.tenancy.services.NOT_MONEY).
MINOR_UNITS_OTHER_THAN_TWO = {
    # none
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four
    "CLF": 4, "UYW": 4,
}


def exponent(currency: str) -> int:
    return MINOR_UNITS_OTHER_THAN_TWO.get(currency.upper(), 2)


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
    """Money for people, in the organization's locale: "$1,000.00", "¥1,500", "IQD1.250".
    With ISO's digits, not CLDR's: Babel would round a dinar's fils away."""
    pattern = copy.copy(parse_pattern(Locale.parse(locale).currency_formats["standard"]))
    places = exponent(currency)
    pattern.frac_prec = (places, places)
    return pattern.apply(from_minor(minor, currency), locale, currency=currency,
                         currency_digits=False)
