"""TradingView alert payloads: parsing the body, normalising v1 and TVTelegramBingX (legacy) alerts.

signals_app.payload is pure (no ORM, no I/O), so every test here feeds plain bytes or dicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals_app.payload import NormalisedAlert, is_legacy, normalise_alert, parse_body

BUY = {"action": "buy", "symbol": "BTC-USDT"}
LEGACY_BUY = {"action": "LONG_BUY", "symbol": "BTC-USDT"}


def one(data: dict) -> NormalisedAlert:
    """The single alert a one-action payload gives."""
    alerts = normalise_alert(data)
    assert len(alerts) == 1
    return alerts[0]


def problems_for(data: dict) -> list[str]:
    return one(data).problems


def problem_fields(problems: list[str]) -> list[str]:
    return [problem.split(": ", 1)[0] for problem in problems]


# --- parse_body --------------------------------------------------------------------------------------


def test_body_with_a_json_object_gives_its_data_and_no_problems():
    parsed = parse_body(b'{"action": "buy", "symbol": "BTC-USDT"}')
    assert parsed.data == {"action": "buy", "symbol": "BTC-USDT"}
    assert parsed.problems == []


def test_body_with_a_utf8_bom_is_accepted():
    parsed = parse_body(b'\xef\xbb\xbf{"action": "buy"}')
    assert parsed.data == {"action": "buy"}
    assert parsed.problems == []


def test_body_numbers_keep_their_exact_decimal_digits():
    parsed = parse_body(b'{"price": 0.10, "size": 65000.123456789012345678901234567890, "lev": 10}')
    assert parsed.data == {
        "price": Decimal("0.10"),
        "size": Decimal("65000.123456789012345678901234567890"),
        "lev": Decimal("10"),
    }
    assert all(isinstance(value, Decimal) for value in parsed.data.values())
    assert str(parsed.data["price"]) == "0.10"


@pytest.mark.parametrize("raw", [b"", b"   \n\t", b"\xef\xbb\xbf"], ids=["empty", "whitespace", "bom-only"])
def test_empty_body_is_a_body_problem(raw):
    parsed = parse_body(raw)
    assert parsed.data is None
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith("body: ")


def test_non_utf8_body_is_a_body_problem():
    parsed = parse_body(b'{"symbol": "\xff\xfe"}')
    assert parsed.data is None
    assert parsed.problems == ["body: not UTF-8 text"]


@pytest.mark.parametrize("raw", [b'{"action": ', b"LONG_BUY BTCUSDT", b"{'action': 'buy'}"])
def test_invalid_json_body_is_a_body_problem(raw):
    parsed = parse_body(raw)
    assert parsed.data is None
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith("body: not valid JSON")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"buy"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_a_body_problem(raw):
    parsed = parse_body(raw)
    assert parsed.data is None
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith("body: must be a JSON object")


@given(st.binary(max_size=300))
def test_parse_body_never_raises_on_arbitrary_bytes(raw):
    parsed = parse_body(raw)
    if parsed.data is None:
        assert parsed.problems and all(problem.startswith("body: ") for problem in parsed.problems)
    else:
        assert isinstance(parsed.data, dict) and parsed.problems == []


def test_deeply_nested_body_is_a_body_problem_not_a_crash():
    parsed = parse_body(b"[" * 100_000)
    assert parsed.data is None
    assert parsed.problems[0].startswith("body: ")


# --- v1: required fields, actions ---------------------------------------------------------------------


def test_minimal_v1_alert_normalises_without_problems():
    alert = one({"action": "buy", "symbol": "BTC-USDT"})
    assert alert.action == "buy"
    assert alert.symbol == "BTC-USDT"
    assert alert.order_type == "market"
    assert alert.problems == []


@pytest.mark.parametrize("action", ["buy", "sell", "close", "close_long", "close_short", "reverse", "cancel", "update"])
def test_every_v1_action_is_accepted(action):
    assert one({**BUY, "action": action}).action == action


@pytest.mark.parametrize("action", ["BUY", "Sell", " Close_Long "])
def test_v1_actions_are_case_insensitive(action):
    assert one({**BUY, "action": action}).action == action.strip().lower()


def test_unknown_action_is_a_problem_naming_action():
    problems = problems_for({**BUY, "action": "hodl"})
    assert len(problems) == 1
    assert problems[0].startswith("action: ")
    assert "hodl" in problems[0]


def test_missing_action_is_a_problem_naming_action():
    problems = problems_for({"symbol": "BTC-USDT"})
    assert problem_fields(problems) == ["action"]


def test_missing_symbol_is_reported_as_missing_or_empty():
    assert problems_for({"action": "buy"}) == ["symbol: missing or empty"]


@pytest.mark.parametrize("symbol", ["", "   "])
def test_empty_symbol_is_reported_as_missing_or_empty(symbol):
    assert problems_for({**BUY, "symbol": symbol}) == ["symbol: missing or empty"]


def test_unknown_fields_are_ignored_without_a_problem():
    alert = one({**BUY, "secret": "s3cret", "exchange": "BINANCE", "extra": {"anything": [1, 2]}})
    assert alert.problems == []


def test_descriptive_text_fields_are_kept():
    alert = one(
        {
            **BUY,
            "account": "main",
            "alert_id": "bar-123",
            "strategy": "ema-cross",
            "timeframe": "15",
            "comment": "breakout",
        }
    )
    assert (alert.account, alert.alert_id, alert.strategy, alert.timeframe, alert.comment) == (
        "main",
        "bar-123",
        "ema-cross",
        "15",
        "breakout",
    )


# --- v1: placeholders, NaN, collecting problems ---------------------------------------------------------


def test_unexpanded_placeholder_in_symbol_is_a_problem_naming_field_and_placeholder():
    problems = problems_for({**BUY, "symbol": "{{ticker}}"})
    assert len(problems) == 1
    assert problems[0].startswith("symbol: ")
    assert "{{ticker}}" in problems[0]


def test_unexpanded_placeholder_in_a_number_is_a_problem_naming_field_and_placeholder():
    problems = problems_for({**BUY, "price": "{{close}}"})
    assert len(problems) == 1
    assert problems[0].startswith("price: ")
    assert "{{close}}" in problems[0]


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf"])
def test_nan_or_infinite_number_is_a_problem_naming_the_field(value):
    problems = problems_for({**BUY, "price": value})
    assert problem_fields(problems) == ["price"]


def test_json_nan_in_the_body_is_a_problem_naming_the_field():
    parsed = parse_body(b'{"action": "buy", "symbol": "BTC-USDT", "price": NaN}')
    assert problem_fields(problems_for(parsed.data)) == ["price"]


def test_non_numeric_price_is_a_problem_naming_price():
    assert problem_fields(problems_for({**BUY, "price": "65k"})) == ["price"]


def test_every_bad_field_is_reported_separately():
    problems = problems_for(
        {
            "action": "hodl",
            "symbol": "",
            "price": "abc",
            "leverage": 0,
            "margin_mode": "portfolio",
            "size": {"mode": "lots", "value": 1},
        }
    )
    assert sorted(problem_fields(problems)) == sorted(
        ["action", "symbol", "price", "leverage", "margin_mode", "size.mode"]
    )


def test_every_problem_starts_with_a_field_name_and_colon():
    problems = problems_for(
        {
            "symbol": "{{ticker}}",
            "action": "{{strategy.order.action}}",
            "sent_at": "yesterday",
            "max_lag_s": -5,
            "price": "NaN",
            "sl": {"price": 1, "pct": 2},
            "tp": [{"price": 1, "size_pct": 80}, {"price": 2, "size_pct": 80}],
            "confidence": 150,
        }
    )
    assert len(problems) >= 8
    for problem in problems:
        name, separator, message = problem.partition(": ")
        assert separator and name and " " not in name and message, problem


# --- v1: sent_at, max_lag_s -----------------------------------------------------------------------------

EXPECTED_TIME = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_sent_at_accepts_iso8601_with_z():
    assert one({**BUY, "sent_at": "2026-11-25T09:00:00Z"}).sent_at == EXPECTED_TIME


def test_sent_at_accepts_iso8601_with_an_offset():
    assert one({**BUY, "sent_at": "2026-11-25T10:00:00+01:00"}).sent_at == EXPECTED_TIME


@pytest.mark.parametrize("value", [1795597200000, "1795597200000", Decimal("1795597200000")])
def test_sent_at_accepts_epoch_milliseconds(value):
    assert one({**BUY, "sent_at": value}).sent_at == EXPECTED_TIME


@pytest.mark.parametrize("value", [1795597200, "1795597200"])
def test_sent_at_accepts_epoch_seconds(value):
    assert one({**BUY, "sent_at": value}).sent_at == EXPECTED_TIME


def test_sent_at_is_timezone_aware():
    assert one({**BUY, "sent_at": "2026-11-25T09:00:00Z"}).sent_at.tzinfo is not None


def test_unparseable_sent_at_is_a_problem_naming_sent_at():
    assert problem_fields(problems_for({**BUY, "sent_at": "last tuesday"})) == ["sent_at"]


def test_unexpanded_timenow_placeholder_is_a_problem_naming_sent_at():
    problems = problems_for({**BUY, "sent_at": "{{timenow}}"})
    assert problem_fields(problems) == ["sent_at"]
    assert "{{timenow}}" in problems[0]


def test_max_lag_s_is_a_whole_number_of_seconds():
    assert one({**BUY, "max_lag_s": "30"}).max_lag_s == 30


def test_fractional_max_lag_s_is_a_problem():
    assert problem_fields(problems_for({**BUY, "max_lag_s": 2.5})) == ["max_lag_s"]


# --- v1: order type, price, leverage, margin mode -------------------------------------------------------


def test_order_type_defaults_to_market():
    assert one(BUY).order_type == "market"


def test_limit_order_with_a_price_is_accepted():
    alert = one({**BUY, "order_type": "LIMIT", "price": "64000.5"})
    assert alert.order_type == "limit"
    assert alert.price == Decimal("64000.5")
    assert alert.problems == []


def test_limit_order_without_a_price_is_a_problem_naming_price():
    assert problem_fields(problems_for({**BUY, "order_type": "limit"})) == ["price"]


def test_unknown_order_type_is_a_problem_naming_order_type():
    assert problem_fields(problems_for({**BUY, "order_type": "stop"})) == ["order_type"]


@pytest.mark.parametrize("value", [1, "10", Decimal("20.0"), 125])
def test_leverage_is_a_whole_number_from_1_to_125(value):
    alert = one({**BUY, "leverage": value})
    assert alert.leverage == int(Decimal(str(value)))
    assert alert.problems == []


@pytest.mark.parametrize("value", [0, 126, "12.5", -3, "ten"])
def test_leverage_outside_1_to_125_or_not_whole_is_a_problem(value):
    alert = one({**BUY, "leverage": value})
    assert alert.leverage is None
    assert problem_fields(alert.problems) == ["leverage"]


@pytest.mark.parametrize("value", ["isolated", "CROSS"])
def test_margin_mode_is_isolated_or_cross_case_insensitive(value):
    assert one({**BUY, "margin_mode": value}).margin_mode == value.lower()


# --- v1: size ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["qty", "usdt", "margin_usdt", "pct_equity", "pct_available", "risk_pct", "pct_position"]
)
def test_size_object_gives_mode_and_value(mode):
    alert = one({**BUY, "size": {"mode": mode, "value": "25.5"}})
    assert (alert.size_mode, alert.size_value) == (mode, Decimal("25.5"))
    assert alert.problems == []


def test_size_mode_is_case_insensitive():
    assert one({**BUY, "size": {"mode": "USDT", "value": 100}}).size_mode == "usdt"


def test_unknown_size_mode_is_a_problem():
    assert problem_fields(problems_for({**BUY, "size": {"mode": "lots", "value": 1}})) == ["size.mode"]


def test_size_without_value_is_a_problem():
    assert problem_fields(problems_for({**BUY, "size": {"mode": "usdt"}})) == ["size.value"]


def test_quantity_alone_means_base_quantity():
    alert = one({**BUY, "quantity": "0.015"})
    assert (alert.size_mode, alert.size_value) == ("qty", Decimal("0.015"))


def test_no_size_leaves_the_size_to_the_profile():
    alert = one(BUY)
    assert (alert.size_mode, alert.size_value) == ("", None)


# --- v1: stop loss -------------------------------------------------------------------------------------


def test_v1_bare_number_sl_is_a_price():
    alert = one({**BUY, "sl": "63000"})
    assert alert.stop_loss.price == Decimal("63000")
    assert alert.stop_loss.pct is None


def test_v1_sl_object_with_price():
    alert = one({**BUY, "sl": {"price": 63000}})
    assert (alert.stop_loss.price, alert.stop_loss.pct) == (Decimal("63000"), None)


def test_v1_sl_object_with_pct():
    alert = one({**BUY, "sl": {"pct": "1.5"}})
    assert (alert.stop_loss.price, alert.stop_loss.pct) == (None, Decimal("1.5"))


def test_v1_sl_with_both_price_and_pct_is_a_problem():
    alert = one({**BUY, "sl": {"price": 63000, "pct": 1.5}})
    assert alert.stop_loss is None
    assert problem_fields(alert.problems) == ["sl"]


def test_v1_sl_object_with_neither_price_nor_pct_is_a_problem():
    assert problem_fields(problems_for({**BUY, "sl": {}})) == ["sl"]


# --- v1: take profits ----------------------------------------------------------------------------------


def test_v1_bare_number_tp_is_one_take_profit_at_that_price_for_the_whole_position():
    (leg,) = one({**BUY, "tp": "70000"}).take_profits
    assert (leg.price, leg.pct, leg.size_pct) == (Decimal("70000"), None, Decimal("100"))


def test_v1_tp_list_keeps_price_or_pct_and_size_pct_per_level():
    alert = one({**BUY, "tp": [{"price": 66000, "size_pct": 50}, {"pct": "4", "size_pct": "50"}]})
    assert [(leg.price, leg.pct, leg.size_pct) for leg in alert.take_profits] == [
        (Decimal("66000"), None, Decimal("50")),
        (None, Decimal("4"), Decimal("50")),
    ]
    assert alert.problems == []


def test_v1_tp_size_pct_defaults_to_an_equal_share():
    alert = one({**BUY, "tp": [{"price": 66000}, {"price": 67000}, {"price": 68000}]})
    shares = [leg.size_pct for leg in alert.take_profits]
    assert len(set(shares)) == 1
    assert Decimal("99.9") <= sum(shares) <= 100
    assert alert.problems == []


def test_v1_tp_accepts_six_levels():
    alert = one({**BUY, "tp": [{"pct": level} for level in range(1, 7)]})
    assert len(alert.take_profits) == 6
    assert alert.problems == []


def test_v1_more_than_six_take_profits_is_a_problem():
    assert problem_fields(problems_for({**BUY, "tp": [{"pct": level} for level in range(1, 8)]})) == ["tp"]


def test_v1_tp_size_pct_adding_up_to_more_than_100_is_a_problem():
    problems = problems_for({**BUY, "tp": [{"price": 66000, "size_pct": 60}, {"price": 67000, "size_pct": 50}]})
    assert problem_fields(problems) == ["tp"]


def test_v1_tp_level_with_both_price_and_pct_is_a_problem_naming_the_level():
    problems = problems_for({**BUY, "tp": [{"price": 66000, "pct": 2}]})
    assert problem_fields(problems) == ["tp[1]"]


def test_absurd_exponent_in_a_number_is_a_problem_not_a_crash():
    problems = problems_for({**BUY, "tp": [{"price": 66000, "size_pct": "1e9999999999"}]})
    assert problems and problem_fields(problems)[0].startswith("tp")


# --- v1: options, confidence ----------------------------------------------------------------------------


def test_breakeven_and_trailing_are_objects_of_numbers():
    alert = one({**BUY, "breakeven": {"trigger_pct": "1", "offset_pct": 0.1}, "trailing": {"callback_pct": 0.5}})
    assert {key: Decimal(value) for key, value in alert.breakeven.items()} == {
        "trigger_pct": Decimal("1"),
        "offset_pct": Decimal("0.1"),
    }
    assert {key: Decimal(value) for key, value in alert.trailing.items()} == {"callback_pct": Decimal("0.5")}
    assert alert.problems == []


def test_breakeven_that_is_not_an_object_is_a_problem():
    assert problem_fields(problems_for({**BUY, "breakeven": "yes"})) == ["breakeven"]


def test_trailing_with_a_non_number_is_a_problem_naming_the_key():
    problems = problems_for({**BUY, "trailing": {"callback_pct": "wide"}})
    assert problem_fields(problems) == ["trailing.callback_pct"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(80, "80.00"), ("55.5", "55.50"), (0.8, "80.00"), ("0.8", "80.00"), (1, "100"), (0, "0"), (100, "100")],
)
def test_confidence_is_0_to_100_and_0_to_1_is_a_fraction(value, expected):
    assert one({**BUY, "confidence": value}).confidence == Decimal(expected)


def test_confidence_keeps_two_decimal_places():
    assert str(one({**BUY, "confidence": "0.8"}).confidence) == "80.00"


@pytest.mark.parametrize("value", [-1, 100.5, "150"])
def test_confidence_outside_0_to_100_is_a_problem(value):
    alert = one({**BUY, "confidence": value})
    assert alert.confidence is None
    assert problem_fields(alert.problems) == ["confidence"]


# --- numbers as strings ---------------------------------------------------------------------------------

positive_decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000000"), places=8)


@given(positive_decimals)
def test_a_number_as_a_string_or_as_a_json_number_gives_the_same_decimal(number):
    literal = str(number)
    as_number = parse_body(b'{"action": "buy", "symbol": "BTC-USDT", "price": ' + literal.encode() + b"}")
    as_string = parse_body(json.dumps({**BUY, "price": literal}).encode())
    from_number, from_string = one(as_number.data), one(as_string.data)
    assert from_number.price == from_string.price == number
    assert str(from_number.price) == str(from_string.price)
    assert from_number.problems == from_string.problems == []


# --- legacy (TVTelegramBingX) detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"action": "LONG_BUY"},
        {"action": "short-sell"},
        {"actions": ["buy"]},
        {"action": "buy", "trade_settings": {"leverage": 5}},
        {"action": "buy", "settings": {"leverage": 5}},
        {"action": "buy", "webhook_settings": {"leverage": 5}},
        {"action": "buy", "tp1": 2},
        {"action": "buy", "tp3_sell": 20},
        {"action": "buy", "margin_usdt": 20},
    ],
    ids=[
        "legacy-word",
        "legacy-word-dash",
        "actions-key",
        "trade_settings",
        "settings",
        "webhook_settings",
        "tpN",
        "tpN_sell",
        "margin_usdt",
    ],
)
def test_payload_is_legacy_when_it_uses_a_legacy_marker(data):
    assert is_legacy(data)


@pytest.mark.parametrize(
    "data",
    [BUY, {**BUY, "sl": 63000, "tp": 70000, "size": {"mode": "usdt", "value": 50}, "leverage": 10}],
    ids=["minimal", "full-v1"],
)
def test_v1_payload_is_not_legacy(data):
    assert not is_legacy(data)


def test_legacy_action_word_with_a_slash_makes_the_payload_legacy():
    assert is_legacy({"action": "long/buy"})


def test_legacy_sl_is_a_percent_when_the_action_uses_a_slash():
    stop_loss = one({"action": "LONG/BUY", "symbol": "BTC-USDT", "sl": 1.5}).stop_loss
    assert (stop_loss.price, stop_loss.pct) == (None, Decimal("1.5"))


# --- legacy actions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("LONG_BUY", "buy"),
        ("LONG_SELL", "close_long"),
        ("SHORT_SELL", "sell"),
        ("SHORT_BUY", "close_short"),
        ("LONG_OPEN", "buy"),
        ("LONG_CLOSE", "close_long"),
        ("SHORT_OPEN", "sell"),
        ("SHORT_CLOSE", "close_short"),
    ],
)
def test_legacy_action_words_map_to_v1_actions(word, action):
    assert one({"action": word, "symbol": "BTC-USDT"}).action == action


@pytest.mark.parametrize("word", ["long-buy", "Long/Buy", "LONG-BUY", "long_buy"])
def test_legacy_action_words_accept_dash_or_slash_in_any_case(word):
    assert one({"action": word, "symbol": "BTC-USDT"}).action == "buy"


def test_actions_list_gives_one_alert_per_action_in_the_order_given():
    alerts = normalise_alert({"actions": ["SHORT_BUY", "LONG_BUY", "LONG_SELL"], "symbol": "BTC-USDT"})
    assert [alert.action for alert in alerts] == ["close_short", "buy", "close_long"]


@pytest.mark.parametrize("separator", [",", ";", "|", "\n", ", ", "\r\n"])
def test_actions_string_is_split_on_separators_in_the_order_given(separator):
    alerts = normalise_alert({"actions": separator.join(["LONG_SELL", "SHORT_OPEN"]), "symbol": "BTC-USDT"})
    assert [alert.action for alert in alerts] == ["close_long", "sell"]


def test_every_alert_from_an_actions_list_carries_the_shared_fields():
    alerts = normalise_alert(
        {"actions": "LONG_SELL,SHORT_SELL", "symbol": "ETH-USDT", "account": "main", "alert_id": "a-1", "lev": 7}
    )
    assert [(alert.symbol, alert.account, alert.alert_id, alert.leverage) for alert in alerts] == [
        ("ETH-USDT", "main", "a-1", 7)
    ] * 2


def test_unknown_word_in_an_actions_list_is_a_problem_naming_actions():
    alerts = normalise_alert({"actions": ["LONG_BUY", "MOON"], "symbol": "BTC-USDT"})
    assert [alert.action for alert in alerts] == ["buy"]
    assert problem_fields(alerts[0].problems) == ["actions"]


def test_empty_actions_list_is_a_problem_naming_actions():
    assert problem_fields(problems_for({"actions": [], "symbol": "BTC-USDT"})) == ["actions"]


def test_empty_actions_list_is_reported_even_when_other_fields_are_bad():
    assert sorted(problem_fields(problems_for({"actions": [], "symbol": ""}))) == ["actions", "symbol"]


# --- legacy per-symbol settings -------------------------------------------------------------------------


def test_legacy_sl_is_a_stop_distance_in_percent():
    alert = one({**LEGACY_BUY, "sl": "1.5"})
    assert (alert.stop_loss.price, alert.stop_loss.pct) == (None, Decimal("1.5"))
    assert alert.symbol_settings["stop_loss_pct"] == Decimal("1.5")


def test_legacy_tp1_is_an_r_multiple_of_the_sl_percent():
    alert = one({**LEGACY_BUY, "sl": 1.5, "tp1": 2})
    (leg,) = alert.take_profits
    assert (leg.price, leg.pct, leg.size_pct) == (None, Decimal("3.0"), Decimal("100"))
    assert alert.problems == []


@pytest.mark.parametrize("key", ["tp", "tp1_move"])
def test_legacy_tp_and_tp1_move_are_aliases_of_tp1(key):
    (leg,) = one({**LEGACY_BUY, "sl": 1.5, key: 2}).take_profits
    assert leg.pct == Decimal("3")


def test_legacy_tpn_move_is_an_alias_of_tpn():
    legs = one({**LEGACY_BUY, "sl": 1, "tp1": 1, "tp2_move": 2}).take_profits
    assert [leg.pct for leg in legs] == [Decimal("1"), Decimal("2")]


def test_legacy_take_profits_are_stored_on_the_symbol_as_strings():
    alert = one({**LEGACY_BUY, "sl": 1.5, "tp1": 2, "tp1_sell": 50, "tp2": 3})
    stored = alert.symbol_settings["take_profits"]
    assert [entry["level"] for entry in stored] == [1, 2]
    assert all(isinstance(entry["pct"], str) and isinstance(entry["size_pct"], str) for entry in stored)
    assert [(Decimal(entry["pct"]), Decimal(entry["size_pct"])) for entry in stored] == [
        (Decimal("3"), Decimal("50")),
        (Decimal("4.5"), Decimal("50")),
    ]


def test_legacy_tpn_sell_is_the_share_of_the_position_closed_at_that_level():
    legs = one({**LEGACY_BUY, "sl": 1, "tp1": 1, "tp1_sell": 30, "tp2": 2, "tp2_sell": 70}).take_profits
    assert [leg.size_pct for leg in legs] == [Decimal("30"), Decimal("70")]


def test_legacy_tp_sell_is_an_alias_of_tp1_sell():
    legs = one({**LEGACY_BUY, "sl": 1, "tp1": 1, "tp_sell": 40, "tp2": 2}).take_profits
    assert [leg.size_pct for leg in legs] == [Decimal("40"), Decimal("60")]


def test_legacy_levels_without_a_sell_share_the_remainder_equally():
    legs = one({**LEGACY_BUY, "sl": 1.5, "tp1": 2, "tp1_sell": 50, "tp2": 3, "tp3": 4}).take_profits
    assert [leg.size_pct for leg in legs] == [Decimal("50"), Decimal("25"), Decimal("25")]


def test_legacy_tpn_sell_over_100_is_a_problem_naming_it():
    problems = problems_for({**LEGACY_BUY, "sl": 1, "tp2": 2, "tp2_sell": 150})
    assert problem_fields(problems) == ["tp2_sell"]


def test_legacy_tpn_sells_adding_up_to_more_than_100_is_a_problem():
    alert = one({**LEGACY_BUY, "sl": 1, "tp1": 1, "tp1_sell": 60, "tp2": 2, "tp2_sell": 60})
    assert len(alert.problems) == 1
    assert alert.problems[0].startswith("tp")


def test_legacy_tpn_without_sl_is_a_problem_naming_it():
    alert = one({**LEGACY_BUY, "tp2": 2})
    assert alert.take_profits == ()
    assert problem_fields(alert.problems) == ["tp2"]


def test_legacy_margin_usdt_sets_the_size_and_the_profile_size():
    alert = one({**LEGACY_BUY, "margin_usdt": "25"})
    assert (alert.size_mode, alert.size_value) == ("margin_usdt", Decimal("25"))
    assert alert.symbol_settings["order_size_mode"] == "margin_usdt"
    assert alert.symbol_settings["order_size_value"] == Decimal("25")


def test_legacy_margin_is_an_alias_of_margin_usdt():
    alert = one({**LEGACY_BUY, "margin": 30})
    assert (alert.size_mode, alert.size_value) == ("margin_usdt", Decimal("30"))


def test_legacy_margin_does_not_replace_a_size_given_by_the_alert():
    alert = one({**LEGACY_BUY, "margin_usdt": 25, "size": {"mode": "usdt", "value": 100}})
    assert (alert.size_mode, alert.size_value) == ("usdt", Decimal("100"))
    assert alert.symbol_settings["order_size_value"] == Decimal("25")


@pytest.mark.parametrize("key", ["leverage", "lev"])
def test_legacy_leverage_applies_to_the_alert_and_the_profile(key):
    alert = one({**LEGACY_BUY, key: "12"})
    assert alert.leverage == 12
    assert alert.symbol_settings["leverage"] == 12


@pytest.mark.parametrize("value", [True, "true", "yes", 1, "1"])
def test_legacy_truthy_sl_to_entry_tp2_means_breakeven_after_tp2(value):
    assert one({**LEGACY_BUY, "sl_to_entry_tp2": value}).symbol_settings["breakeven_after_tp"] == 2


@pytest.mark.parametrize("value", [False, "false", 0, "no"])
def test_legacy_falsy_sl_to_entry_tp2_means_no_breakeven(value):
    assert one({**LEGACY_BUY, "sl_to_entry_tp2": value}).symbol_settings["breakeven_after_tp"] is None


def test_legacy_settings_can_come_from_trade_settings():
    alert = one({**LEGACY_BUY, "trade_settings": {"sl": 2, "tp1": 1.5, "leverage": 8, "margin_usdt": 40}})
    assert alert.stop_loss.pct == Decimal("2")
    assert [leg.pct for leg in alert.take_profits] == [Decimal("3.0")]
    assert (alert.leverage, alert.size_mode, alert.size_value) == (8, "margin_usdt", Decimal("40"))
    assert alert.problems == []


def test_legacy_settings_container_overrides_top_level():
    alert = one({**LEGACY_BUY, "leverage": 5, "sl": 1, "trade_settings": {"leverage": 10, "sl": 2}})
    assert alert.leverage == 10
    assert alert.stop_loss.pct == Decimal("2")


def test_legacy_later_settings_containers_override_earlier_ones():
    alert = one(
        {
            **LEGACY_BUY,
            "trade_settings": {"leverage": 5, "sl": 1},
            "settings": {"leverage": 10, "sl": 2},
            "webhook_settings": {"leverage": 20},
        }
    )
    assert alert.leverage == 20
    assert alert.stop_loss.pct == Decimal("2")


def test_legacy_later_container_alias_overrides_earlier_key():
    alert = one({**LEGACY_BUY, "trade_settings": {"margin_usdt": 20}, "settings": {"margin": 50}})
    assert alert.size_value == Decimal("50")


def test_legacy_stored_take_profit_keeps_its_level_number():
    stored = one({**LEGACY_BUY, "sl": 1, "tp2": 2}).symbol_settings["take_profits"]
    assert [entry["level"] for entry in stored] == [2]


def test_legacy_settings_apply_to_every_alert_of_an_actions_list():
    alerts = normalise_alert({"actions": ["LONG_BUY", "SHORT_SELL"], "symbol": "BTC-USDT", "sl": 1, "tp1": 2})
    assert [alert.stop_loss.pct for alert in alerts] == [Decimal("1")] * 2
    assert [[leg.pct for leg in alert.take_profits] for alert in alerts] == [[Decimal("2")]] * 2


def test_v1_alert_has_no_symbol_settings():
    assert one({**BUY, "sl": 63000, "leverage": 10}).symbol_settings == {}


# --- fingerprint ---------------------------------------------------------------------------------------

REQUEST = {**BUY, "alert_id": "bar-1", "size": {"mode": "usdt", "value": "100"}, "sl": 63000}


def test_fingerprint_ignores_sent_at_max_lag_s_and_secret():
    first = one({**REQUEST, "sent_at": "2026-11-25T09:00:00Z", "max_lag_s": 30, "secret": "a"})
    resend = one({**REQUEST, "sent_at": 1795597260000, "max_lag_s": 120, "secret": "b"})
    assert first.fingerprint() == resend.fingerprint()


@given(
    sent_at=st.integers(min_value=1_600_000_000_000, max_value=2_000_000_000_000),
    max_lag_s=st.integers(min_value=1, max_value=86400),
    secret=st.text(max_size=20),
)
def test_fingerprint_is_the_same_for_the_same_request_whatever_the_delivery_details(sent_at, max_lag_s, secret):
    delivered = one({**REQUEST, "sent_at": sent_at, "max_lag_s": max_lag_s, "secret": secret})
    assert delivered.fingerprint() == one(REQUEST).fingerprint()


def test_fingerprint_is_the_same_for_numbers_as_strings_or_json_numbers():
    as_numbers = parse_body(b'{"action": "buy", "symbol": "BTC-USDT", "price": 64000.5, "leverage": 10}').data
    as_strings = parse_body(b'{"action": "buy", "symbol": "BTC-USDT", "price": "64000.5", "leverage": "10"}').data
    assert one(as_numbers).fingerprint() == one(as_strings).fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "ETH-USDT"},
        {"action": "sell"},
        {"size": {"mode": "usdt", "value": "200"}},
        {"size": {"mode": "margin_usdt", "value": "100"}},
        {"sl": 62000},
        {"leverage": 5},
        {"alert_id": "bar-2"},
    ],
    ids=["symbol", "action", "size-value", "size-mode", "sl", "leverage", "alert_id"],
)
def test_fingerprint_differs_when_the_request_differs(change):
    assert one({**REQUEST, **change}).fingerprint() != one(REQUEST).fingerprint()


def test_alerts_of_an_actions_list_have_different_fingerprints():
    first, second = normalise_alert({"actions": ["LONG_SELL", "SHORT_SELL"], "symbol": "BTC-USDT"})
    assert first.fingerprint() != second.fingerprint()


def _fingerprint_by_asdict(alert: NormalisedAlert) -> str:
    """The fingerprint as first defined, with dataclasses.asdict: stored payload hashes were made this way."""
    content = dataclasses.asdict(alert)
    for name in ("sent_at", "max_lag_s", "problems"):
        content.pop(name)
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


@pytest.mark.parametrize(
    "data",
    [
        REQUEST,
        {**REQUEST, "tp": [{"pct": "1", "size_pct": 50}, {"price": "70000", "size_pct": 50}], "sl": {"pct": "1.5"}},
        {**REQUEST, "breakeven": {"after_tp": 1, "offset_pct": "0.05"}, "trailing": {"activation_pct": "1"}},
        {**REQUEST, "comment": "ünïcode", "confidence": "0.8", "margin_mode": "cross", "order_type": "limit"},
        {**LEGACY_BUY, "sl": 1, "tp1": 2, "tp2": 3, "tp1_sell": 40, "sl_to_entry_tp2": "yes", "margin": 50},
        {"symbol": "BTC-USDT"},
        {"action": "buy", "symbol": "BTC-USDT", "tp": 70000, "sl": 60000},
    ],
    ids=["v1", "tps", "options", "text-and-choices", "legacy", "no-action", "bare-levels"],
)
def test_fingerprint_is_the_one_dataclasses_asdict_gave(data):
    for alert in normalise_alert(data):
        assert alert.fingerprint() == _fingerprint_by_asdict(alert)


@given(
    data=st.fixed_dictionaries(
        {"action": st.sampled_from(["buy", "sell", "LONG_BUY", "SHORT_SELL"]), "symbol": st.just("BTC-USDT")},
        optional={
            "price": st.decimals(min_value=1, max_value=10**6, places=4).map(str),
            "leverage": st.integers(min_value=1, max_value=125),
            "sl": st.one_of(st.integers(min_value=1, max_value=10**5), st.fixed_dictionaries({"pct": st.just("2")})),
            "tp": st.lists(st.fixed_dictionaries({"pct": st.just("1"), "size_pct": st.just(25)}), max_size=4),
            "tp1": st.integers(min_value=1, max_value=5),
            "strategy": st.text(max_size=10),
            "trailing": st.dictionaries(st.sampled_from(["activation_pct", "callback_pct"]), st.just("0.5")),
        },
    )
)
def test_fingerprint_is_the_one_dataclasses_asdict_gave_for_any_alert(data):
    for alert in normalise_alert(data):
        assert alert.fingerprint() == _fingerprint_by_asdict(alert)


# --- masking secrets for display ------------------------------------------------------------------


def test_redaction_masks_the_secret_and_keeps_the_rest():
    from signals_app.payload import redact_secrets

    masked = redact_secrets('{"secret":"abc","symbol":"BTCUSDT"}')
    assert masked == '{"secret":"***","symbol":"BTCUSDT"}'


def test_redaction_copes_with_escaped_quotes_and_spacing():
    from signals_app.payload import redact_secrets

    masked = redact_secrets('{ "SECRET" :  "a\\"b\\\\c", "password": "p" }')
    assert 'a\\"b' not in masked and '"p"' not in masked
    assert masked.count('"***"') == 2
