"""The signal pipeline, driven as production drives it: alerts posted to the webhook, or the pipeline services.

received -> validated -> risk-checked -> executing (auto) or awaiting_confirmation (manual)
-> executed | rejected | failed | expired. Execution goes to the dry-run executor; every test asserts on
the rows it leaves (Signal, Order, Fill, Position, BalanceSnapshot, AuditEvent) and on the events
published on the in-memory channel layer. SIGNAL_PROCESSING is "inline" in tests, so an alert is
processed before the webhook call returns. Markets come from the shipped snapshot: BTC (step 0.0001,
tick 0.1), LTC, ADA (5x maximum) and SOL; each needs an order value of at least 2 USDT.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from signals_app.models import Signal, SignalLane
from signals_app.pipeline import (
    SignalRejected,
    signal_approve,
    signal_lane_process,
    signal_process,
    signal_reject,
    signals_expire_due,
    signals_sweep,
)
from tests.factories import (
    PositionFactory,
    RiskLimitsFactory,
    SignalFactory,
    SymbolProfileFactory,
    TradingAccountFactory,
)
from trading.audit import Actor
from trading.models import AuditEvent, BalanceSnapshot, Fill, Order, Position, SymbolProfile
from trading.rules import client_order_id_for
from trading.services import account_rotate_webhook_secret, account_set_trading_enabled

pytestmark = pytest.mark.django_db

S = Signal.Status
BTC, LTC, ADA = "BTC/USDT:USDT", "LTC/USDT:USDT", "ADA/USDT:USDT"
TRADER = Actor.telegram(4242, "trader")
BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}
_alert_ids = itertools.count(1)


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def account():
    """A dry-run account with auto-trade on and default risk limits."""
    account = TradingAccountFactory(auto_trade=True, mode="dry_run")
    RiskLimitsFactory(account=account)
    return account


@pytest.fixture
def limits(account):
    return account.risk_limits


@pytest.fixture
def manual(account):
    """The same account with auto-trade off: every valid signal waits for approval."""
    account.auto_trade = False
    account.save(update_fields=["auto_trade"])
    return account


@pytest.fixture
def btc(account):
    """BTC whitelisted at 5x (maximum 20x), with no default order size."""
    return SymbolProfileFactory(account=account, symbol=BTC, leverage=5, max_leverage=20)


@pytest.fixture
def send(client, account):
    """Post an alert to the webhook with the account's secret; returns the stored signal as it ends up."""
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    def send(**alert) -> Signal:
        body = {"secret": secret, "alert_id": f"test-{next(_alert_ids)}", **alert}
        response = client.post("/webhook/tradingview", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.json()
        return Signal.objects.get(pk=response.json()["signal_id"])

    return send


async def _drain(layer, channel: str) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.05))
        except TimeoutError:
            return messages


@pytest.fixture
def listen():
    """listen(*topics) subscribes a fresh channel to the topics and returns a reader of what arrived."""
    layer = get_channel_layer()

    def listen(*topics: str):
        channel = async_to_sync(layer.new_channel)()
        for topic in topics:
            async_to_sync(layer.group_add)(topic, channel)
        return lambda: async_to_sync(_drain)(layer, channel)

    yield listen
    async_to_sync(layer.flush)()


def received_signal(account, **fields) -> Signal:
    """A signal stored as the webhook stores it ("received"), not yet handed to processing."""
    defaults = {
        "symbol": BTC,
        "action": "buy",
        "price": Decimal("65000"),
        "size_mode": "qty",
        "size_value": Decimal("0.01"),
    }
    return SignalFactory(account=account, **{**defaults, **fields})


def protective_orders(signal: Signal) -> dict[str, Order]:
    return {order.purpose: order for order in Order.objects.filter(signal=signal, reduce_only=True)}


def open_position(symbol: str = BTC, side: str = "long") -> Position:
    return Position.objects.get(symbol=symbol, side=side, status=Position.Status.OPEN)


# --- stages, audit trail, events -----------------------------------------------------------------


def test_an_auto_trade_signal_goes_through_every_stage_to_executed_stamped_in_order(send, btc):
    signal = send(**BUY)

    assert signal.status == S.EXECUTED
    stamps = [signal.received_at, signal.validated_at, signal.risk_checked_at, signal.executing_at, signal.executed_at]
    assert None not in stamps
    assert stamps == sorted(stamps)
    assert signal.awaiting_confirmation_at is None


def test_every_stage_of_a_signal_is_audited_in_order(send, btc):
    signal = send(**BUY)

    trail = AuditEvent.objects.filter(object_type="signals_app.signal", object_id=str(signal.pk)).order_by("id")
    assert [(event.action, event.after.get("status")) for event in trail] == [
        ("signal.received", None),
        ("signal.status", "validated"),
        ("signal.status", "executing"),
        ("signal.status", "executed"),
    ]


def test_the_validated_and_executed_stages_are_published_once_the_transaction_commits(
    send, btc, listen, django_capture_on_commit_callbacks
):
    read = listen("signals.validated", "orders.executed")

    with django_capture_on_commit_callbacks(execute=True):
        signal = send(**BUY)

    events = read()
    assert [(event["topic"], event["signal_id"], event["status"]) for event in events] == [
        ("signals.validated", signal.pk, "validated"),
        ("orders.executed", signal.pk, "executed"),
    ]
    assert events[1]["symbol"] == BTC
    assert "filled" in events[1]["summary"]


def test_nothing_is_published_before_the_transaction_commits(send, btc, listen):
    read = listen("signals.validated", "orders.executed")

    send(**BUY)  # the test's transaction never commits

    assert read() == []


def test_a_rejection_is_published_with_its_reason(send, account, listen, django_capture_on_commit_callbacks):
    read = listen("signals.rejected")

    with django_capture_on_commit_callbacks(execute=True):
        signal = send(**BUY)  # BTC has no symbol profile: not whitelisted

    [event] = read()
    assert event["signal_id"] == signal.pk
    assert event["status"] == "rejected"
    assert "BTC/USDT:USDT is not whitelisted" in event["reason"]


# --- auto vs manual ------------------------------------------------------------------------------


def test_with_auto_trade_off_a_valid_signal_awaits_confirmation_until_the_timeout(manual, limits, send, btc):
    limits.confirmation_timeout_seconds = 120
    limits.save()
    before = timezone.now()

    signal = send(**BUY)

    assert signal.status == S.AWAITING_CONFIRMATION
    assert signal.risk_checked_at is not None
    assert before + timedelta(seconds=120) <= signal.confirmation_expires_at <= timezone.now() + timedelta(seconds=120)
    assert not Order.objects.exists()


def test_a_signal_waiting_for_confirmation_is_published(manual, send, btc, listen, django_capture_on_commit_callbacks):
    read = listen("signals.awaiting_confirmation")

    with django_capture_on_commit_callbacks(execute=True):
        signal = send(**BUY)

    assert [(event["signal_id"], event["status"]) for event in read()] == [(signal.pk, "awaiting_confirmation")]


def test_with_auto_trade_on_a_signal_below_the_auto_confidence_waits_for_confirmation(account, limits, send, btc):
    limits.auto_min_confidence = Decimal("80")
    limits.save()

    signal = send(**BUY, confidence=50)

    assert signal.status == S.AWAITING_CONFIRMATION
    assert AuditEvent.objects.get(object_id=str(signal.pk), after__status="awaiting_confirmation").reason == (
        "confidence below the auto-trade threshold"
    )
    assert not Order.objects.exists()


def test_with_auto_trade_on_a_signal_at_the_auto_confidence_executes(account, limits, send, btc):
    limits.auto_min_confidence = Decimal("80")
    limits.save()

    signal = send(**BUY, confidence=80)

    assert signal.status == S.EXECUTED


def test_approving_a_waiting_signal_places_the_dry_run_order(manual, send, btc):
    signal = send(**BUY)

    approved = signal_approve(signal=signal, actor=TRADER)

    assert approved.status == S.EXECUTED
    assert approved.approved_at is not None
    entry = Order.objects.get(signal=signal, purpose=Order.Purpose.ENTRY)
    assert (entry.status, entry.qty) == (Order.Status.FILLED, Decimal("0.01"))
    approval = AuditEvent.objects.get(object_id=str(signal.pk), after__status="approved")
    assert (approval.actor_type, approval.actor_id) == ("telegram", "4242")


def test_an_approval_with_edits_trades_the_edited_qty_leverage_stop_and_take_profit(manual, send, btc):
    signal = send(**BUY)

    signal_approve(
        signal=signal,
        actor=TRADER,
        qty=Decimal("0.02"),
        leverage=10,
        sl_price=Decimal("64000"),
        tp_levels=[{"price": "67000", "size_pct": "100"}],
    )

    assert Order.objects.get(signal=signal, purpose=Order.Purpose.ENTRY).qty == Decimal("0.02")
    position = open_position()
    assert (position.qty, position.leverage) == (Decimal("0.02"), 10)
    legs = protective_orders(signal)
    assert (legs["stop_loss"].trigger_price, legs["stop_loss"].qty) == (Decimal("64000"), Decimal("0.02"))
    assert (legs["take_profit_1"].trigger_price, legs["take_profit_1"].qty) == (Decimal("67000"), Decimal("0.02"))


def test_an_approval_edit_that_breaks_a_limit_is_refused_and_the_signal_keeps_waiting(manual, send, btc):
    signal = send(**BUY)

    with pytest.raises(SignalRejected, match="leverage 30x is above BTC/USDT:USDT's maximum 20x"):
        signal_approve(signal=signal, actor=TRADER, leverage=30)

    signal.refresh_from_db()
    assert signal.status == S.AWAITING_CONFIRMATION
    assert signal.leverage is None
    assert not Order.objects.exists()


def test_rejecting_a_waiting_signal_stores_the_reason_and_who_rejected_it(manual, send, btc):
    signal = send(**BUY)

    signal_reject(signal=signal, actor=TRADER, reason="not in this market")

    signal.refresh_from_db()
    assert (signal.status, signal.rejection_reason) == (S.REJECTED, "not in this market")
    assert signal.rejected_at is not None
    rejection = AuditEvent.objects.get(object_id=str(signal.pk), after__status="rejected")
    assert (rejection.actor_type, rejection.reason) == ("telegram", "not in this market")
    assert not Order.objects.exists()


def test_expiry_ends_only_the_signals_whose_confirmation_window_has_passed(manual, send, btc):
    overdue, waiting = send(**BUY), send(**BUY)
    Signal.objects.filter(pk=overdue.pk).update(confirmation_expires_at=timezone.now() - timedelta(seconds=1))

    assert signals_expire_due() == 1

    overdue.refresh_from_db()
    waiting.refresh_from_db()
    assert (overdue.status, overdue.rejection_reason) == (S.EXPIRED, "not confirmed in time")
    assert overdue.expired_at is not None
    assert waiting.status == S.AWAITING_CONFIRMATION


def test_an_expiry_is_published(manual, send, btc, listen, django_capture_on_commit_callbacks):
    signal = send(**BUY)
    Signal.objects.filter(pk=signal.pk).update(confirmation_expires_at=timezone.now() - timedelta(seconds=1))
    read = listen("signals.expired")

    with django_capture_on_commit_callbacks(execute=True):
        signals_expire_due()

    assert [(event["signal_id"], event["status"]) for event in read()] == [(signal.pk, "expired")]


def test_an_approval_after_the_confirmation_window_is_refused_and_the_signal_expires(manual, send, btc):
    signal = send(**BUY)
    Signal.objects.filter(pk=signal.pk).update(confirmation_expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(SignalRejected, match="expired"):
        signal_approve(signal=signal, actor=TRADER)

    signal.refresh_from_db()
    assert signal.status == S.EXPIRED
    assert not Order.objects.exists()


@pytest.mark.parametrize("mode", ["demo", "live"])
def test_a_demo_or_live_account_without_api_keys_fails_the_signal_and_sends_nothing(account, send, btc, mode):
    account.mode = mode
    account.save(update_fields=["mode"])

    signal = send(**BUY)

    assert signal.status == S.FAILED
    assert "has no BingX API key pair" in signal.rejection_reason
    assert not Order.objects.exists()
    assert not Position.objects.exists()


def test_a_failure_is_published_with_its_reason(account, send, btc, listen, django_capture_on_commit_callbacks):
    account.mode = "live"
    account.save(update_fields=["mode"])
    read = listen("signals.failed")

    with django_capture_on_commit_callbacks(execute=True):
        signal = send(**BUY)

    [event] = read()
    assert (event["signal_id"], event["status"]) == (signal.pk, "failed")
    assert "API key pair" in event["reason"]


# --- lanes ---------------------------------------------------------------------------------------


def test_a_lane_runs_its_signals_in_arrival_order_so_a_close_finishes_before_the_next_open(account, btc):
    now = timezone.now()
    # Stored in the opposite order to their arrival: the lane goes by received_at, not by row id.
    close = received_signal(account, action="close_long", price=Decimal("66000"), received_at=now)
    open_ = received_signal(account, action="buy", price=Decimal("65000"), received_at=now - timedelta(seconds=1))

    assert signal_lane_process(account_id=account.pk, symbol=BTC) == 2

    open_.refresh_from_db()
    close.refresh_from_db()
    assert (open_.status, close.status) == (S.EXECUTED, S.EXECUTED)
    assert open_.executed_at < close.validated_at
    assert list(Order.objects.order_by("id").values_list("signal_id", "purpose")) == [
        (open_.pk, Order.Purpose.ENTRY),
        (close.pk, Order.Purpose.CLOSE),
    ]
    position = Position.objects.get()
    assert (position.status, position.realized_pnl) == (Position.Status.CLOSED, Decimal("10"))


def test_a_lane_held_by_another_worker_is_left_to_that_worker(account, btc):
    SignalLane.objects.create(
        account=account, symbol=BTC, holder="other-worker", busy_until=timezone.now() + timedelta(minutes=1)
    )
    signal = received_signal(account)

    assert signal_lane_process(account_id=account.pk, symbol=BTC) == 0

    signal.refresh_from_db()
    assert signal.status == S.RECEIVED
    assert SignalLane.objects.get(account=account, symbol=BTC).holder == "other-worker"
    assert not Order.objects.exists()


def test_a_lane_whose_lease_ran_out_is_taken_over_and_released_when_done(account, btc):
    SignalLane.objects.create(
        account=account, symbol=BTC, holder="dead-worker", busy_until=timezone.now() - timedelta(seconds=1)
    )
    signal = received_signal(account)

    assert signal_lane_process(account_id=account.pk, symbol=BTC) == 1

    signal.refresh_from_db()
    assert signal.status == S.EXECUTED
    lane = SignalLane.objects.get(account=account, symbol=BTC)
    assert (lane.holder, lane.busy_until) == ("", None)


def test_a_busy_lane_does_not_hold_up_another_symbol(account, btc):
    SymbolProfileFactory(account=account, symbol=LTC, leverage=5)
    SignalLane.objects.create(
        account=account, symbol=BTC, holder="other-worker", busy_until=timezone.now() + timedelta(minutes=1)
    )
    ltc = received_signal(account, symbol=LTC, price=Decimal("80"), size_value=Decimal("1"))

    assert signal_lane_process(account_id=account.pk, symbol=LTC) == 1

    ltc.refresh_from_db()
    assert ltc.status == S.EXECUTED


# --- dry-run executor ----------------------------------------------------------------------------


def test_a_market_entry_fills_at_the_alert_price_with_the_dry_run_fee(send, btc, settings):
    settings.DRY_RUN_FEE_RATE = Decimal("0.001")

    signal = send(**BUY)

    entry = Order.objects.get(signal=signal)
    assert (entry.status, entry.side, entry.order_type, entry.purpose) == ("filled", "buy", "market", "entry")
    assert (entry.filled_qty, entry.average_price, entry.fees) == (Decimal("0.01"), Decimal("65000"), Decimal("0.65"))
    fill = Fill.objects.get(order=entry)
    assert (fill.qty, fill.price, fill.fee) == (Decimal("0.01"), Decimal("65000"), Decimal("0.65"))


def test_dry_run_slippage_fills_a_buy_above_the_alert_price(send, btc, settings):
    settings.DRY_RUN_SLIPPAGE_PCT = Decimal("0.1")

    signal = send(**BUY)  # 65000 + 0.1 %

    entry = Order.objects.get(signal=signal)
    assert entry.average_price == Decimal("65065")
    assert open_position().entry_price == Decimal("65065")


def test_dry_run_slippage_fills_a_closing_sell_below_the_alert_price_and_books_the_worse_pnl(send, btc, settings):
    send(**{**BUY, "price": "60000"})
    settings.DRY_RUN_SLIPPAGE_PCT = Decimal("0.5")

    send(symbol="BTCUSDT", action="close_long", price="61000")  # sells at 60695: (60695 - 60000) x 0.01

    position = Position.objects.get()
    assert (position.status, position.realized_pnl) == ("closed", Decimal("6.95"))


def test_a_market_entry_opens_a_position_at_the_alert_price(send, btc):
    send(**BUY, leverage=4, margin_mode="cross")

    position = Position.objects.get()
    assert (position.status, position.side, position.qty, position.entry_price) == (
        "open",
        "long",
        Decimal("0.01"),
        Decimal("65000"),
    )
    assert (position.leverage, position.margin_mode) == (4, "cross")


def test_stop_loss_and_take_profits_rest_as_reduce_only_orders_with_triggers_on_the_tick(send, btc):
    signal = send(
        **{**BUY, "price": "65432.1"},
        sl={"pct": "1.5"},  # 64450.6185
        tp=[{"pct": "2", "size_pct": 50}, {"pct": "4", "size_pct": 50}],  # 66740.742, 68049.384
    )

    legs = {
        purpose: (order.order_type, order.side, order.trigger_price, order.qty, order.status)
        for purpose, order in protective_orders(signal).items()
    }
    assert legs == {
        "stop_loss": ("stop_market", "sell", Decimal("64450.6"), Decimal("0.01"), "open"),
        "take_profit_1": ("take_profit_market", "sell", Decimal("66740.7"), Decimal("0.005"), "open"),
        "take_profit_2": ("take_profit_market", "sell", Decimal("68049.4"), Decimal("0.005"), "open"),
    }


def test_the_first_dry_run_trade_opens_the_wallet_at_the_starting_equity_and_books_fee_and_margin(send, btc, settings):
    settings.DRY_RUN_STARTING_EQUITY = Decimal("5000")
    settings.DRY_RUN_FEE_RATE = Decimal("0.001")

    send(**BUY)  # 0.01 BTC at 65000 and 5x: fee 0.65, margin 130

    opening, latest = BalanceSnapshot.objects.order_by("taken_at", "id")
    assert (opening.equity, opening.available, opening.wallet_balance) == (Decimal("5000"),) * 3
    assert (latest.wallet_balance, latest.used_margin, latest.available, latest.equity) == (
        Decimal("4999.35"),
        Decimal("130"),
        Decimal("4869.35"),
        Decimal("4999.35"),
    )


def test_closing_books_the_realized_pnl_less_fees_into_the_wallet_and_releases_the_margin(send, btc, settings):
    settings.DRY_RUN_STARTING_EQUITY = Decimal("10000")
    settings.DRY_RUN_FEE_RATE = Decimal("0.001")
    send(**{**BUY, "price": "60000"})  # fee 0.6, margin 120

    send(symbol="BTCUSDT", action="close_long", price="61000")  # fee 0.61, realized +10

    latest = BalanceSnapshot.objects.order_by("taken_at", "id").last()
    assert (latest.wallet_balance, latest.used_margin, latest.available, latest.equity) == (
        Decimal("10008.79"),
        Decimal("0"),
        Decimal("10008.79"),
        Decimal("10008.79"),
    )


def test_adding_to_a_position_averages_its_entry_price(send, btc):
    send(**{**BUY, "price": "60000"})
    send(**{**BUY, "price": "64000", "size": {"mode": "qty", "value": "0.03"}})

    position = open_position()
    assert (position.qty, position.entry_price) == (Decimal("0.04"), Decimal("63000"))


def test_close_long_closes_the_position_with_its_realized_pnl(send, btc):
    send(**{**BUY, "price": "60000"})

    close = send(symbol="BTCUSDT", action="close_long", price="61000")

    assert close.status == S.EXECUTED
    position = Position.objects.get()
    assert (position.status, position.close_reason, position.realized_pnl) == ("closed", "signal", Decimal("10"))
    order = Order.objects.get(signal=close)
    assert (order.purpose, order.side, order.reduce_only, order.qty, order.status) == (
        "close",
        "sell",
        True,
        Decimal("0.01"),
        "filled",
    )
    assert order.fills.get().realized_pnl == Decimal("10")


def test_closing_a_position_cancels_its_stop_loss_and_take_profit(send, btc):
    entry = send(**{**BUY, "price": "60000"}, sl={"price": "58000"}, tp=[{"price": "63000"}])

    send(symbol="BTCUSDT", action="close_long", price="61000")

    assert {purpose: order.status for purpose, order in protective_orders(entry).items()} == {
        "stop_loss": "canceled",
        "take_profit_1": "canceled",
    }


def test_a_close_with_size_pct_position_closes_that_share_and_leaves_the_rest_open(send, btc):
    send(**{**BUY, "price": "60000"})

    close = send(symbol="BTCUSDT", action="close_long", price="62000", size={"mode": "pct_position", "value": 50})

    assert Order.objects.get(signal=close).qty == Decimal("0.005")
    position = open_position()
    assert (position.qty, position.realized_pnl) == (Decimal("0.005"), Decimal("10"))


def test_a_close_with_a_qty_size_closes_only_that_quantity(send, btc):
    send(**{**BUY, "price": "60000"})

    close = send(symbol="BTCUSDT", action="close_long", price="62000", size={"mode": "qty", "value": "0.004"})

    assert Order.objects.get(signal=close).qty == Decimal("0.004")
    assert open_position().qty == Decimal("0.006")


def test_reverse_closes_the_long_and_opens_a_short(send, btc):
    send(**{**BUY, "price": "60000"})

    reverse = send(symbol="BTCUSDT", action="reverse", price="59000", size={"mode": "qty", "value": "0.02"})

    assert reverse.status == S.EXECUTED
    long = Position.objects.get(side="long")
    assert (long.status, long.close_reason, long.realized_pnl) == ("closed", "reverse", Decimal("-10"))
    short = open_position(side="short")
    assert (short.qty, short.entry_price) == (Decimal("0.02"), Decimal("59000"))


def test_a_limit_entry_rests_as_an_open_order_without_a_fill_or_position(send, btc):
    signal = send(**{**BUY, "price": "59000"}, order_type="limit")

    assert signal.status == S.EXECUTED
    order = Order.objects.get(signal=signal)
    assert (order.order_type, order.status, order.price) == ("limit", "open", Decimal("59000"))
    assert not Fill.objects.exists()
    assert not Position.objects.exists()


def test_cancel_cancels_resting_limit_orders_but_keeps_stop_loss_and_take_profit(send, btc):
    entry = send(**{**BUY, "price": "60000"}, sl={"price": "58000"})
    limit = send(**{**BUY, "price": "59000"}, order_type="limit")

    cancel = send(symbol="BTCUSDT", action="cancel")

    assert cancel.status == S.EXECUTED
    assert Order.objects.get(signal=limit).status == "canceled"
    assert protective_orders(entry)["stop_loss"].status == "open"
    assert open_position().qty == Decimal("0.01")


def test_update_replaces_the_stop_loss_and_take_profit_of_the_open_position(send, btc):
    entry = send(**{**BUY, "price": "60000"}, sl={"price": "58000"}, tp=[{"price": "63000"}])

    update = send(symbol="BTCUSDT", action="update", sl={"price": "59000"}, tp=[{"price": "64000"}])

    assert update.status == S.EXECUTED
    assert {order.status for order in protective_orders(entry).values()} == {"canceled"}
    new = {
        purpose: (order.trigger_price, order.qty, order.status) for purpose, order in protective_orders(update).items()
    }
    assert new == {
        "stop_loss": (Decimal("59000"), Decimal("0.01"), "open"),
        "take_profit_1": (Decimal("64000"), Decimal("0.01"), "open"),
    }


def test_an_update_with_no_open_position_is_rejected_with_the_reason(send, btc):
    signal = send(symbol="BTCUSDT", action="update", sl={"price": "59000"})

    assert signal.status == S.REJECTED
    assert signal.rejection_reason == "no open position on BTC/USDT:USDT to update"


def test_approving_an_update_whose_position_is_gone_ends_the_signal_instead_of_leaving_it_executing(manual, send, btc):
    signal = send(symbol="BTCUSDT", action="update", sl={"price": "59000"})

    with pytest.raises(SignalRejected, match="no open position"):
        signal_approve(signal=signal, actor=TRADER)

    signal.refresh_from_db()
    assert signal.status == S.REJECTED


# --- risk rules through the pipeline -------------------------------------------------------------


@pytest.mark.parametrize("profile", ["none", "disabled"])
def test_an_entry_on_a_symbol_that_is_not_whitelisted_is_rejected_naming_the_symbol(account, send, profile):
    if profile == "disabled":
        SymbolProfileFactory(account=account, symbol=BTC, enabled=False)

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "BTC/USDT:USDT is not whitelisted" in signal.rejection_reason
    assert not Order.objects.exists()


def test_the_kill_switch_blocks_entries(account, send, btc):
    account_set_trading_enabled(account=account, enabled=False, actor=TRADER)

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "kill switch" in signal.rejection_reason
    assert not Order.objects.exists()


def test_the_kill_switch_does_not_block_closing_a_position(account, send, btc):
    send(**{**BUY, "price": "60000"})
    account_set_trading_enabled(account=account, enabled=False, actor=TRADER)

    close = send(symbol="BTCUSDT", action="close_long", price="61000")

    assert close.status == S.EXECUTED
    assert Position.objects.get().status == "closed"


def test_an_entry_beyond_the_open_position_limit_is_rejected(account, limits, send, btc):
    limits.max_open_positions = 1
    limits.save()
    PositionFactory(account=account, symbol=LTC, entry_price=Decimal("80"), qty=Decimal("1"))

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "1 positions are open; the limit is 1" in signal.rejection_reason
    assert not Order.objects.exists()


def test_a_reverse_at_the_open_position_limit_is_allowed_as_it_replaces_the_position(limits, send, btc):
    limits.max_open_positions = 1
    limits.save()
    send(**{**BUY, "price": "60000"})

    reverse = send(symbol="BTCUSDT", action="reverse", price="59000", size={"mode": "qty", "value": "0.01"})

    assert reverse.status == S.EXECUTED
    assert open_position(side="short").qty == Decimal("0.01")


def test_an_entry_beyond_the_trades_per_day_limit_is_rejected(limits, send, btc):
    limits.max_trades_per_day = 1
    limits.save()
    send(**BUY)

    second = send(**BUY)

    assert second.status == S.REJECTED
    assert "1 trades today; the limit is 1" in second.rejection_reason
    assert Order.objects.filter(purpose="entry").count() == 1


def test_a_first_dry_run_entry_needing_more_margin_than_the_starting_wallet_is_rejected(send, btc, settings):
    settings.DRY_RUN_STARTING_EQUITY = Decimal("5000")  # no balance recorded yet: the wallet opens with this

    signal = send(**{**BUY, "size": {"mode": "qty", "value": "1"}})  # 1 BTC at 65000 and 5x: margin 13000

    assert signal.status == S.REJECTED
    assert "required margin 13000.00 USDT is more than the available 5000 USDT" in signal.rejection_reason
    assert not Order.objects.exists()


def test_an_entry_with_leverage_above_the_symbol_maximum_is_rejected(account, send):
    SymbolProfileFactory(account=account, symbol=BTC, leverage=5, max_leverage=10)

    signal = send(**BUY, leverage=15)

    assert signal.status == S.REJECTED
    assert "leverage 15x is above BTC/USDT:USDT's maximum 10x" in signal.rejection_reason
    assert not Order.objects.exists()


def test_an_entry_with_leverage_above_the_markets_maximum_is_rejected(account, send):
    SymbolProfileFactory(account=account, symbol=ADA, leverage=5, max_leverage=20)

    signal = send(symbol="ADAUSDT", action="buy", price="0.5", size={"mode": "qty", "value": "100"}, leverage=10)

    assert signal.status == S.REJECTED
    assert "5x" in signal.rejection_reason


def _lose_100_usdt_today(send) -> None:
    """Buy 0.1 BTC at 60000 and sell it at 59000: -100 USDT realized, plus fees."""
    send(**{**BUY, "price": "60000", "size": {"mode": "qty", "value": "0.1"}})
    send(symbol="BTCUSDT", action="close_long", price="59000")


def test_a_daily_loss_breach_rejects_the_signal_and_turns_auto_trade_off_with_an_audit_record(
    account, limits, send, btc
):
    limits.max_daily_loss_usdt = Decimal("50")
    limits.save()
    _lose_100_usdt_today(send)

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "today's loss" in signal.rejection_reason
    account.refresh_from_db()
    assert account.auto_trade is False
    switch = AuditEvent.objects.get(action="tradingaccount.auto_trade", object_id=str(account.pk))
    assert switch.after == {"auto_trade": False}
    assert switch.reason.startswith("risk breach: today's loss")


def test_a_daily_loss_breach_is_published_as_a_risk_breach_event(
    account, limits, send, btc, listen, django_capture_on_commit_callbacks
):
    limits.max_daily_loss_usdt = Decimal("50")
    limits.save()
    _lose_100_usdt_today(send)
    read = listen("risk.breach")

    with django_capture_on_commit_callbacks(execute=True):
        send(**BUY)

    [event] = read()
    assert (event["account_id"], event["rule"]) == (account.pk, "daily_loss")
    assert "today's loss" in event["reason"]


def test_a_daily_loss_breach_flattens_open_positions_when_auto_flatten_is_on(account, limits, send, btc):
    limits.max_daily_loss_usdt = Decimal("50")
    limits.auto_flatten_on_daily_loss = True
    limits.save()
    SymbolProfileFactory(account=account, symbol=LTC, leverage=5)
    send(symbol="LTCUSDT", action="buy", price="80", size={"mode": "qty", "value": "1"})
    _lose_100_usdt_today(send)

    send(**BUY)

    ltc = Position.objects.get(symbol=LTC)
    assert (ltc.status, ltc.close_reason) == ("closed", "manual")
    flatten = Order.objects.get(symbol=LTC, purpose="close")
    assert (flatten.signal, flatten.status, flatten.reduce_only) == (None, "filled", True)
    assert not Position.objects.filter(status="open").exists()


# --- sizing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "qty", "message"),
    [
        ("65000", "0.00005", "quantity 0.0000 is below the minimum 0.0001"),
        ("10000", "0.0001", "order value 1 USDT is below the minimum 2 USDT"),
    ],
    ids=["below-min-qty", "below-min-notional"],
)
def test_an_order_below_the_market_minimum_is_rejected_not_rounded_up(send, btc, price, qty, message):
    signal = send(**{**BUY, "price": price, "size": {"mode": "qty", "value": qty}})

    assert signal.status == S.REJECTED
    assert message in signal.rejection_reason
    assert not Order.objects.exists()


def test_an_entry_with_no_size_and_no_profile_default_is_rejected_with_a_clear_reason(send, btc):
    signal = send(symbol="BTCUSDT", action="buy", price="65000")

    assert signal.status == S.REJECTED
    assert signal.rejection_reason == (
        "no order size: give `size` in the alert or a default order size on the BTC/USDT:USDT symbol profile"
    )


def test_an_entry_without_size_uses_the_symbol_profiles_default_size(account, send):
    SymbolProfileFactory(account=account, symbol=BTC, order_size_mode="usdt", order_size_value=Decimal("650"))

    signal = send(symbol="BTCUSDT", action="buy", price="65000")

    assert Order.objects.get(signal=signal).qty == Decimal("0.01")


# --- legacy TVTelegramBingX alerts ---------------------------------------------------------------

LEGACY_LONG = {
    "symbol": "BTCUSDT",
    "action": "LONG_BUY",
    "price": "62500",
    "trade_settings": {"margin_usdt": 50, "leverage": 10, "sl": 1.5, "tp1": 2, "tp1_sell": 50},
}


def test_a_legacy_alert_stores_its_trade_settings_on_the_symbol_profile(account, send, btc):
    signal = send(**LEGACY_LONG)

    btc.refresh_from_db()
    assert (btc.order_size_mode, btc.order_size_value, btc.leverage) == ("margin_usdt", Decimal("50"), 10)
    assert (btc.stop_loss_mode, btc.stop_loss_value) == ("pct", Decimal("1.5"))
    assert list(btc.take_profit_levels.values_list("level", "mode", "value", "size_pct")) == [
        (1, "pct", Decimal("3"), Decimal("50"))
    ]
    assert btc.enabled is True
    change = AuditEvent.objects.get(action="symbolprofile.settings_from_alert", object_id=str(btc.pk))
    assert change.reason == f"signal {signal.pk}"
    assert signal.status == S.EXECUTED
    assert Order.objects.get(signal=signal, purpose="entry").qty == Decimal("0.008")  # 50 x 10 / 62500


def test_a_legacy_alert_for_an_unlisted_symbol_creates_a_disabled_profile_and_is_rejected(account, send):
    signal = send(**LEGACY_LONG)

    profile = SymbolProfile.objects.get(account=account, symbol=BTC)
    assert profile.enabled is False
    assert (profile.order_size_mode, profile.order_size_value, profile.leverage) == ("margin_usdt", Decimal("50"), 10)
    assert signal.status == S.REJECTED
    assert "BTC/USDT:USDT is not whitelisted" in signal.rejection_reason
    assert not Order.objects.exists()


def test_a_legacy_alert_cannot_raise_leverage_above_the_profiles_maximum(account, send, btc):
    signal = send(**{**LEGACY_LONG, "trade_settings": {"leverage": 50}})

    assert signal.status == S.REJECTED
    assert "leverage 50 is above BTC/USDT:USDT's maximum 20" in signal.rejection_reason
    btc.refresh_from_db()
    assert (btc.leverage, btc.max_leverage) == (5, 20)
    assert not AuditEvent.objects.filter(action="symbolprofile.settings_from_alert").exists()


# --- idempotency ---------------------------------------------------------------------------------


def test_handing_the_lane_over_again_after_execution_places_no_second_order(account, send, btc):
    signal = send(**BUY, sl={"pct": "1"})
    assert Order.objects.filter(signal=signal).count() == 2  # entry and stop loss

    assert signal_lane_process(account_id=account.pk, symbol=BTC) == 0

    assert Order.objects.count() == 2
    assert Fill.objects.count() == 1
    signal.refresh_from_db()
    assert signal.status == S.EXECUTED


def test_processing_an_executed_signal_again_is_a_no_op(send, btc):
    signal = send(**BUY)
    orders = Order.objects.count()

    signal_process(signal)

    assert Order.objects.count() == orders
    signal.refresh_from_db()
    assert signal.status == S.EXECUTED


def test_the_same_alert_delivered_twice_is_processed_once(client, account, btc):
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    body = json.dumps({"secret": secret, "alert_id": "ema-cross-1", **BUY})

    first = client.post("/webhook/tradingview", body, content_type="application/json")
    second = client.post("/webhook/tradingview", body, content_type="application/json")

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["duplicate"] is True
    assert Signal.objects.count() == 1
    assert Order.objects.count() == 1


def test_client_order_ids_are_deterministic_lowercase_and_at_most_40_characters(account, send, btc):
    signal = send(**BUY, sl={"pct": "1"}, tp=[{"pct": "2"}])

    orders = {order.purpose: order.client_order_id for order in Order.objects.filter(signal=signal)}
    assert set(orders) == {"entry", "stop_loss", "take_profit_1"}
    for leg, client_order_id in orders.items():
        assert client_order_id == client_order_id_for(account_id=account.pk, signal_id=signal.pk, leg=leg)
        assert client_order_id == client_order_id.lower()
        assert len(client_order_id) <= 40
    assert len(set(orders.values())) == 3


# --- sweeper -------------------------------------------------------------------------------------


def test_the_sweeper_hands_over_signals_left_received_too_long_and_they_execute(account, btc, settings):
    settings.SIGNAL_SWEEP_AFTER_SECONDS = 30
    stuck = received_signal(account, received_at=timezone.now() - timedelta(seconds=31))

    assert signals_sweep() == 1

    stuck.refresh_from_db()
    assert stuck.status == S.EXECUTED
    assert Order.objects.get(signal=stuck).status == "filled"


def test_the_sweeper_leaves_recently_received_signals_to_their_hand_over(account, btc, settings):
    settings.SIGNAL_SWEEP_AFTER_SECONDS = 30
    fresh = received_signal(account, received_at=timezone.now() - timedelta(seconds=5))

    assert signals_sweep() == 0

    fresh.refresh_from_db()
    assert fresh.status == S.RECEIVED
