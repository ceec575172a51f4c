"""The user-data stream consumer against the fake BingX's WebSocket: nothing of ours or ccxt's is mocked.

The consumer (``streams_run``) runs in its own thread and event loop, as ``manage.py run_stream`` runs it,
with short backoff and timeouts. Orders "placed by hand in BingX's app" are placed on the fake with a real
ccxt client. Tests that run the consumer use transactional databases: its worker thread has its own
connection and must see committed rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import time
from decimal import Decimal
from queue import SimpleQueue

import pytest
from django.db import OperationalError, connection

import trading.stream as trading_stream
from tests.conftest_bingx import webhook_sender
from trading.exchange.stream import parse_event
from trading.execution import order_advance, orders_poll
from trading.management.commands.run_stream import pool_shortfall
from trading.models import BalanceSnapshot, Fill, Order, Position, StreamState
from trading.stream import (
    AccountStream,
    StreamMemory,
    StreamTimings,
    stream_event_apply,
    stream_events_apply,
    stream_mark_down,
    streams_run,
)
from trading.stream_apply import external_client_order_id

BTC = "BTC/USDT:USDT"
BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}
WAIT_SECONDS = 8
FAST = StreamTimings(
    keepalive_seconds=3600,
    idle_timeout_seconds=10,
    connect_timeout_seconds=2,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    down_alert_seconds=60,
    accounts_refresh_seconds=60,
)

live_db = pytest.mark.django_db(transaction=True)


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def send(client, account):
    return webhook_sender(client, account, prefix="stream")


class Running:
    def __init__(self, timings: StreamTimings) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, args=(timings,), name="test-stream", daemon=True)
        self.thread.start()

    def _run(self, timings: StreamTimings) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(streams_run(self.stop, timings=timings))
        self.loop.close()

    def close(self) -> None:
        """Stop the consumer (and with it its database writes) and wait for it."""
        if not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the consumer did not stop"


@pytest.fixture
def streaming(account, bingx):
    """Start the consumer; returns a function that starts it (with other timings if given) once."""
    started: list[Running] = []

    def start(timings: StreamTimings = FAST, *, connected: bool = True) -> Running:
        running = Running(timings)
        started.append(running)
        if connected:
            until(lambda: StreamState.objects.filter(account=account, connected=True).exists())
        return running

    yield start
    for running in started:
        running.close()


def until(condition, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except OperationalError:  # SQLite's shared in-memory test database: a table locked by the consumer
            result = None
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def retrying(action):
    """Run ``action`` once it gets the database (SQLite's in-memory test database takes one writer at a time)."""
    return until(lambda: action() or True)


def exchange_matches_database(on_bingx, account) -> bool:
    """Every order's status and executed quantity, and every open position, agree."""
    for placed in on_bingx.orders:
        order = Order.objects.filter(account=account, exchange_order_id=str(placed.order_id)).first()
        if order is None:
            return False
        theirs = {"CANCELLED": "canceled", "NEW": "open"}.get(placed.status, placed.status.lower())
        if order.status != theirs or order.filled_qty != placed.executed_qty:
            return False
        if sum(order.fills.values_list("qty", flat=True), Decimal(0)) != placed.executed_qty:
            return False
    theirs = {(p.symbol, p.position_side.lower(), p.qty, p.avg_price) for p in on_bingx.positions.values()}
    ours = {
        (p.symbol.split("/")[0] + "-USDT", p.side, p.qty, p.entry_price)
        for p in Position.objects.filter(account=account, status="open")
    }
    return theirs == ours


# --- the stream reaches the database --------------------------------------------------------------


@live_db
def test_it_records_an_order_placed_by_hand_with_its_fill_position_and_balance(streaming, by_hand, on_bingx, account):
    stream = streaming()

    placed = by_hand.create_order(BTC, "market", "buy", 0.01)

    until(lambda: Order.objects.filter(exchange_order_id=placed["id"], status="filled").exists())
    until(lambda: BalanceSnapshot.objects.filter(account=account, wallet_balance=on_bingx.wallet_balance).exists())
    stream.close()
    order = Order.objects.get(exchange_order_id=placed["id"])
    assert order.client_order_id == external_client_order_id(placed["id"]) == f"x{placed['id']}"
    assert (order.signal, order.purpose, order.side, order.filled_qty) == (None, "entry", "buy", Decimal("0.01"))
    [fill] = order.fills.all()
    assert (fill.exchange_trade_id, fill.qty, fill.price) == (f"{placed['id']}:0.01", Decimal("0.01"), Decimal("65000"))
    position = Position.objects.get(account=account, status="open")
    assert (position.side, position.qty, position.entry_price) == ("long", Decimal("0.01"), Decimal("65000"))
    assert StreamState.objects.get(account=account).last_event_at is not None


@live_db
def test_an_entry_filled_while_streaming_gets_its_stop_loss_exactly_once(streaming, send, bingx, on_bingx, account):
    signal = send(**{**BUY, "order_type": "limit", "price": "64000"}, sl={"price": "63000"})
    stream = streaming()

    bingx.set_mark_price("BTC-USDT", "63900")  # the limit fills: the stream sees it first
    if connection.vendor != "postgresql":  # SQLite's test database cannot take the poller's writes meanwhile
        until(lambda: Order.objects.filter(signal=signal, purpose="stop_loss", status="open").exists())
    retrying(lambda: orders_poll(account=account))  # and the poller finds it filled too

    until(lambda: Order.objects.filter(signal=signal, purpose="stop_loss", status="open").exists())
    until(lambda: exchange_matches_database(on_bingx, account))
    stream.close()
    assert [o.type for o in on_bingx.orders].count("STOP_MARKET") == 1
    assert Order.objects.filter(signal=signal, purpose="stop_loss").count() == 1


# --- idempotency -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_duplicated_and_out_of_order_events_change_nothing_twice(by_hand, on_bingx, account, bingx):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    bingx.set_mark_price("BTC-USDT", "66000")
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    events = [parse_event(raw) for raw in on_bingx.events]
    assert [type(e).__name__ for e in events].count("AccountUpdate") == 2

    for event in events:
        stream_event_apply(account=account, event=event)
    first = (
        sorted(Order.objects.values_list("client_order_id", "status", "filled_qty")),
        sorted(Fill.objects.values_list("exchange_trade_id", "qty", "realized_pnl")),
        list(Position.objects.values_list("status", "qty", "close_reason", "realized_pnl")),
        BalanceSnapshot.objects.count(),
    )
    for event in [*events, *reversed(events)]:  # every event again, then all of them newest first
        stream_event_apply(account=account, event=event)

    again = (
        sorted(Order.objects.values_list("client_order_id", "status", "filled_qty")),
        sorted(Fill.objects.values_list("exchange_trade_id", "qty", "realized_pnl")),
        list(Position.objects.values_list("status", "qty", "close_reason", "realized_pnl")),
        BalanceSnapshot.objects.count(),
    )
    assert again == first
    assert [status for _, status, _ in first[0]] == ["filled", "filled"]
    assert len(first[1]) == 2
    assert first[2] == [("closed", Decimal("0"), "manual", Decimal("10"))]  # (66000 - 65000) x 0.01


@pytest.fixture
def round_trip(by_hand, on_bingx, bingx):
    """The events of a market buy and its reduce-only close (two orders, two account updates), parsed."""
    by_hand.create_order(BTC, "market", "buy", 0.01)
    bingx.set_mark_price("BTC-USDT", "66000")
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    return [parse_event(raw) for raw in on_bingx.events]


def database_state():
    return (
        sorted(Order.objects.values_list("client_order_id", "status", "filled_qty")),
        sorted(Fill.objects.values_list("exchange_trade_id", "qty", "realized_pnl")),
        list(Position.objects.values_list("status", "qty", "close_reason", "realized_pnl")),
    )


@pytest.mark.django_db
def test_a_burst_is_applied_in_one_go_with_its_repeats_once_and_one_balance_snapshot(round_trip, account):
    memory = StreamMemory(account.pk)

    applied = stream_events_apply(account=account, events=[*round_trip, *round_trip[::2]], memory=memory)

    assert applied == len(round_trip)
    orders, fills, positions = database_state()
    assert [status for _, status, _ in orders] == ["filled", "filled"]
    assert len(fills) == 2
    assert positions == [("closed", Decimal("0"), "manual", Decimal("10"))]
    assert [type(event).__name__ for event in round_trip].count("AccountUpdate") == 2
    # One from the burst's wallets (the last one pushed), and one read back over REST for its filled orders.
    assert BalanceSnapshot.objects.filter(account=account).count() == 1 + 1
    assert stream_events_apply(account=account, events=round_trip, memory=memory) == 0  # all known: dropped
    assert BalanceSnapshot.objects.filter(account=account).count() == 1 + 1


@pytest.mark.django_db
def test_the_applier_loop_takes_what_is_queued_in_bursts_until_the_sockets_end(round_trip, account, monkeypatch):
    stream = AccountStream(account.pk, FAST)
    stream.account = account
    stream.memory.follow_ups = None  # the fills' follow-ups on this thread: no follow-up thread left behind
    bursts: list[int] = []
    apply = trading_stream.stream_events_apply

    def counted(*, account, events, memory):
        bursts.append(len(events))
        return apply(account=account, events=events, memory=memory)

    monkeypatch.setattr(trading_stream, "stream_events_apply", counted)
    monkeypatch.setattr(trading_stream, "BURST_EVENTS", 3)
    inbox: SimpleQueue = SimpleQueue()
    for event in round_trip:
        inbox.put(event)
    inbox.put(trading_stream._END)
    inbox.put(round_trip[0])  # after the socket's end: not taken
    after_each: list[int] = []

    stream.events_apply_queued(inbox, on_burst=lambda: after_each.append(len(bursts)))

    assert bursts == [3, len(round_trip) - 3]
    assert after_each == [1, 2]
    assert [status for _, status, _ in database_state()[0]] == ["filled", "filled"]
    assert inbox.get_nowait() is round_trip[0]


@pytest.mark.django_db
def test_the_applier_loop_ends_on_a_database_error_and_raises_it(round_trip, account, monkeypatch):
    stream = AccountStream(account.pk, FAST)
    stream.account = account
    stream.memory.follow_ups = None  # the fills' follow-ups on this thread: no follow-up thread left behind

    def database_gone(**_):
        raise OperationalError("the server closed the connection")

    monkeypatch.setattr(trading_stream, "stream_events_apply", database_gone)
    inbox: SimpleQueue = SimpleQueue()
    for event in round_trip:
        inbox.put(event)

    with pytest.raises(OperationalError):
        stream.events_apply_queued(inbox)


@pytest.mark.django_db
def test_known_repeats_are_dropped_before_the_database(round_trip, account, django_assert_num_queries):
    memory = StreamMemory(account.pk)
    stream_events_apply(account=account, events=round_trip, memory=memory)

    with django_assert_num_queries(0):
        assert stream_events_apply(account=account, events=[*round_trip, *reversed(round_trip)], memory=memory) == 0


def our_limit_buys_filled(bingx, on_bingx, account, count: int, *, prefix: str) -> list:
    """``count`` limit buys of ours (Order rows with BingX's ids), each filled in two trades on the fake;
    returns what the stream pushed for them, parsed (NEW, trades, account updates)."""
    start = len(on_bingx.events)
    placed = []
    for number in range(count):
        client_order_id = f"{prefix}{number}"
        order = bingx.state.place_order(
            on_bingx,
            {
                "symbol": "BTC-USDT",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "0.002",
                "price": "60000",
                "clientOrderID": client_order_id,
            },
        )
        Order.objects.create(
            account=account,
            client_order_id=client_order_id,
            exchange_order_id=str(order.order_id),
            symbol=BTC,
            side="buy",
            order_type=Order.Type.LIMIT,
            qty=Decimal("0.002"),
            price=Decimal("60000"),
            status=Order.Status.SUBMITTED,
        )
        placed.append(order)
    for order in placed:
        on_bingx.fill_order(order.order_id, Decimal("0.001"))
    for order in placed:
        on_bingx.fill_order(order.order_id, Decimal("0.001"))
    return [parse_event(raw) for raw in on_bingx.events[start:]]


@pytest.mark.django_db
def test_a_burst_costs_the_same_few_queries_however_many_order_events_it_holds(
    by_hand, bingx, on_bingx, account, django_assert_max_num_queries
):
    """Set-based writes: one query locks the burst's orders, fills, orders and audit rows are written in bulk.
    A burst of four orders' events costs no more statements than a burst of one order's."""
    from django.test.utils import CaptureQueriesContext

    followed: list = []  # the fills' follow-ups (REST read-backs) are handed on, as AccountStream does

    def memory():
        return StreamMemory(account.pk, follow_ups=lambda *follow_up: followed.append(follow_up))

    one = our_limit_buys_filled(bingx, on_bingx, account, 1, prefix="small")
    with CaptureQueriesContext(connection) as small:
        stream_events_apply(account=account, events=one, memory=memory())
    four = our_limit_buys_filled(bingx, on_bingx, account, 4, prefix="large")
    assert len(four) > 3 * len(one)

    with django_assert_max_num_queries(len(small.captured_queries)):
        applied = stream_events_apply(account=account, events=four, memory=memory())

    assert applied == len(four)
    large = Order.objects.filter(client_order_id__startswith="large")
    assert sorted(large.values_list("status", "filled_qty")) == [("filled", Decimal("0.002"))] * 4
    assert Fill.objects.filter(order__in=large).count() == 8
    assert len(followed) == 1 + 4


def our_protective_order(bingx, on_bingx, account, *, symbol: str, kind: str, purpose: str, stop: str, qty: str):
    """A reduce-only trigger order of ours resting on the fake (sell side: it protects a long)."""
    client_order_id = f"{purpose}-{symbol.lower()}"
    order = bingx.state.place_order(
        on_bingx,
        {
            "symbol": symbol,
            "side": "SELL",
            "type": kind,
            "quantity": qty,
            "stopPrice": stop,
            "reduceOnly": "true",
            "clientOrderID": client_order_id,
        },
    )
    return Order.objects.create(
        account=account,
        client_order_id=client_order_id,
        exchange_order_id=str(order.order_id),
        symbol=f"{symbol.split('-')[0]}/USDT:USDT",
        side="sell",
        order_type=Order.Type.STOP_MARKET if kind == "STOP_MARKET" else Order.Type.TAKE_PROFIT_MARKET,
        purpose=purpose,
        qty=Decimal(qty),
        trigger_price=Decimal(stop),
        reduce_only=True,
        status=Order.Status.SUBMITTED,
    )


@pytest.mark.django_db
def test_the_follow_ups_of_a_burst_read_positions_and_balance_once_and_close_each_with_its_cause(
    by_hand, bingx, on_bingx, account
):
    bingx.set_mark_price("SOL-USDT", "150")
    by_hand.create_order(BTC, "market", "buy", 0.01)
    by_hand.create_order("SOL/USDT:USDT", "market", "buy", 1)
    opened = [parse_event(raw) for raw in on_bingx.events]
    stream_events_apply(account=account, events=opened, memory=StreamMemory(account.pk))
    our_protective_order(
        bingx, on_bingx, account, symbol="BTC-USDT", kind="STOP_MARKET", purpose="stop_loss", stop="64000", qty="0.01"
    )
    our_protective_order(
        bingx,
        on_bingx,
        account,
        symbol="SOL-USDT",
        kind="TAKE_PROFIT_MARKET",
        purpose="take_profit_1",
        stop="160",
        qty="1",
    )
    start = len(on_bingx.events)
    bingx.set_mark_price("BTC-USDT", "63000")  # the stop loss triggers
    bingx.set_mark_price("SOL-USDT", "161")  # the take profit triggers
    hits = [parse_event(raw) for raw in on_bingx.events[start:]]
    before = len(bingx.state.paths())

    stream_events_apply(account=account, events=hits, memory=StreamMemory(account.pk))

    closed = dict(Position.objects.filter(status="closed").values_list("symbol", "close_reason"))
    assert closed == {BTC: "stop_loss", "SOL/USDT:USDT": "take_profit"}
    paths = bingx.state.paths()[before:]
    assert sum("positions" in path for path in paths) == 1
    assert sum("balance" in path for path in paths) == 1


@pytest.mark.django_db
def test_a_position_closed_and_opened_again_in_one_burst_is_two_positions(by_hand, on_bingx, bingx, account):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    by_hand.create_order(BTC, "market", "buy", 0.02)

    stream_events_apply(
        account=account, events=[parse_event(raw) for raw in on_bingx.events], memory=StreamMemory(account.pk)
    )

    positions = Position.objects.order_by("pk").values_list("status", "qty", "close_reason")
    assert list(positions) == [("closed", Decimal("0"), "manual"), ("open", Decimal("0.02"), "")]


@pytest.mark.django_db
def test_a_bad_event_in_a_burst_costs_no_other_and_is_logged(round_trip, account, monkeypatch, caplog):
    good = round_trip
    first = next(event for event in good if hasattr(event, "order"))
    bad = dataclasses.replace(
        first, order=dataclasses.replace(first.order, exchange_order_id="999", client_order_id="")
    )

    def failing_for_the_bad_one(order, state, **kwargs):
        if order.exchange_order_id == "999":
            raise ValueError("a bad event")
        return order_advance(order, state, **kwargs)

    monkeypatch.setattr("trading.stream_apply.order_advance", failing_for_the_bad_one)
    middle = len(good) // 2

    applied = stream_events_apply(
        account=account, events=[*good[:middle], bad, *good[middle:]], memory=StreamMemory(account.pk)
    )

    assert applied == len(good)
    orders, fills, positions = database_state()
    assert [status for _, status, _ in orders] == ["filled", "filled"]  # and no row for the bad one
    assert len(fills) == 2
    assert positions == [("closed", Decimal("0"), "manual", Decimal("10"))]
    [failed] = [record for record in caplog.records if "event not applied" in record.getMessage()]
    assert "999" in failed.getMessage() and failed.exc_info[0] is ValueError


@pytest.mark.django_db
def test_last_event_at_is_written_at_most_every_few_seconds_and_when_the_stream_goes_down(round_trip, account):
    memory = StreamMemory(account.pk, state_write_seconds=3600)
    [*early, late] = round_trip

    stream_events_apply(account=account, events=early, memory=memory)
    written = StreamState.objects.get(account=account).last_event_at
    stream_events_apply(account=account, events=[late], memory=memory)

    assert written is not None
    assert StreamState.objects.get(account=account).last_event_at == written  # not yet due
    assert memory.last_event_at > written
    stream_mark_down(account_id=account.pk, reason="socket ended", memory=memory)
    assert StreamState.objects.get(account=account).last_event_at == memory.last_event_at
    memory.state_write_seconds = 0
    stream_events_apply(account=account, events=[dataclasses.replace(late, event_ms=late.event_ms + 1)], memory=memory)
    assert StreamState.objects.get(account=account).last_event_at == memory.last_event_at  # due: written


# --- gaps, keys, closes ------------------------------------------------------------------------------


@live_db
def test_fills_while_the_connection_is_down_are_reconciled_after_it_comes_back(
    streaming, send, bingx, on_bingx, account
):
    send(**{**BUY, "order_type": "limit", "price": "64000"})
    send(**{**BUY, "order_type": "limit", "price": "63000", "size": {"mode": "qty", "value": "0.02"}})
    stream = streaming(StreamTimings(**{**FAST.__dict__, "backoff_initial_seconds": 0.6, "backoff_max_seconds": 0.6}))
    first, second = on_bingx.orders

    bingx.drop_ws_connections()
    until(lambda: not bingx.ws_connections)
    on_bingx.fill_order(first.order_id)
    on_bingx.fill_order(second.order_id, Decimal("0.01"))  # half of it
    assert not exchange_matches_database(on_bingx, account)  # nobody listening

    until(lambda: exchange_matches_database(on_bingx, account))
    until(lambda: StreamState.objects.filter(account=account, connected=True).exists())
    stream.close()
    assert exchange_matches_database(on_bingx, account)
    assert Position.objects.get(status="open").qty == Decimal("0.02")


@live_db
def test_an_expired_listen_key_is_replaced_and_events_keep_flowing(streaming, by_hand, bingx, account):
    streaming()
    [old_key] = bingx.listen_keys

    bingx.expire_listen_key(old_key)
    until(lambda: bingx.listen_keys and old_key not in bingx.listen_keys and bingx.ws_connections)
    placed = by_hand.create_order(BTC, "market", "buy", 0.01)

    until(lambda: Order.objects.filter(exchange_order_id=placed["id"], status="filled").exists())
    assert [connection.listen_key for connection in bingx.ws_connections] == list(bingx.listen_keys)


@live_db
def test_the_listen_key_is_kept_alive_while_the_applier_thread_takes_the_events(streaming, by_hand, bingx, account):
    streaming(dataclasses.replace(FAST, keepalive_seconds=0.2))
    [key] = bingx.listen_keys

    def extensions() -> int:
        with bingx.state.lock:
            return sum(
                1
                for request in bingx.state.requests
                if request.method == "PUT"
                and request.path.endswith("/userDataStream")
                and request.query.get("listenKey") == key
            )

    for _ in range(3):  # events flow meanwhile: the applier thread is in its loop
        placed = by_hand.create_order(BTC, "market", "buy", 0.001)
        until(lambda placed=placed: Order.objects.filter(exchange_order_id=placed["id"], status="filled").exists())
    until(lambda: extensions() >= 2)
    assert list(bingx.listen_keys) == [key]


@live_db
def test_a_refused_keep_alive_ends_the_socket_and_the_stream_goes_on_with_a_new_key(streaming, by_hand, bingx, account):
    streaming(dataclasses.replace(FAST, keepalive_seconds=0.2))
    [old_key] = bingx.listen_keys
    with bingx.state.lock:  # BingX forgets the key without closing the socket: the next PUT answers 404
        bingx.state.listen_keys.pop(old_key)

    until(lambda: bingx.listen_keys and old_key not in bingx.listen_keys)
    until(lambda: StreamState.objects.filter(account=account, connected=True).exists())
    placed = by_hand.create_order(BTC, "market", "buy", 0.01)
    until(lambda: Order.objects.filter(exchange_order_id=placed["id"], status="filled").exists())


@live_db
def test_a_stop_loss_hit_on_bingx_closes_the_position_with_its_loss_and_cause(
    streaming, send, bingx, on_bingx, account, listen
):
    signal = send(**BUY, sl={"pct": "1.5"}, tp=[{"pct": "2", "size_pct": 100}])  # stop at 64025
    stream = streaming()
    closed = listen("positions.closed")

    bingx.set_mark_price("BTC-USDT", "64000")

    until(lambda: Order.objects.get(signal=signal, purpose="take_profit_1").status == "canceled")
    until(lambda: Position.objects.filter(account=account, status="closed").exists())
    stream.close()
    position = Position.objects.get(account=account)
    assert (position.close_reason, position.realized_pnl) == ("stop_loss", Decimal("-10"))
    assert Order.objects.get(signal=signal, purpose="stop_loss").status == "filled"
    [event] = until(closed)
    assert (event["cause"], Decimal(event["realized_pnl"]), event["position_id"]) == ("stop_loss", -10, position.pk)


@live_db
def test_a_close_by_hand_on_bingx_closes_the_position_as_manual(streaming, send, by_hand, bingx, account, listen):
    send(**BUY, sl={"pct": "5"})
    stream = streaming()
    closed = listen("positions.closed")
    bingx.set_mark_price("BTC-USDT", "66000")

    placed = by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})

    until(lambda: Order.objects.get(purpose="stop_loss").status == "canceled")
    until(lambda: Position.objects.filter(account=account, status="closed").exists())
    stream.close()
    position = Position.objects.get(account=account)
    assert (position.close_reason, position.realized_pnl) == ("manual", Decimal("10"))
    manual = Order.objects.get(exchange_order_id=placed["id"])
    assert (manual.purpose, manual.reduce_only, manual.signal) == ("close", True, None)
    assert [e["cause"] for e in until(closed)] == ["manual"]


@live_db
def test_a_liquidation_on_bingx_closes_the_position_with_its_loss_and_cause(
    streaming, send, bingx, on_bingx, account, listen
):
    send(**BUY)  # long 0.01 BTC at 65000, isolated 5x, no stop loss
    stream = streaming()
    closed = listen("positions.closed")
    bingx.set_mark_price("BTC-USDT", "52000")

    [forced] = bingx.liquidate(on_bingx.api_key, "BTC-USDT")

    until(lambda: Position.objects.filter(account=account, status="closed").exists())
    stream.close()
    position = Position.objects.get(account=account)
    assert (position.close_reason, position.realized_pnl) == ("liquidation", Decimal("-130"))
    recorded = Order.objects.get(exchange_order_id=str(forced))
    assert (recorded.order_type, recorded.purpose, recorded.reduce_only, recorded.signal) == (
        "liquidation",
        "close",
        True,
        None,
    )
    assert [(e["cause"], Decimal(e["realized_pnl"])) for e in until(closed)] == [("liquidation", -130)]


# --- health -------------------------------------------------------------------------------------------


@live_db
def test_it_alerts_when_the_stream_stays_down_and_says_when_it_is_back(
    streaming, settings, bingx, account, listen, caplog
):
    ws_url = settings.BINGX_WS_URL
    settings.BINGX_WS_URL = "ws://127.0.0.1:9/swap-market"  # nothing listens there
    down, back = listen("alerts.stream_down"), listen("alerts.stream_restored")
    stream = streaming(StreamTimings(**{**FAST.__dict__, "down_alert_seconds": 0.5}), connected=False)

    [alert] = until(down)
    assert alert["account_id"] == account.pk and "down for" in alert["message"]
    state = until(lambda: StreamState.objects.filter(account=account, down_alerted_at__isnull=False).first())
    assert (state.connected, bool(state.last_error)) == (False, True)
    assert "user-data stream down" in caplog.text

    settings.BINGX_WS_URL = ws_url
    until(lambda: StreamState.objects.filter(account=account, connected=True).exists())
    assert len(until(back)) == 1
    stream.close()
    assert StreamState.objects.get(account=account).down_alerted_at is None


@live_db
def test_a_connected_stream_freezes_what_the_process_holds_before_events_flow(streaming, account):
    gc.unfreeze()

    streaming()

    until(lambda: gc.get_freeze_count() > 0)  # full collections no longer walk Django, ccxt and the clients


def test_run_stream_warns_when_the_database_pool_is_smaller_than_its_accounts_need():
    assert "DATABASE_POOL_SIZE=9" in pool_shortfall({"max_size": 9}, accounts=4)
    assert pool_shortfall({"max_size": 10}, accounts=4) is None  # an applier and a follow-up thread each
    assert pool_shortfall(None, accounts=40) is None  # SQLite: no pool
