"""End to end on BingX: webhook -> pipeline -> our adapter -> real ccxt -> the fake BingX -> the database.

Nothing is mocked: the fake (tests/fakes/bingx) speaks BingX's wire protocol over loopback, checks
signatures and timestamps, fills market orders at its mark price, rests limit and trigger orders, and
can be told to fail (timeouts before or after executing, 5xx, 429, refusals). Signals are processed
inline (SIGNAL_PROCESSING="inline"), so a webhook call returns with the signal finished. Resting orders
are followed by ``orders_poll``, as Celery beat runs it.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from signals_app.models import Signal
from signals_app.pipeline import signals_sweep
from tests.conftest_bingx import webhook_sender
from tests.fakes.bingx import Fault
from trading.execution import orders_poll
from trading.models import Order, Position

pytestmark = pytest.mark.django_db

S = Signal.Status
BTC = "BTC/USDT:USDT"
ORDER_PATH = "/openApi/swap/v2/trade/order"
BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def send(client, account):
    return webhook_sender(client, account, prefix="e2e")


def entries_sent(bingx) -> list:
    return bingx.requests_for(ORDER_PATH, "POST")


def by_purpose(signal: Signal) -> dict[str, Order]:
    return {order.purpose: order for order in Order.objects.filter(signal=signal)}


# --- entries ------------------------------------------------------------------------------------


def test_a_market_long_fills_on_bingx_and_is_recorded_with_its_fill_and_position(send, bingx, on_bingx):
    signal = send(**BUY)

    assert signal.status == S.EXECUTED, signal.rejection_reason
    [placed] = [order for order in on_bingx.orders if order.type == "MARKET"]
    entry = by_purpose(signal)["entry"]
    assert (placed.side, placed.position_side, placed.qty, placed.status) == ("BUY", "BOTH", Decimal("0.01"), "FILLED")
    assert placed.client_order_id == entry.client_order_id
    assert (entry.status, entry.exchange_order_id, entry.filled_qty) == (
        "filled",
        str(placed.order_id),
        Decimal("0.01"),
    )
    assert entry.average_price == Decimal("65000")
    [fill] = entry.fills.all()
    assert (fill.qty, fill.price, fill.fee) == (Decimal("0.01"), Decimal("65000"), Decimal("0.325"))
    position = Position.objects.get(status="open")
    assert (position.side, position.qty, position.entry_price, position.leverage, position.margin_mode) == (
        "long",
        Decimal("0.01"),
        Decimal("65000"),
        5,
        "isolated",
    )


def test_stop_loss_and_take_profit_go_to_bingx_as_reduce_only_triggers_once_the_entry_fills(send, on_bingx):
    signal = send(**BUY, sl={"pct": "1.5"}, tp=[{"pct": "2", "size_pct": 100}])  # 64025, 66300

    triggers = {order.type: order for order in on_bingx.orders if order.type != "MARKET"}
    assert set(triggers) == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    assert (triggers["STOP_MARKET"].side, triggers["STOP_MARKET"].stop_price) == ("SELL", Decimal("64025"))
    assert (triggers["TAKE_PROFIT_MARKET"].side, triggers["TAKE_PROFIT_MARKET"].stop_price) == (
        "SELL",
        Decimal("66300"),
    )
    assert all(order.reduce_only and order.status == "NEW" for order in triggers.values())
    orders = by_purpose(signal)
    assert (orders["stop_loss"].status, orders["stop_loss"].trigger_price) == ("open", Decimal("64025"))
    assert (orders["take_profit_1"].status, orders["take_profit_1"].trigger_price) == ("open", Decimal("66300"))


def test_a_stop_loss_hit_on_bingx_closes_the_position_with_its_realized_loss(send, bingx, on_bingx, account):
    signal = send(**BUY, sl={"pct": "1.5"}, tp=[{"pct": "2", "size_pct": 100}])

    bingx.set_mark_price("BTC-USDT", "64000")  # through the stop at 64025
    orders_poll(account=account)

    orders = by_purpose(signal)
    assert orders["stop_loss"].status == "filled"
    assert orders["take_profit_1"].status == "canceled"
    position = Position.objects.get()
    assert (position.status, position.close_reason) == ("closed", "stop_loss")
    assert position.realized_pnl == Decimal("-10")  # (64000 - 65000) x 0.01, as BingX booked it
    assert on_bingx.position("BTC-USDT", "long") is None


def test_a_limit_entry_rests_then_fills_later_and_only_then_gets_its_stop_loss(send, bingx, on_bingx, account):
    signal = send(**{**BUY, "order_type": "limit", "price": "64000"}, sl={"price": "63000"})

    assert signal.status == S.EXECUTED
    assert by_purpose(signal)["entry"].status == "open"
    assert [order.type for order in on_bingx.orders] == ["LIMIT"]
    assert not Position.objects.exists()

    bingx.set_mark_price("BTC-USDT", "63900")
    orders_poll(account=account)

    orders = by_purpose(signal)
    assert (orders["entry"].status, orders["entry"].average_price) == ("filled", Decimal("64000"))
    assert (orders["stop_loss"].status, orders["stop_loss"].trigger_price) == ("open", Decimal("63000"))
    assert Position.objects.get(status="open").entry_price == Decimal("64000")


# --- closing and reversing -------------------------------------------------------------------------


def test_a_close_sends_a_reduce_only_market_order_and_closes_the_position_with_its_pnl(send, bingx, on_bingx):
    send(**BUY, sl={"pct": "1.5"})
    bingx.set_mark_price("BTC-USDT", "66000")

    signal = send(symbol="BTCUSDT.P", action="close_long", price="66000")

    assert signal.status == S.EXECUTED, signal.rejection_reason
    close = by_purpose(signal)["close"]
    placed = on_bingx.order_by_client_id(close.client_order_id)
    assert (placed.side, placed.reduce_only, placed.status) == ("SELL", True, "FILLED")
    position = Position.objects.get()
    assert (position.status, position.close_reason, position.realized_pnl) == ("closed", "signal", Decimal("10"))
    assert Order.objects.get(purpose="stop_loss").status == "canceled"
    assert on_bingx.position("BTC-USDT", "long") is None


def test_a_reverse_closes_first_confirms_then_opens_the_other_side(send, bingx, on_bingx):
    send(**BUY)

    signal = send(**{**BUY, "action": "reverse"})

    assert signal.status == S.EXECUTED, signal.rejection_reason
    sent = [(order.side, order.reduce_only) for order in on_bingx.orders]
    assert sent == [("BUY", False), ("SELL", True), ("SELL", False)]
    assert on_bingx.position("BTC-USDT", "long") is None
    assert on_bingx.position("BTC-USDT", "short").qty == Decimal("0.01")
    closed, opened = Position.objects.order_by("opened_at", "id")
    assert (closed.side, closed.status, closed.close_reason) == ("long", "closed", "reverse")
    assert (opened.side, opened.status, opened.qty) == ("short", "open", Decimal("0.01"))


def test_hedge_mode_opens_and_closes_by_position_side_without_reduce_only(send, account, bingx, on_bingx):
    on_bingx.set_hedge(True)
    account.position_mode = "hedge"
    account.save(update_fields=["position_mode"])

    send(**BUY)
    signal = send(symbol="BTCUSDT.P", action="close_long", price="65000")

    assert signal.status == S.EXECUTED, signal.rejection_reason
    opened, closed = on_bingx.orders
    assert (opened.side, opened.position_side) == ("BUY", "LONG")
    assert (closed.side, closed.position_side, closed.reduce_only) == ("SELL", "LONG", False)
    assert "reduceOnly" not in entries_sent(bingx)[-1].query
    assert Position.objects.get().status == "closed"


# --- margin mode and leverage ----------------------------------------------------------------------


def test_margin_mode_then_leverage_are_set_on_bingx_before_the_entry(send, bingx, on_bingx, account):
    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT")) != ("isolated", 5)

    send(**BUY)

    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT", "LONG")) == ("isolated", 5)
    paths = [r.path for r in bingx.state.requests if r.method == "POST"]
    assert paths.index("/openApi/swap/v2/trade/marginType") < paths.index("/openApi/swap/v2/trade/leverage")
    assert paths.index("/openApi/swap/v2/trade/leverage") < paths.index(ORDER_PATH)
    profile = account.symbol_profiles.get()
    assert profile.last_sync_ok is True
    assert "isolated, 5x" in profile.last_sync_result


def test_a_refused_leverage_change_restores_the_margin_mode_and_rejects_the_signal(send, bingx, on_bingx, account):
    before = on_bingx.margin_mode("BTC-USDT")
    bingx.fault("POST", "/openApi/swap/v2/trade/leverage", Fault.error(109400, "leverage not allowed now"))

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "leverage not allowed now" in signal.rejection_reason
    assert "restored margin mode" in signal.rejection_reason
    assert on_bingx.margin_mode("BTC-USDT") == before
    assert not entries_sent(bingx)
    profile = account.symbol_profiles.get()
    assert profile.last_sync_ok is False


# --- exactly once ------------------------------------------------------------------------------------


def test_the_same_alert_twice_places_one_order_on_bingx(send, bingx, on_bingx):
    first = send(**BUY, alert_id="same")
    again = send(**BUY, alert_id="same", expect=200)

    assert again.pk == first.pk
    assert len(entries_sent(bingx)) == 1
    assert len(on_bingx.orders) == 1


def test_a_timeout_after_bingx_executed_is_resolved_by_client_id_to_exactly_one_order(send, bingx, on_bingx):
    bingx.fault("POST", ORDER_PATH, Fault.timeout_after_execute(hold_seconds=2))

    signal = send(**BUY)

    assert signal.status == S.EXECUTED, signal.rejection_reason
    assert len(on_bingx.orders) == 1
    assert len(entries_sent(bingx)) == 1  # looked up, never sent again
    entry = by_purpose(signal)["entry"]
    assert (entry.status, entry.exchange_order_id) == ("filled", str(on_bingx.orders[0].order_id))
    statuses = list(entry_audit_statuses(entry))
    assert "unknown" in statuses


def entry_audit_statuses(order: Order):
    from trading.models import AuditEvent

    for event in AuditEvent.objects.filter(object_type="trading.order", object_id=str(order.pk)).order_by("id"):
        if "status" in event.after:
            yield event.after["status"]


def test_a_timeout_before_bingx_executed_is_sent_again_and_placed_once(send, bingx, on_bingx):
    bingx.fault("POST", ORDER_PATH, Fault.timeout_before_execute(hold_seconds=2))

    signal = send(**BUY)

    assert signal.status == S.EXECUTED, signal.rejection_reason
    assert len(entries_sent(bingx)) == 2
    assert len(on_bingx.orders) == 1
    assert by_purpose(signal)["entry"].status == "filled"


def test_a_rate_limited_order_is_sent_again_after_a_pause_and_placed_once(send, bingx, on_bingx):
    bingx.fault("POST", ORDER_PATH, Fault.rate_limit(), times=2)

    signal = send(**BUY)

    assert signal.status == S.EXECUTED, signal.rejection_reason
    assert len(entries_sent(bingx)) == 3
    assert len(on_bingx.orders) == 1


def test_insufficient_margin_rejects_the_signal_with_bingx_reason_and_is_not_retried(send, bingx, on_bingx):
    on_bingx.set_wallet_balance(Decimal("20"))  # 0.01 BTC at 5x needs 130 USDT

    signal = send(**BUY)

    assert signal.status == S.REJECTED
    assert "101204" in signal.rejection_reason
    assert "Insufficient margin" in signal.rejection_reason
    assert len(entries_sent(bingx)) == 1
    assert by_purpose(signal)["entry"].status == "rejected"


# --- circuit breaker and clock -------------------------------------------------------------------------


def test_the_circuit_breaker_opens_after_repeated_transport_failures_and_closes_when_bingx_answers(
    send, bingx, on_bingx, account, settings, listen, django_capture_on_commit_callbacks
):
    settings.EXCHANGE_BREAKER_FAILURES = 3
    settings.EXCHANGE_BREAKER_OPEN_SECONDS = 1
    alerts = listen("alerts.circuit_open")
    bingx.fault("GET", "/openApi/swap/v2/trade/marginType", Fault.http_error(status=503), times=None)

    with django_capture_on_commit_callbacks(execute=True):
        failed = send(**BUY)

    assert failed.status == S.FAILED
    account.refresh_from_db()
    assert account.exchange_health == "degraded"
    assert [event["account_id"] for event in alerts()] == [account.pk]
    seen = len(bingx.state.requests)
    paused = send(**BUY)
    assert paused.status == S.FAILED
    assert "paused" in paused.rejection_reason
    assert len(bingx.state.requests) == seen  # nothing sent while open

    bingx.clear_faults()
    time.sleep(1.1)
    healthy = send(**BUY)

    assert healthy.status == S.EXECUTED, healthy.rejection_reason
    account.refresh_from_db()
    assert account.exchange_health == "ok"


def test_requests_are_stamped_with_bingx_time_when_its_clock_is_off(send, bingx, on_bingx):
    bingx.set_clock_offset_ms(8_000)  # beyond BingX's 5 s window if uncorrected

    signal = send(**BUY)

    assert signal.status == S.EXECUTED, signal.rejection_reason
    [placed] = entries_sent(bingx)
    stamped = int(placed.query["timestamp"])
    assert abs(stamped - (time.time() * 1000 + 8_000)) < 2_000


def test_trading_is_refused_with_an_alert_when_bingx_time_cannot_be_read(
    send, bingx, on_bingx, listen, django_capture_on_commit_callbacks
):
    alerts = listen("alerts.clock_skew")
    bingx.fault("GET", "/openApi/swap/v2/server/time", Fault.http_error(status=503), times=None)

    with django_capture_on_commit_callbacks(execute=True):
        signal = send(**BUY)

    assert signal.status == S.FAILED
    assert "cannot read BingX's clock" in signal.rejection_reason
    assert not entries_sent(bingx)
    assert len(alerts()) == 1


# --- other modes ---------------------------------------------------------------------------------------


def test_a_dry_run_account_places_nothing_on_bingx_but_records_the_trade(send, bingx, account):
    account.mode = "dry_run"
    account.save(update_fields=["mode"])

    signal = send(**BUY)

    assert signal.status == S.EXECUTED
    assert not [r for r in bingx.state.requests if "/trade/" in r.path or "/user/" in r.path]
    assert by_purpose(signal)["entry"].fills.count() == 1
    assert Position.objects.get().status == "open"


def test_an_order_whose_fate_is_unknown_is_resolved_by_the_sweeper(send, bingx, on_bingx, settings):
    settings.EXCHANGE_RETRY_ATTEMPTS = 1  # the lookup gets one try, and fails too
    bingx.fault("POST", ORDER_PATH, Fault.timeout_after_execute(hold_seconds=2))
    bingx.fault("GET", ORDER_PATH, Fault.http_error(status=503))

    signal = send(**BUY)

    assert signal.status == S.EXECUTING
    assert by_purpose(signal)["entry"].status == "unknown"
    settings.SIGNAL_SWEEP_AFTER_SECONDS = 0
    signals_sweep()
    signal.refresh_from_db()
    assert signal.status == S.EXECUTED
    assert by_purpose(signal)["entry"].status == "filled"
    assert len(on_bingx.orders) == 1


def test_the_stop_loss_is_placed_even_when_reading_the_new_position_back_fails(send, bingx, on_bingx):
    bingx.fault("GET", "/openApi/swap/v2/user/positions", Fault.http_error(status=503), times=None)

    signal = send(**BUY, sl={"pct": "1.5"})

    assert signal.status == S.EXECUTED, signal.rejection_reason
    assert [order.type for order in on_bingx.orders] == ["MARKET", "STOP_MARKET"]
    assert by_purpose(signal)["stop_loss"].status in ("submitted", "open")
