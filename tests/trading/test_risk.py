"""The risk engine: each rule passes at its limit, fails just over it, and never blocks an exit."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from trading.risk import AccountState, RiskLimitsView, SymbolView, TradeRequest, risk_check

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday

LIMITS = RiskLimitsView(
    max_open_positions=3,
    max_trades_per_day=10,
    max_leverage=20,
    max_daily_loss_usdt=Decimal("100"),
    max_daily_loss_pct=Decimal("5"),
    max_drawdown_pct=Decimal("10"),
    max_notional_per_trade=Decimal("1000"),
    min_confidence=Decimal("60"),
    cooldown_seconds=300,
    max_signal_lag_seconds=60,
)
SYMBOL = SymbolView("BTC/USDT:USDT", enabled=True, max_leverage=10, max_position_notional=Decimal("2000"))
STATE = AccountState(
    trading_enabled=True,
    open_positions=1,
    trades_today=2,
    equity=Decimal("1000"),
    equity_peak=Decimal("1000"),
    day_start_equity=Decimal("1000"),
    available=Decimal("500"),
)
ENTRY = TradeRequest(
    symbol="BTC/USDT:USDT",
    opens_exposure=True,
    notional=Decimal("500"),
    leverage=5,
    confidence=Decimal("80"),
    sent_at=NOW - timedelta(seconds=5),
)
EXIT = replace(ENTRY, opens_exposure=False)


def check(request=ENTRY, limits=LIMITS, symbol=SYMBOL, state=STATE, now=NOW):
    return risk_check(request, limits=limits, symbol=symbol, state=state, now=now)


def rules(decision) -> set[str]:
    return {rejection.rule for rejection in decision.rejections}


def test_a_trade_within_every_limit_passes():
    decision = check()
    assert decision.passed and decision.rejections == () and decision.breach is None


# --- kill switch, whitelist, hours, confidence ------------------------------------------------


def test_the_kill_switch_blocks_entries():
    assert rules(check(state=replace(STATE, trading_enabled=False))) == {"kill_switch"}


def test_a_symbol_without_a_profile_is_not_whitelisted():
    decision = check(symbol=None)
    assert rules(decision) == {"symbol_not_whitelisted"}
    assert "BTC/USDT:USDT is not whitelisted" in decision.reason


def test_a_disabled_symbol_is_not_whitelisted():
    assert rules(check(symbol=replace(SYMBOL, enabled=False))) == {"symbol_not_whitelisted"}


def test_a_day_off_blocks_entries():
    decision = check(limits=replace(LIMITS, trading_weekdays="01356"))  # Wednesday (2) is off
    assert rules(decision) == {"outside_trading_days"}
    assert "Wed is not a trading day" in decision.reason


def test_trading_hours_include_their_start():
    assert check(limits=replace(LIMITS, trading_hours_start=time(12, 0), trading_hours_end=time(13, 0))).passed


def test_trading_hours_exclude_their_end():
    limits = replace(LIMITS, trading_hours_start=time(9, 0), trading_hours_end=time(12, 0))
    assert rules(check(limits=limits)) == {"outside_trading_hours"}


def test_trading_hours_are_read_in_the_account_time_zone():
    # 12:00 UTC is 13:00 in Berlin (winter time), outside 09:00-13:00 there.
    limits = replace(
        LIMITS, trading_hours_start=time(9, 0), trading_hours_end=time(13, 0), trading_timezone="Europe/Berlin"
    )
    assert rules(check(limits=limits)) == {"outside_trading_hours"}


def test_a_window_over_midnight_wraps():
    limits = replace(LIMITS, trading_hours_start=time(22, 0), trading_hours_end=time(6, 0))
    undated = replace(ENTRY, sent_at=None)
    assert check(undated, limits=limits, now=NOW.replace(hour=23)).passed
    assert check(undated, limits=limits, now=NOW.replace(hour=5, minute=59)).passed
    assert rules(check(undated, limits=limits, now=NOW.replace(hour=6))) == {"outside_trading_hours"}


def test_confidence_at_the_minimum_passes():
    assert check(replace(ENTRY, confidence=Decimal("60"))).passed


def test_confidence_just_below_the_minimum_fails():
    assert rules(check(replace(ENTRY, confidence=Decimal("59.99")))) == {"confidence_too_low"}


def test_an_alert_without_confidence_is_not_held_to_the_minimum():
    assert check(replace(ENTRY, confidence=None)).passed


# --- staleness ------------------------------------------------------------------------------------


def test_an_alert_exactly_at_the_lag_limit_passes():
    assert check(replace(ENTRY, sent_at=NOW - timedelta(seconds=60))).passed


def test_an_alert_just_over_the_lag_limit_is_stale():
    decision = check(replace(ENTRY, sent_at=NOW - timedelta(seconds=61)))
    assert rules(decision) == {"signal_stale"}
    assert "61 s old; the limit is 60 s" in decision.reason


def test_the_alerts_own_max_lag_applies_when_stricter():
    assert rules(check(replace(ENTRY, sent_at=NOW - timedelta(seconds=11), max_lag_seconds=10))) == {"signal_stale"}


def test_the_accounts_lag_limit_applies_when_the_alert_allows_more():
    assert rules(check(replace(ENTRY, sent_at=NOW - timedelta(seconds=61), max_lag_seconds=600))) == {"signal_stale"}


def test_an_alert_from_the_future_points_at_a_broken_clock():
    assert rules(check(replace(ENTRY, sent_at=NOW + timedelta(minutes=5)))) == {"signal_from_future"}


def test_a_stale_exit_is_refused_too_because_it_could_close_a_newer_position():
    assert rules(check(replace(EXIT, sent_at=NOW - timedelta(seconds=61)))) == {"signal_stale"}


# --- cooldown, counts ---------------------------------------------------------------------------


def test_an_entry_exactly_after_the_cooldown_passes():
    assert check(state=replace(STATE, last_entry_at=NOW - timedelta(seconds=300))).passed


def test_an_entry_inside_the_cooldown_fails():
    assert rules(check(state=replace(STATE, last_entry_at=NOW - timedelta(seconds=299)))) == {"cooldown"}


def test_the_last_trade_of_the_day_passes():
    assert check(state=replace(STATE, trades_today=9)).passed


def test_one_trade_over_the_daily_count_fails():
    assert rules(check(state=replace(STATE, trades_today=10))) == {"trades_per_day"}


def test_the_last_allowed_position_may_open():
    assert check(state=replace(STATE, open_positions=2)).passed


def test_one_position_too_many_fails():
    assert rules(check(state=replace(STATE, open_positions=3))) == {"open_positions"}


def test_adding_to_an_open_position_opens_no_new_one():
    assert check(state=replace(STATE, open_positions=3, has_open_position_on_side=True)).passed


# --- notional and leverage --------------------------------------------------------------------


def test_notional_at_the_per_trade_limit_passes():
    assert check(replace(ENTRY, notional=Decimal("1000"), leverage=2)).passed


def test_notional_just_over_the_per_trade_limit_fails():
    assert rules(check(replace(ENTRY, notional=Decimal("1000.01"), leverage=5))) == {"notional_per_trade"}


def test_the_symbol_position_may_reach_its_notional_limit():
    assert check(state=replace(STATE, symbol_open_notional=Decimal("1500"))).passed


def test_the_symbol_position_cannot_go_over_its_notional_limit():
    decision = check(state=replace(STATE, symbol_open_notional=Decimal("1500.01")))
    assert rules(decision) == {"notional_per_symbol"}


def test_leverage_at_the_symbols_maximum_passes():
    assert check(replace(ENTRY, leverage=10)).passed


def test_leverage_over_the_symbols_maximum_fails():
    assert rules(check(replace(ENTRY, leverage=11))) == {"leverage_symbol"}


def test_leverage_over_the_accounts_maximum_fails():
    symbol = replace(SYMBOL, max_leverage=50)
    assert check(replace(ENTRY, leverage=20), symbol=symbol).passed
    assert rules(check(replace(ENTRY, leverage=21), symbol=symbol)) == {"leverage_account"}


def test_margin_equal_to_the_available_balance_passes():
    assert check(replace(ENTRY, notional=Decimal("1000"), leverage=2)).passed  # margin 500 of 500


def test_margin_over_the_available_balance_fails():
    decision = check(state=replace(STATE, available=Decimal("99.99")))  # margin 100
    assert rules(decision) == {"insufficient_balance"}


# --- losses --------------------------------------------------------------------------------------


def test_a_daily_loss_at_the_limit_passes():
    decision = check(
        state=replace(STATE, daily_pnl=Decimal("-50"), day_start_equity=Decimal("1000")),
        limits=replace(LIMITS, max_daily_loss_pct=None),
    )
    assert decision.passed
    assert check(
        state=replace(STATE, daily_pnl=Decimal("-100")), limits=replace(LIMITS, max_daily_loss_pct=None)
    ).passed


def test_a_daily_loss_just_over_the_usdt_limit_blocks_entries_and_breaches():
    decision = check(
        state=replace(STATE, daily_pnl=Decimal("-100.01")), limits=replace(LIMITS, max_daily_loss_pct=None)
    )
    assert rules(decision) == {"daily_loss"}
    assert decision.breach == "daily_loss"


def test_a_daily_loss_just_over_the_percent_limit_breaches():
    limits = replace(LIMITS, max_daily_loss_usdt=None)
    assert check(state=replace(STATE, daily_pnl=Decimal("-50")), limits=limits).passed
    decision = check(state=replace(STATE, daily_pnl=Decimal("-50.01")), limits=limits)
    assert decision.breach == "daily_loss"


def test_a_drawdown_at_the_limit_passes():
    assert check(state=replace(STATE, equity=Decimal("900"), equity_peak=Decimal("1000"))).passed


def test_a_drawdown_just_over_the_limit_breaches():
    decision = check(state=replace(STATE, equity=Decimal("899.99"), equity_peak=Decimal("1000")))
    assert rules(decision) == {"drawdown"}
    assert decision.breach == "drawdown"


def test_empty_limits_mean_no_limit():
    limits = replace(
        LIMITS, max_daily_loss_usdt=None, max_daily_loss_pct=None, max_drawdown_pct=None, max_notional_per_trade=None
    )
    state = replace(STATE, daily_pnl=Decimal("-999"), equity=Decimal("1"), available=None)
    assert check(
        replace(ENTRY, notional=Decimal("1000000"), leverage=10),
        limits=limits,
        state=state,
        symbol=replace(SYMBOL, max_position_notional=None),
    ).passed


# --- exits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocked",
    [
        {"state": replace(STATE, trading_enabled=False)},
        {"symbol": None},
        {"limits": replace(LIMITS, trading_weekdays="0")},
        {"state": replace(STATE, trades_today=99, open_positions=99, available=Decimal("0"))},
        {"state": replace(STATE, daily_pnl=Decimal("-5000"), equity=Decimal("100"))},
        {"state": replace(STATE, last_entry_at=NOW)},
    ],
    ids=["kill switch", "not whitelisted", "day off", "counts and balance", "loss limits", "cooldown"],
)
def test_limits_that_stop_new_exposure_never_block_an_exit(blocked):
    assert check(replace(EXIT, confidence=Decimal("1")), **blocked).passed


def test_a_breach_is_reported_even_on_an_exit_so_auto_trade_still_goes_off():
    decision = check(EXIT, state=replace(STATE, daily_pnl=Decimal("-500")))
    assert decision.passed and decision.breach == "daily_loss"


def test_every_broken_rule_is_listed_not_just_the_first():
    state = replace(STATE, trading_enabled=False, trades_today=10)
    decision = check(replace(ENTRY, leverage=11), state=state)
    assert rules(decision) == {"kill_switch", "trades_per_day", "leverage_symbol"}
