"""What a trader may type when editing a waiting signal, and the errors for everything else."""

from __future__ import annotations

from decimal import Decimal

import pytest

from telegram_bot.approval import EditInvalid, parse_leverage, parse_price, parse_qty, parse_tp_levels


@pytest.mark.parametrize(("text", "value"), [("0.01", "0.01"), (" 2 ", "2"), ("0,5", "0.5"), ("1e-3", "0.001")])
def test_a_quantity_is_a_positive_decimal(text, value):
    assert parse_qty(text) == Decimal(value)


@pytest.mark.parametrize("text", ["abc", "", "0", "-1", "NaN", "Infinity", "1,000.5"])
def test_anything_else_is_not_a_quantity(text):
    with pytest.raises(EditInvalid):
        parse_qty(text)


def test_the_error_quotes_what_was_typed():
    with pytest.raises(EditInvalid, match="“abc” is not a number; type the price like 0.01."):
        parse_price("abc")


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("10x", 10), (" 3X ", 3), ("125", 125)])
def test_leverage_is_a_whole_number_with_an_optional_x(text, value):
    assert parse_leverage(text) == value


@pytest.mark.parametrize(
    ("text", "message"), [("2.5", "not a whole number"), ("0", "from 1 to 125"), ("126", "from 1 to 125")]
)
def test_leverage_outside_the_exchange_range_or_fractional_is_refused(text, message):
    with pytest.raises(EditInvalid, match=message):
        parse_leverage(text)


def test_take_profits_without_shares_split_the_position_evenly():
    assert parse_tp_levels("66000 67000, 68000") == [
        {"price": "66000", "size_pct": "33.33"},
        {"price": "67000", "size_pct": "33.33"},
        {"price": "68000", "size_pct": "33.34"},
    ]


def test_take_profits_with_shares_keep_them():
    assert parse_tp_levels("66000:70 67000:30%") == [
        {"price": "66000", "size_pct": "70"},
        {"price": "67000", "size_pct": "30"},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("1 2 3 4 5 6 7", "At most 6"),
        ("66000:50 67000", "for every level, or for none"),
        ("66000:50 67000:40", "add up to 90%"),
        ("66000 abc", "“abc” is not a number"),
    ],
)
def test_take_profits_that_cannot_be_used_are_refused_with_the_reason(text, message):
    with pytest.raises(EditInvalid, match=message):
        parse_tp_levels(text)
