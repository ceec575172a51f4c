"""The approval card: what a trader sees of a waiting signal, and what it says once handled."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from signals_app.models import Signal
from telegram_bot.cards import (
    ENTRY_RISK_CHECKS,
    EXIT_RISK_CHECKS,
    OrderResult,
    signal_card_final_view,
    signal_card_view,
)
from tests.factories import SignalFactory, TradingAccountFactory
from trading.risk import AccountState, RiskLimitsView, SymbolView, TradeRequest, risk_check

S = Signal.Status
EXPIRES = datetime(2026, 1, 5, 12, 30, 15, tzinfo=UTC)
PLAN = {
    "price": "65000",
    "checks": "passed",
    "side": "long",
    "qty": "0.0100",
    "notional": "650.00",
    "leverage": 5,
    "margin_mode": "isolated",
    "protective": [
        {"purpose": "stop_loss", "trigger": "64025.0", "qty": "0.01"},
        {"purpose": "take_profit_1", "trigger": "66300", "qty": "0.005"},
        {"purpose": "take_profit_2", "trigger": "67000", "qty": "0.005"},
    ],
}


def waiting(**overrides) -> Signal:
    fields = {
        "pk": 12,
        "status": S.AWAITING_CONFIRMATION,
        "confirmation_expires_at": EXPIRES,
        "extras": {"plan": PLAN},
        "account": TradingAccountFactory.build(name="main"),
        **overrides,
    }
    return SignalFactory.build(**fields)


def buttons(view) -> list[str]:
    return [button["callback_data"] for row in view.keyboard for button in row]


def test_a_waiting_card_shows_the_trade_it_would_make():
    text = signal_card_view(waiting()).text

    assert "LONG BTC/USDT:USDT" in text and "signal #12" in text and "main" in text
    assert "Qty: <b>0.01</b> (≈ 650 USDT)" in text
    assert "Leverage: <b>5x</b> isolated" in text
    assert "SL: 64025" in text
    assert "TP1: 66300 (qty 0.005)" in text and "TP2: 67000 (qty 0.005)" in text
    assert "Expires at 12:30:15 UTC" in text


def test_a_waiting_card_lists_the_risk_checks_it_passed():
    text = signal_card_view(waiting()).text

    assert "Risk checks passed: fresh alert" in text
    assert "account max leverage" in text and "daily loss" in text and "margin available" in text


def test_a_waiting_card_has_approve_reject_and_edit_buttons_keyed_by_signal_id():
    assert buttons(signal_card_view(waiting())) == [
        "sig:ok:12",
        "sig:no:12",
        "sig:ed:q:12",
        "sig:ed:sl:12",
        "sig:ed:tp:12",
        "sig:ed:lev:12",
    ]


def test_the_largest_signal_id_still_fits_telegrams_64_byte_callback_limit():
    view = signal_card_view(waiting(pk=9223372036854775807))

    assert max(len(data.encode()) for data in buttons(view)) <= 64


def test_a_plan_given_explicitly_wins_over_the_stored_one():
    class Plan:
        def describe(self):
            return {**PLAN, "qty": "0.02", "notional": "1300.00"}

    assert "Qty: <b>0.02</b> (≈ 1300 USDT)" in signal_card_view(waiting(), plan=Plan()).text


def test_a_note_under_the_title_says_what_changed_and_is_escaped():
    text = signal_card_view(waiting(), note="qty 0.01 → 0.02 by <alice>").text

    assert "qty 0.01 → 0.02 by &lt;alice&gt;" in text


def test_a_signal_without_a_stop_or_take_profit_says_none():
    text = signal_card_view(waiting(extras={"plan": {**PLAN, "protective": []}})).text

    assert "SL: none" in text and "TP: none" in text


def test_the_card_of_a_signal_no_longer_waiting_has_no_buttons():
    assert signal_card_view(waiting(status=S.REJECTED, rejection_reason="too late")).keyboard == []


def test_an_expired_card_says_when_and_has_no_buttons():
    view = signal_card_final_view(waiting(status=S.EXPIRED, expired_at=EXPIRES + timedelta(seconds=1)))

    assert "Expired at 12:30:16 UTC" in view.text
    assert view.keyboard == [] and view.reply_markup() is None


def test_a_rejected_card_gives_the_reason_and_who_rejected():
    view = signal_card_final_view(waiting(status=S.REJECTED, rejection_reason="rejected by hand"), actor_label="@bob")

    assert "Rejected by @bob: rejected by hand" in view.text


def test_an_executed_card_shows_the_exchange_result_of_each_order():
    entry = OrderResult(
        purpose="entry",
        side="buy",
        qty=Decimal("0.01"),
        status="filled",
        exchange_order_id="1736012345",
        filled_qty=Decimal("0.0100"),
        average_price=Decimal("65000.00"),
    )
    stop = OrderResult(
        purpose="stop_loss", side="sell", qty=Decimal("0.01"), status="open", trigger_price=Decimal("64025")
    )
    view = signal_card_final_view(waiting(status=S.EXECUTED), orders=[entry, stop], actor_label="@alice")

    assert "Approved by @alice: executed" in view.text
    assert "entry BUY 0.01: <b>filled</b>, filled 0.01 @ 65000 · order 1736012345" in view.text
    assert "stop loss SELL 0.01: <b>open</b> at 64025" in view.text
    assert view.keyboard == []


def test_a_close_signal_card_lists_only_the_staleness_check():
    plan = {"price": "65000", "checks": "passed", "close": ["long", "short"]}
    text = signal_card_view(waiting(action="close", extras={"plan": plan})).text

    assert "Closes: long, short" in text
    assert "Risk checks passed: fresh alert, sane alert clock" in text
    assert "account max leverage" not in text


def test_the_card_names_every_rule_the_risk_engine_can_break():
    """A trade that breaks everything at once: the card must know each rule's name."""
    now = datetime(2026, 1, 4, 3, 0, tzinfo=UTC)  # a Sunday, 03:00
    limits = RiskLimitsView(
        max_open_positions=1,
        max_trades_per_day=1,
        max_leverage=2,
        max_daily_loss_usdt=Decimal("1"),
        max_drawdown_pct=Decimal("1"),
        max_notional_per_trade=Decimal("1"),
        min_confidence=Decimal("90"),
        cooldown_seconds=600,
        trading_hours_start=time(9),
        trading_hours_end=time(17),
        trading_weekdays="0123456",
        max_signal_lag_seconds=10,
    )
    state = AccountState(
        trading_enabled=False,
        open_positions=1,
        symbol_open_notional=Decimal("100"),
        trades_today=1,
        last_entry_at=now - timedelta(seconds=5),
        equity=Decimal("50"),
        equity_peak=Decimal("100"),
        daily_pnl=Decimal("-50"),
        available=Decimal("0"),
    )
    request = TradeRequest(
        symbol="BTC/USDT:USDT",
        opens_exposure=True,
        notional=Decimal("1000"),
        leverage=10,
        confidence=Decimal("1"),
        sent_at=now - timedelta(seconds=60),
    )
    symbol = SymbolView("BTC/USDT:USDT", enabled=False, max_leverage=3, max_position_notional=Decimal("10"))
    broken = {r.rule for r in risk_check(request, limits=limits, symbol=symbol, state=state, now=now).rejections}
    weekdays = RiskLimitsView(max_open_positions=1, max_trades_per_day=1, max_leverage=1, trading_weekdays="0")
    broken |= {r.rule for r in risk_check(request, limits=weekdays, symbol=symbol, state=state, now=now).rejections}
    from_future = TradeRequest(symbol="X", opens_exposure=False, sent_at=now + timedelta(hours=1))
    broken |= {r.rule for r in risk_check(from_future, limits=limits, symbol=None, state=state, now=now).rejections}
    drawdown_state = AccountState(trading_enabled=True, equity=Decimal("50"), equity_peak=Decimal("100"))
    broken |= {
        r.rule for r in risk_check(request, limits=limits, symbol=symbol, state=drawdown_state, now=now).rejections
    }

    assert broken == set(ENTRY_RISK_CHECKS)
    assert set(EXIT_RISK_CHECKS) <= broken


def test_a_close_signal_card_can_be_approved_or_rejected_but_has_nothing_to_edit():
    plan = {"price": "65000", "checks": "passed", "close": ["long"]}

    assert buttons(signal_card_view(waiting(action="close_long", extras={"plan": plan}))) == ["sig:ok:12", "sig:no:12"]


def test_a_signal_approved_then_refused_by_the_exchange_says_both():
    signal = waiting(status=S.REJECTED, approved_at=EXPIRES, rejection_reason="BingX refused (insufficient margin)")

    text = signal_card_final_view(signal, actor_label="@alice").text

    assert "Approved by @alice, then ❌ rejected: BingX refused (insufficient margin)" in text
