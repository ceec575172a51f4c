"""Sizing turns a size request into a base quantity the exchange accepts, never more than asked."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.precision import MarketRules, decimal_text, round_amount_down, round_price, to_decimal
from trading.sizing import SizeRequest, SizingError, size_order

BTC = MarketRules(
    "BTC/USDT:USDT",
    amount_step=Decimal("0.0001"),
    price_tick=Decimal("0.1"),
    min_qty=Decimal("0.0001"),
    min_notional=Decimal("2"),
)
PEPE = MarketRules(
    "1000PEPE/USDT:USDT",
    amount_step=Decimal("1"),
    price_tick=Decimal("0.0000001"),
    min_qty=Decimal("1"),
    min_notional=Decimal("2"),
)


def size(mode, value, price="50000", market=BTC, **extra):
    return size_order(SizeRequest(mode=mode, value=Decimal(value), price=Decimal(price), **extra), market)


def test_base_quantity_is_taken_as_is_when_on_the_step():
    assert size("qty", "0.0123") == Decimal("0.0123")


def test_base_quantity_is_rounded_down_to_the_step():
    assert size("qty", "0.01239") == Decimal("0.0123")


def test_usdt_notional_is_divided_by_the_price():
    assert size("usdt", "100", price="50000") == Decimal("0.0020")


def test_margin_is_multiplied_by_leverage():
    assert size("margin_usdt", "10", price="50000", leverage=10) == Decimal("0.0020")


def test_percent_of_equity_is_used_as_margin():
    assert size("pct_equity", "10", price="50000", leverage=5, equity=Decimal("1000")) == Decimal("0.0100")


def test_percent_of_available_uses_the_available_balance():
    assert size("pct_available", "50", price="50000", leverage=1, available=Decimal("200")) == Decimal("0.0020")


def test_risk_percent_sizes_by_the_stop_distance():
    # 1% of 10,000 = 100 USDT at risk over a 1,000 USDT stop distance = 0.1 BTC.
    assert size("risk_pct", "1", price="50000", equity=Decimal("10000"), stop_price=Decimal("49000")) == Decimal(
        "0.1000"
    )


def test_risk_percent_without_a_stop_is_refused():
    with pytest.raises(SizingError, match="needs a stop loss"):
        size("risk_pct", "1", equity=Decimal("10000"))


def test_percent_of_position_sizes_a_partial_exit():
    assert size("pct_position", "50", position_qty=Decimal("0.0125")) == Decimal("0.0062")


def test_percent_of_position_without_a_position_is_refused():
    with pytest.raises(SizingError, match="needs an open position"):
        size("pct_position", "50", position_qty=Decimal("0"))


def test_below_the_minimum_quantity_is_refused_not_rounded_up():
    with pytest.raises(SizingError, match="below the minimum 0.0001"):
        size("qty", "0.00009")


def test_below_the_minimum_notional_is_refused():
    with pytest.raises(SizingError, match="order value 1.5 USDT is below the minimum 2 USDT"):
        size("qty", "0.0001", price="15000")


def test_exactly_the_minimum_notional_passes():
    assert size("qty", "0.0001", price="20000") == Decimal("0.0001")


def test_whole_contract_markets_round_to_whole_units():
    assert size("usdt", "10", price="0.0123456", market=PEPE) == Decimal("810")


@pytest.mark.parametrize("mode", ["pct_equity", "pct_available", "risk_pct", "pct_position"])
def test_a_percentage_above_100_is_refused(mode):
    with pytest.raises(SizingError, match="is a percentage"):
        size(
            mode, "101", equity=Decimal("1"), available=Decimal("1"), stop_price=Decimal("1"), position_qty=Decimal("1")
        )


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_size_must_be_positive(value):
    with pytest.raises(SizingError, match="must be positive"):
        size("qty", value)


def test_an_unknown_mode_names_the_accepted_ones():
    with pytest.raises(SizingError, match="accepted: qty, usdt, margin_usdt"):
        size("lots", "1")


def test_floats_are_refused_by_the_market_rules():
    with pytest.raises(TypeError):
        MarketRules("X", amount_step=0.1, price_tick=Decimal("1"))  # type: ignore[arg-type]


def test_to_decimal_keeps_the_written_digits():
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal("65000.50") == Decimal("65000.50")


@pytest.mark.parametrize(("direction", "expected"), [("nearest", "1.2"), ("down", "1.2"), ("up", "1.3")])
def test_prices_round_to_the_tick(direction, expected):
    assert round_price(Decimal("1.24"), Decimal("0.1"), direction=direction) == Decimal(expected)


# --- properties ----------------------------------------------------------------------------------

steps = st.sampled_from(
    [Decimal("1"), Decimal("0.1"), Decimal("0.001"), Decimal("0.0001"), Decimal("0.00000001"), Decimal("5")]
)
amounts = st.decimals(
    min_value=Decimal("0"), max_value=Decimal("1000000"), places=10, allow_nan=False, allow_infinity=False
)


@settings(max_examples=300, deadline=None)
@given(qty=amounts, step=steps)
def test_rounding_never_goes_up_and_lands_on_the_step(qty, step):
    rounded = round_amount_down(qty, step)
    assert isinstance(rounded, Decimal)
    assert rounded <= qty
    assert qty - rounded < step
    assert rounded % step == 0


@settings(max_examples=300, deadline=None)
@given(
    qty=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("100000"), places=8, allow_nan=False),
    price=st.decimals(min_value=Decimal("0.0000001"), max_value=Decimal("200000"), places=7, allow_nan=False),
    step=steps,
    min_qty=st.sampled_from([Decimal("0"), Decimal("0.001"), Decimal("1")]),
    min_notional=st.sampled_from([Decimal("0"), Decimal("2"), Decimal("5")]),
)
def test_sizing_never_exceeds_the_request_and_never_goes_below_the_minimums(qty, price, step, min_qty, min_notional):
    market = MarketRules(
        "X/USDT:USDT", amount_step=step, price_tick=Decimal("0.0000001"), min_qty=min_qty, min_notional=min_notional
    )
    try:
        result = size_order(SizeRequest(mode="qty", value=qty, price=price), market)
    except SizingError:
        return  # refusing is always allowed; returning something invalid never is
    assert isinstance(result, Decimal)
    assert result <= qty
    assert result % step == 0
    assert result >= min_qty and result > 0
    assert result * price >= min_notional


@settings(max_examples=200, deadline=None)
@given(
    notional=st.decimals(min_value=Decimal("1"), max_value=Decimal("100000"), places=2, allow_nan=False),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2, allow_nan=False),
    leverage=st.integers(min_value=1, max_value=125),
)
def test_margin_sizing_never_exceeds_margin_times_leverage(notional, price, leverage):
    try:
        qty = size_order(SizeRequest(mode="margin_usdt", value=notional, price=price, leverage=leverage), BTC)
    except SizingError:
        return
    assert qty * price <= notional * leverage


def test_amounts_in_messages_read_as_plain_digits():
    values = ("0E-8", "5.00000000", "65000.00000000", "0.0100", "-1.50")
    assert [decimal_text(Decimal(value)) for value in values] == ["0", "5", "65000", "0.01", "-1.5"]
    assert decimal_text(None) == "n/a"
