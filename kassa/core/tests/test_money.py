"""Money: strict parsing of what clients send, exact conversion, one rounding rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kassa.core.errors import InvalidAmount
from kassa.core.money import (
    MAX_MINOR,
    display,
    exponent,
    format_decimal_string,
    from_minor,
    parse_amount,
    round_half_up_minor,
    to_minor,
)


@pytest.mark.parametrize(("currency", "places"), [
    ("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3),
    # ISO 4217, not CLDR: Babel says IQD has none; the standard gives it three.
    ("IQD", 3), ("CLP", 0), ("TND", 3), ("CLF", 4), ("HUF", 2), ("ISK", 0)])
def test_minor_unit_follows_iso_4217(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("150.00", "USD", 15000), ("150", "USD", 15000), ("0.01", "USD", 1), ("150.5", "USD", 15050),
    ("1500", "JPY", 1500), ("1.234", "KWD", 1234), ("0.001", "KWD", 1), ("+7", "USD", 700),
    (" 12.30 ", "USD", 1230), (42, "USD", 4200),
])
def test_amount_within_the_currencys_precision_is_parsed_exactly(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    ("0.001", "USD"), ("10.005", "USD"), ("100.000", "USD"),  # finer than a cent
    ("1.5", "JPY"), ("1500.0", "JPY"),                          # JPY has no minor unit
    ("1.2345", "KWD"), ("0.0001", "KWD"),                      # KWD has three decimals
])
def test_amount_with_more_decimals_than_the_currency_is_refused_not_rounded(text, currency):
    with pytest.raises(InvalidAmount, match="decimal places") as exc:
        parse_amount(text, currency)
    assert exc.value.code == "invalid_amount" and exc.value.field == "amount"


@pytest.mark.parametrize("text", [
    "abc", "", " ", "1,00", "1.2.3", "NaN", "nan", "Infinity", "-inf", "sNaN", "0x10", "1e2",
    "1E-2", ".5", "5.", "\u0661\u0660\u0660", "\uff11\uff10\uff10", "1 000", "--1", "1-", "1_000",
])
def test_amount_that_is_not_a_plain_decimal_string_is_refused(text):
    with pytest.raises(InvalidAmount, match="not a number"):
        parse_amount(text, "USD")


@pytest.mark.parametrize("value", [1.5, None, True, [], {"amount": "1"}, Decimal("1")])
def test_amount_of_the_wrong_type_is_refused(value):
    with pytest.raises(InvalidAmount, match="decimal string"):
        parse_amount(value, "USD")


@pytest.mark.parametrize("text", ["0", "0.00", "-0", "-0.01", "-5", -3])
def test_amount_must_be_greater_than_zero(text):
    with pytest.raises(InvalidAmount, match="greater than zero"):
        parse_amount(text, "USD")


def test_zero_is_allowed_only_when_asked():
    assert parse_amount("0.00", "USD", allow_zero=True) == 0
    with pytest.raises(InvalidAmount):
        parse_amount("-0.01", "USD", allow_zero=True)


@pytest.mark.parametrize("text", ["10000000000000.01", "99999999999999999999",
                                  "9" * 40, "1" + "0" * 300])
def test_huge_amount_is_refused(text):
    with pytest.raises(InvalidAmount, match="too large"):
        parse_amount(text, "USD")


def test_the_largest_amount_allowed_is_max_minor():
    assert parse_amount(str(from_minor(MAX_MINOR, "USD")), "USD") == MAX_MINOR
    assert parse_amount(str(MAX_MINOR), "JPY") == MAX_MINOR


def test_refusal_names_the_field_it_concerns():
    with pytest.raises(InvalidAmount) as exc:
        parse_amount("x", "USD", field="lines[2].unit_price")
    assert exc.value.errors == [{"field": "lines[2].unit_price", "message": "is not a number"}]


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (15000, "USD", "150.00"), (1, "USD", "0.01"), (0, "USD", "0.00"), (-250, "USD", "-2.50"),
    (1500, "JPY", "1500"), (1234, "KWD", "1.234"), (5, "KWD", "0.005"),
])
def test_minor_units_travel_as_decimal_strings_at_the_currencys_precision(minor, currency, text):
    assert format_decimal_string(minor, currency) == text
    assert to_minor(from_minor(minor, currency), currency) == minor
    if minor >= 0:
        assert parse_amount(text, currency, allow_zero=True) == minor


def test_to_minor_refuses_a_value_finer_than_the_unit():
    assert to_minor(Decimal("1.23"), "USD") == 123
    with pytest.raises(ValueError):
        to_minor(Decimal("1.234"), "USD")


@pytest.mark.parametrize(("value", "minor"), [
    ("887.5", 888), ("887.4999", 887), ("887.5001", 888), ("0.5", 1), ("2.5", 3), ("3.5", 4),
    ("-2.5", -3), ("-0.4", 0), ("12", 12),
])
def test_rounding_is_half_up_away_from_zero_not_bankers(value, minor):
    assert round_half_up_minor(Decimal(value)) == minor


def test_display_is_for_people_in_the_locale():
    assert display(100000, "USD") == "$1,000.00"
    assert display(1500, "JPY") == "¥1,500"
    assert display(1234, "KWD", "en_US") == "KWD1.234"


def test_an_iraqi_dinar_amount_has_three_decimals_and_is_shown_as_babel_formats_it():
    from kassa.core.money import display

    assert parse_amount("1.250", "IQD") == 1250
    with pytest.raises(InvalidAmount):
        parse_amount("1.2505", "IQD")
    assert format_decimal_string(1250, "IQD") == "1.250"
    assert display(1250, "IQD") == "IQD1.250"  # ISO digits, where CLDR would round them away
    assert (display(100000, "USD"), display(1500, "JPY"), display(1234, "KWD")) == (
        "$1,000.00", "¥1,500", "KWD1.234")
