"""How the stream applies a burst: positions in memory, its writes in few statements, its follow-ups.

The events come from the fake BingX (what it pushes for orders placed on it), applied with
``stream_events_apply`` as ``AccountStream`` applies what its reader queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import FillFactory, OrderFactory, PositionFactory, SignalFactory
from tests.fakes.bingx.faults import Fault
from tests.trading.test_stream import (
    BTC,
    FAST,
    live_db,
    our_limit_buys_filled,
    our_protective_order,
    until,
)
from trading.burst_sql import (
    burst_rows_locked,
    closing_fills,
    open_protection_sides,
    rows_insert,
    rows_update,
)
from trading.exchange.stream import parse_event
from trading.execution import OPEN_STATUSES, position_realized_pnl, positions_realized_pnl
from trading.models import AuditEvent, Fill, Order, Position, StreamState
from trading.stream import AccountStream, StreamMemory, stream_events_apply, stream_mark_down, stream_reconcile
from trading.stream_apply import AccountWatermark

SOL = "SOL/USDT:USDT"


def events_since(on_bingx, start: int) -> list:
    return [parse_event(raw) for raw in on_bingx.events[start:]]


# --- positions through a burst ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_position_opened_and_closed_in_one_burst_is_stored_closed_with_its_audit_row_naming_it(
    by_hand, on_bingx, account
):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})

    stream_events_apply(account=account, events=events_since(on_bingx, 0), memory=StreamMemory(account.pk))

    [position] = Position.objects.all()
    assert (position.status, position.close_reason) == ("closed", "manual")
    [closed] = AuditEvent.objects.filter(action="position.status")
    assert (closed.object_type, closed.object_id) == ("trading.position", str(position.pk))
    assert closed.after["status"] == "closed"


@pytest.mark.django_db
def test_a_close_counts_the_fills_stored_before_the_burst_and_the_bursts_own(by_hand, on_bingx, bingx, account):
    by_hand.create_order(BTC, "market", "buy", 0.02)
    stream_events_apply(account=account, events=events_since(on_bingx, 0), memory=StreamMemory(account.pk))
    bingx.set_mark_price("BTC-USDT", "66000")
    start = len(on_bingx.events)
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # half: +10
    stream_events_apply(account=account, events=events_since(on_bingx, start), memory=StreamMemory(account.pk))
    bingx.set_mark_price("BTC-USDT", "67000")
    start = len(on_bingx.events)
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # the rest: +20

    stream_events_apply(account=account, events=events_since(on_bingx, start), memory=StreamMemory(account.pk))

    position = Position.objects.get()
    assert (position.status, position.close_reason, position.realized_pnl) == ("closed", "manual", Decimal("30"))


@pytest.mark.django_db
def test_a_stop_loss_filled_in_an_earlier_burst_still_tells_the_close_cause(by_hand, bingx, on_bingx, account):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    stream_events_apply(account=account, events=events_since(on_bingx, 0), memory=StreamMemory(account.pk))
    our_protective_order(
        bingx, on_bingx, account, symbol="BTC-USDT", kind="STOP_MARKET", purpose="stop_loss", stop="64000", qty="0.01"
    )
    start = len(on_bingx.events)
    bingx.set_mark_price("BTC-USDT", "63000")  # the stop loss triggers
    hit = events_since(on_bingx, start)
    fill_events = [event for event in hit if hasattr(event, "order")]
    account_events = [event for event in hit if not hasattr(event, "order")]

    stream_events_apply(account=account, events=fill_events, memory=StreamMemory(account.pk))
    stream_events_apply(account=account, events=account_events, memory=StreamMemory(account.pk))

    position = Position.objects.get()
    assert (position.status, position.close_reason) == ("closed", "stop_loss")
    assert position.realized_pnl == Fill.objects.get(order__purpose="stop_loss").realized_pnl


@pytest.mark.django_db
def test_a_position_another_writer_recorded_meanwhile_is_updated_when_the_burst_is_applied_again(
    by_hand, on_bingx, account
):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    events = events_since(on_bingx, 0)
    # Recorded by a writer that did not take the account's lock (the burst's own read misses it).
    other = PositionFactory(account=account, symbol=BTC, side="long", qty=Decimal("0.005"), entry_price=1)

    applied = stream_events_apply(account=account, events=events, memory=StreamMemory(account.pk))

    assert applied == len(events)
    [position] = Position.objects.filter(status="open")
    assert (position.pk, position.qty, position.entry_price) == (other.pk, Decimal("0.01"), Decimal("65000"))


@pytest.mark.django_db
def test_a_fill_stored_already_is_not_stored_twice_when_the_burst_is_applied_again_carefully(
    bingx, on_bingx, account, caplog
):
    events = our_limit_buys_filled(bingx, on_bingx, account, 1, prefix="dup")
    order = Order.objects.get(client_order_id="dup0")
    # The first trade's fill is stored already, but the order does not say so (a path that broke the rule).
    FillFactory(order=order, exchange_trade_id=f"{order.exchange_order_id}:0.001", qty=Decimal("0.001"))

    applied = stream_events_apply(account=account, events=events, memory=StreamMemory(account.pk))

    assert applied == len(events)
    assert sorted(order.fills.values_list("exchange_trade_id", flat=True)) == [
        f"{order.exchange_order_id}:0.001",
        f"{order.exchange_order_id}:0.002",
    ]
    order.refresh_from_db()
    assert (order.status, order.filled_qty) == ("filled", Decimal("0.002"))
    assert "applying them one by one" in caplog.text


# --- the account watermark ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_account_update_older_than_the_watermark_in_memory_changes_nothing(round_trip_events, account):
    memory = StreamMemory(account.pk)
    stream_events_apply(account=account, events=round_trip_events, memory=memory)
    newest = max(event.event_ms for event in round_trip_events if not hasattr(event, "order"))
    assert memory.watermark.event_ms == newest
    opened = next(event for event in round_trip_events if not hasattr(event, "order"))

    memory.seen.clear()  # not dropped as a repeat: the watermark refuses it
    stream_events_apply(account=account, events=[opened], memory=memory)

    assert list(Position.objects.values_list("status", flat=True)) == ["closed"]


@pytest.fixture
def round_trip_events(by_hand, on_bingx, bingx):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    bingx.set_mark_price("BTC-USDT", "66000")
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    return events_since(on_bingx, 0)


@pytest.mark.django_db
def test_the_watermark_is_written_with_last_event_at_and_when_the_stream_goes_down(round_trip_events, account):
    memory = StreamMemory(account.pk, state_write_seconds=3600)
    second_update = [index for index, event in enumerate(round_trip_events) if not hasattr(event, "order")][1]
    stream_events_apply(account=account, events=round_trip_events[:second_update], memory=memory)
    stream_events_apply(account=account, events=round_trip_events[second_update:], memory=memory)
    written = StreamState.objects.get(account=account).account_event_digests
    assert written == list(memory.watermark.digests)[:-1]  # the second one is in memory only

    stream_mark_down(account_id=account.pk, reason="socket closed", memory=memory)

    state = StreamState.objects.get(account=account)
    assert (state.account_event_ms, state.account_event_digests) == (
        memory.watermark.event_ms,
        list(memory.watermark.digests),
    )


@pytest.mark.django_db
def test_a_reconcile_makes_the_next_burst_read_the_watermark_again_with_its_cut(on_bingx, account):
    memory = StreamMemory(account.pk, watermark=AccountWatermark(1, ()))

    stream_reconcile(account=account, memory=memory)

    assert memory.watermark is None
    assert StreamState.objects.get(account=account).account_event_ms > 1


# --- follow-ups ---------------------------------------------------------------------------------------


def reads_of(bingx, endpoint: str) -> int:
    return sum(endpoint in path for path in bingx.state.paths())


def entry_with_a_stop_loss_filled(bingx, on_bingx, account, prefix: str) -> list:
    """An entry of ours with a stop loss planned, filled on the fake: what the stream pushed for it."""
    events = our_limit_buys_filled(bingx, on_bingx, account, 1, prefix=prefix)
    Order.objects.filter(client_order_id=f"{prefix}0").update(
        purpose="entry", protective_plan=[{"purpose": "stop_loss", "trigger_price": "55000", "qty": "0.002"}]
    )
    return events


@pytest.mark.postgres
@live_db
def test_fills_protection_is_placed_at_once_and_their_read_back_of_positions_is_shared(bingx, on_bingx, account):
    stream = AccountStream(account.pk, dataclasses.replace(FAST, read_back_seconds=60))
    first = entry_with_a_stop_loss_filled(bingx, on_bingx, account, "first")
    second = entry_with_a_stop_loss_filled(bingx, on_bingx, account, "second")
    reads = reads_of(bingx, "/user/positions")

    def apply(events) -> None:
        stream.executor.submit(stream_events_apply, account=account, events=events, memory=stream.memory).result()

    try:
        apply(first)
        until(lambda: Order.objects.filter(purpose="stop_loss").count() == 1)
        until(lambda: reads_of(bingx, "/user/positions") == reads + 1)  # the first read is not held back
        apply(second)
        until(lambda: Order.objects.filter(purpose="stop_loss").count() == 2)  # placed at once
        assert reads_of(bingx, "/user/positions") == reads + 1  # its read waits its turn

        asyncio.run(stream.follow_ups_done())  # done: what waits is read now

        assert reads_of(bingx, "/user/positions") == reads + 2
    finally:
        asyncio.run(stream._release())


@pytest.mark.postgres
@live_db
def test_a_closed_positions_remaining_protection_is_cancelled_without_waiting_for_the_read_back(
    by_hand, bingx, on_bingx, account, listen
):
    hits = listen("positions.take_profit")
    stream = AccountStream(account.pk, dataclasses.replace(FAST, read_back_seconds=60))
    by_hand.create_order(BTC, "market", "buy", 0.01)
    stream_events_apply(account=account, events=events_since(on_bingx, 0), memory=StreamMemory(account.pk))
    stop = our_protective_order(
        bingx, on_bingx, account, symbol="BTC-USDT", kind="STOP_MARKET", purpose="stop_loss", stop="60000", qty="0.01"
    )
    take = our_protective_order(
        bingx,
        on_bingx,
        account,
        symbol="BTC-USDT",
        kind="TAKE_PROFIT_MARKET",
        purpose="take_profit_1",
        stop="66000",
        qty="0.01",
    )
    stream._read_back_last = time.monotonic()  # a read-back just ran: the next one is a minute away
    start = len(on_bingx.events)
    bingx.set_mark_price("BTC-USDT", "66500")  # the take profit fills and closes the position
    try:
        stream.executor.submit(
            stream_events_apply, account=account, events=events_since(on_bingx, start), memory=stream.memory
        ).result()

        until(lambda: Order.objects.get(pk=stop.pk).status == "canceled")
        [hit] = until(hits)  # announced at once too, not with the read-back a minute away
    finally:
        asyncio.run(stream._release())
    assert hit["message"] == "take_profit_1 filled on BTC/USDT:USDT long"
    assert Order.objects.get(pk=take.pk).status == "filled"
    assert Position.objects.get().close_reason == "take_profit"


@pytest.mark.django_db
def test_a_read_back_bingx_refuses_after_a_close_is_alerted_and_the_close_is_kept(by_hand, bingx, on_bingx, account):
    by_hand.create_order(BTC, "market", "buy", 0.01)
    stream_events_apply(account=account, events=events_since(on_bingx, 0), memory=StreamMemory(account.pk))
    bingx.fault("GET", "/openApi/swap/v2/user/positions", Fault.http_error(status=503), times=None)
    start = len(on_bingx.events)
    by_hand.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    closing = events_since(on_bingx, start)

    applied = stream_events_apply(account=account, events=closing, memory=StreamMemory(account.pk))

    assert applied == len(closing)
    assert Position.objects.get().status == "closed"  # from the stream's own ACCOUNT_UPDATE
    [alert] = AuditEvent.objects.filter(action="alert.alerts.stream_follow_up_failed")
    assert alert.reason.startswith("positions and balance not read back after fills on BTC/USDT:USDT")


# --- the burst's SQL ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_update_writes_every_changed_field_of_every_row_in_one_statement():
    first, second = OrderFactory(status="submitted"), OrderFactory(status="submitted")
    first.status, first.filled_qty = "partially_filled", Decimal("0.001")
    second.fees = Decimal("0.5")

    with CaptureQueriesContext(transaction.get_connection()) as statements:
        rows_update(Order, [(first, {"status", "filled_qty"}), (second, {"fees"})])

    assert len(statements.captured_queries) == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.filled_qty, second.fees) == ("partially_filled", Decimal("0.001"), Decimal("0.5"))


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_update_writes_nulls_and_a_column_of_ints_and_decimals():
    first, second = OrderFactory(price=Decimal("100")), OrderFactory(price=None)
    first.price, second.price = None, Decimal("101.5")
    first.filled_qty, second.filled_qty = 0, Decimal("0.001")  # an int among Decimals: converted, not refused

    rows_update(Order, [(first, {"price", "filled_qty"}), (second, {"price", "filled_qty"})])

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.price, first.filled_qty) == (None, Decimal("0"))
    assert (second.price, second.filled_qty) == (Decimal("101.5"), Decimal("0.001"))


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_insert_writes_json_booleans_and_nulls_as_the_orm_reads_them_back():
    order = OrderFactory()
    events = [
        AuditEvent(actor_type="system", actor_id="bingx-stream", action="order.filled", before={}, after=after)
        for after in ({"status": "filled", "qty": "0.01", "nested": {"a": [1, None, True]}}, {}, {"text": "é\n\"'"})
    ]
    fills = [
        Fill(order=order, exchange_trade_id="t:1", qty=Decimal("0.5"), price=1, executed_at=timezone.now()),
        Fill(order=order, exchange_trade_id="t:2", qty=2, price=Decimal("1.25"), executed_at=timezone.now()),
    ]

    rows_insert(AuditEvent, events)
    rows_insert(Fill, fills)

    assert [event.after for event in AuditEvent.objects.filter(action="order.filled").order_by("pk")] == [
        event.after for event in events
    ]
    assert sorted(order.fills.values_list("qty", "price")) == [
        (Decimal("0.5"), Decimal("1")),
        (Decimal("2"), Decimal("1.25")),
    ]


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_insert_sends_one_statement_of_the_same_text_whatever_the_number_of_rows():
    order = OrderFactory()

    def fills(prefix: str, count: int) -> list[Fill]:
        return [
            Fill(order=order, exchange_trade_id=f"{prefix}:{n}", qty=1, price=1, executed_at=timezone.now())
            for n in range(count)
        ]

    with CaptureQueriesContext(transaction.get_connection()) as statements:
        rows_insert(Fill, fills("a", 2))
        rows_insert(Fill, fills("b", 300))

    assert len(statements.captured_queries) == 2
    assert statements.captured_queries[0]["sql"] == statements.captured_queries[1]["sql"]
    assert order.fills.count() == 302


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_insert_keeps_the_tables_constraints_and_gives_ids_when_asked():
    order = OrderFactory()
    fills = [Fill(order=order, exchange_trade_id=f"t:{n}", qty=1, price=1, executed_at=timezone.now()) for n in (1, 2)]
    rows_insert(Fill, fills)
    assert set(order.fills.values_list("exchange_trade_id", flat=True)) == {"t:1", "t:2"}

    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Fill, [Fill(order=order, exchange_trade_id="t:1", qty=1, price=1, executed_at=timezone.now())])

    positions = [
        Position(
            account=order.account,
            symbol=s,
            side="long",
            qty=1,
            entry_price=1,
            leverage=5,
            margin_mode="isolated",
            opened_at=timezone.now(),
        )
        for s in (BTC, SOL)
    ]
    rows_insert(Position, positions, returning=True)
    assert [Position.objects.get(pk=p.pk).symbol for p in positions] == [BTC, SOL]


@pytest.mark.postgres
@pytest.mark.django_db
def test_burst_rows_locked_reads_the_named_orders_in_pk_order_with_their_signals():
    signal = SignalFactory()
    by_exchange_id = OrderFactory(account=signal.account, signal=signal, exchange_order_id="111")
    by_client_id = OrderFactory(account=signal.account, client_order_id="ours-2")
    OrderFactory(account=signal.account, exchange_order_id="333")  # not named
    OrderFactory(exchange_order_id="111x")  # another account's

    with transaction.atomic():
        orders, _ = burst_rows_locked(signal.account_id, ["111"], ["ours-2"])

    assert [order.pk for order in orders] == sorted([by_exchange_id.pk, by_client_id.pk])
    assert orders[0].signal == signal


@pytest.mark.postgres
@pytest.mark.django_db
def test_burst_rows_locked_reads_the_named_orders_and_open_positions_as_the_orm_reads_them():
    signal = SignalFactory()
    order = OrderFactory(
        account=signal.account,
        signal=signal,
        exchange_order_id="111",
        protective_plan=[{"purpose": "stop_loss", "trigger_price": "60000", "qty": "0.01"}],
        submitted_at=timezone.now(),
    )
    OrderFactory(account=signal.account, exchange_order_id="222")  # not named
    position = PositionFactory(account=signal.account, symbol=BTC, side="long")
    PositionFactory(account=signal.account, symbol=SOL, side="long", status="closed")

    with transaction.atomic():
        orders, positions = burst_rows_locked(signal.account_id, ["111"], [])

    def fields(row):
        return {field.attname: getattr(row, field.attname) for field in type(row)._meta.concrete_fields}

    assert [fields(row) for row in orders] == [fields(Order.objects.get(pk=order.pk))]
    assert orders[0].signal == signal
    assert [fields(row) for row in positions] == [fields(Position.objects.get(pk=position.pk))]


@pytest.mark.postgres
@pytest.mark.django_db
def test_burst_rows_locked_reads_only_open_positions_and_closing_fills_read_what_the_orm_would():
    position = PositionFactory(symbol=BTC, side="long")
    PositionFactory(account=position.account, symbol=SOL, side="long", status="closed")
    sell = OrderFactory(account=position.account, symbol=BTC, side="sell", reduce_only=True, purpose="close")
    FillFactory(order=sell, realized_pnl=Decimal("7"), executed_at=timezone.now())

    with transaction.atomic():
        assert [p.pk for p in burst_rows_locked(position.account_id, [], [])[1]] == [position.pk]
    [row] = closing_fills(position.account_id, [BTC], position.opened_at)

    assert row[1:2] == (Decimal("7"),) and row[3:8] == (BTC, "sell", "both", True, "close")


@pytest.mark.django_db
def test_open_protection_sides_are_the_open_stop_losses_and_take_profits_on_the_symbols_asked():
    stop = OrderFactory(symbol=BTC, side="sell", reduce_only=True, purpose="stop_loss", status="open")
    account = stop.account
    OrderFactory(account=account, symbol=SOL, side="buy", reduce_only=True, purpose="take_profit_1", status="new")
    OrderFactory(account=account, symbol=BTC, side="buy", reduce_only=True, purpose="close", status="open")
    OrderFactory(account=account, symbol=BTC, side="buy", reduce_only=True, purpose="stop_loss", status="canceled")
    OrderFactory(account=account, symbol=BTC, side="buy", reduce_only=False, purpose="entry", status="open")
    OrderFactory(account=account, symbol="ADA/USDT:USDT", side="sell", reduce_only=True, purpose="stop_loss")
    OrderFactory(symbol=BTC, side="buy", reduce_only=True, purpose="stop_loss", status="open")  # another account

    sides = open_protection_sides(account.pk, [BTC, SOL], OPEN_STATUSES)

    assert sides == {(BTC, "sell"), (SOL, "buy")}


@pytest.mark.django_db
def test_positions_realized_pnl_of_several_positions_is_each_ones_position_realized_pnl():
    btc = PositionFactory(symbol=BTC, side="long")
    sol = PositionFactory(account=btc.account, symbol=SOL, side="short")
    for symbol, side, pnl in ((BTC, "sell", "3"), (BTC, "buy", "100"), (SOL, "buy", "-2"), (SOL, "buy", "5")):
        order = OrderFactory(account=btc.account, symbol=symbol, side=side)
        FillFactory(order=order, realized_pnl=Decimal(pnl), executed_at=timezone.now())

    together = positions_realized_pnl(btc.account, [btc, sol])

    assert together == {btc.pk: position_realized_pnl(btc), sol.pk: position_realized_pnl(sol)}
    assert together == {btc.pk: Decimal("3"), sol.pk: Decimal("3")}
