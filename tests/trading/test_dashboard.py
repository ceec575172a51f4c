"""The live dashboard: the staff-only page, the snapshot it shows, and the WebSocket that keeps it current."""

from __future__ import annotations

import json
import time
from datetime import UTC, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import trading.models as trading_models
from signals_app.events import event_payload
from signals_app.models import Signal
from tests.conftest_bingx import KEY, SECRET
from tests.factories import (
    BalanceSnapshotFactory,
    OrderFactory,
    PositionFactory,
    RiskLimitsFactory,
    SignalFactory,
    SymbolProfileFactory,
    TradingAccountFactory,
    UserFactory,
)
from trading import dashboard
from trading.audit import Actor
from trading.consumers import DashboardConsumer
from trading.dashboard import dashboard_accounts, dashboard_snapshot, worker_heartbeat_record
from trading.execution import orders_poll
from trading.services import account_rotate_webhook_secret

BTC = "BTC/USDT:USDT"
URL = "/admin/dashboard/"


def snapshot() -> dict:
    return dashboard_snapshot(accounts=dashboard_accounts())


def account_in(data: dict, name: str) -> dict:
    [account] = [account for account in data["accounts"] if account["name"] == name]
    return account


# --- the page ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_the_admin_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_it_refuses_logged_in_users_who_are_not_staff(client):
    client.force_login(UserFactory(is_staff=False))

    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_it_shows_staff_the_page_with_a_first_snapshot_and_its_script(staff_client):
    account = TradingAccountFactory(name="main")
    PositionFactory(account=account, symbol=BTC, side="short", qty=Decimal("0.5"))

    response = staff_client.get(URL)

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # the admin's never_cache
    content = response.content.decode()
    assert 'data-websocket-path="/ws/dashboard/"' in content
    assert "trading/dashboard.js" in content
    assert '<script id="dashboard-snapshot" type="application/json">' in content
    assert account_in(response.context["snapshot"], "main")["positions"][0]["side"] == "short"


def test_the_admin_header_links_to_the_dashboard(staff_client):
    response = staff_client.get(reverse("admin:index"))

    assert f'href="{URL}"' in response.content.decode()


def test_the_dashboard_script_and_styles_are_served(staff_client):
    for path in ("/static/trading/dashboard.js", "/static/trading/dashboard.css"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content)


# --- the snapshot -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_snapshot_has_balance_positions_with_their_protection_orders_and_signals():
    account = TradingAccountFactory(name="main", mode="live")
    BalanceSnapshotFactory(account=account, equity=Decimal("10012.50000000"), available=Decimal("9000"))
    PositionFactory(
        account=account,
        symbol=BTC,
        side="long",
        qty=Decimal("0.01"),
        entry_price=Decimal("64000"),
        mark_price=Decimal("64500"),
        unrealized_pnl=Decimal("5"),
        leverage=5,
        liquidation_price=Decimal("51500.5"),
    )
    protective = {
        "account": account,
        "signal": None,
        "symbol": BTC,
        "side": "sell",
        "reduce_only": True,
        "status": "open",
    }
    OrderFactory(**protective, purpose="stop_loss", order_type="stop_market", trigger_price=Decimal("63000"))
    OrderFactory(**protective, purpose="take_profit_2", order_type="take_profit_market", trigger_price=Decimal("67000"))
    OrderFactory(**protective, purpose="take_profit_1", order_type="take_profit_market", trigger_price=Decimal("66000"))
    OrderFactory(**{**protective, "status": "canceled"}, purpose="stop_loss", trigger_price=Decimal("60000"))
    SignalFactory(account=account, status="rejected", rejection_reason="cooldown: 30 s left")

    data = account_in(snapshot(), "main")

    assert data["balance"]["equity"] == "10012.5"
    assert data["balance"]["available"] == "9000"
    [position] = data["positions"]
    assert position["symbol"] == BTC and position["side"] == "long"
    assert (position["qty"], position["entry_price"], position["mark_price"]) == ("0.01", "64000", "64500")
    assert (position["unrealized_pnl"], position["roe_pct"]) == ("5", "3.91")  # 5 / (0.01 x 64000 / 5)
    assert (position["leverage"], position["margin_mode"], position["liquidation_price"]) == (5, "isolated", "51500.5")
    assert position["stop_loss"] == "63000"
    assert position["take_profits"] == ["66000", "67000"]
    assert [order["purpose"] for order in data["open_orders"]] == ["take_profit_1", "take_profit_2", "stop_loss"]
    [signal] = data["signals"]
    assert (signal["status"], signal["reason"]) == ("rejected", "cooldown: 30 s left")
    json.dumps(data)  # JSON-ready as it is


@pytest.mark.django_db
def test_an_account_without_balance_or_positions_shows_empty_parts_and_inactive_accounts_are_left_out():
    TradingAccountFactory(name="quiet")
    TradingAccountFactory(name="retired", is_active=False)

    data = snapshot()

    assert [account["name"] for account in data["accounts"]] == ["quiet"]
    quiet = data["accounts"][0]
    assert (quiet["balance"], quiet["positions"], quiet["open_orders"], quiet["signals"]) == (None, [], [], [])


@pytest.mark.django_db
def test_exchange_health_is_the_accounts_breaker_state_and_not_applicable_in_dry_run():
    TradingAccountFactory(name="dry", mode="dry_run")
    TradingAccountFactory(
        name="live", mode="live", exchange_health="degraded", exchange_health_reason="5 timeouts in a row"
    )

    data = snapshot()

    assert account_in(data, "dry")["health"]["exchange"]["status"] == "n/a"
    assert account_in(data, "live")["health"]["exchange"] == {
        "status": "degraded",
        "detail": "5 timeouts in a row",
        "changed_at": None,
    }


@pytest.mark.django_db
def test_stream_health_is_unknown_until_the_stream_reports_and_then_shows_its_state(monkeypatch):
    TradingAccountFactory(name="live", mode="live")
    assert account_in(snapshot(), "live")["health"]["stream"]["status"] == "unknown"

    seen = timezone.now()
    up = SimpleNamespace(connected=True, last_event_at=seen, last_error="")
    monkeypatch.setattr(dashboard, "stream_state_of", lambda account: up)
    stream = account_in(snapshot(), "live")["health"]["stream"]
    assert (stream["status"], stream["detail"]) == ("connected", "")
    assert stream["last_event_at"].startswith(seen.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    down = SimpleNamespace(connected=False, last_event_at=None, last_error="listen key expired")
    monkeypatch.setattr(dashboard, "stream_state_of", lambda account: down)
    stream = account_in(snapshot(), "live")["health"]["stream"]
    assert (stream["status"], stream["detail"], stream["last_event_at"]) == (
        "disconnected",
        "listen key expired",
        None,
    )


@pytest.mark.django_db
def test_stream_health_reads_the_stream_consumers_state_row():
    stream_state = getattr(trading_models, "StreamState", None)
    if stream_state is None:
        pytest.skip("the stream consumer (trading.models.StreamState) is not in this build")
    account = TradingAccountFactory(name="live", mode="live")
    stream_state.objects.create(account=account, connected=True, last_event_at=timezone.now())

    assert account_in(snapshot(), "live")["health"]["stream"]["status"] == "connected"


@pytest.mark.django_db
def test_worker_health_follows_the_sweepers_heartbeat_and_signals_left_waiting(settings):
    cache.delete(dashboard.WORKER_HEARTBEAT_KEY)
    assert snapshot()["worker"]["status"] == "unknown"

    worker_heartbeat_record()
    assert snapshot()["worker"]["status"] == "ok"

    cache.set(dashboard.WORKER_HEARTBEAT_KEY, timezone.now().timestamp() - 120)
    assert snapshot()["worker"]["status"] == "late"

    waited = timezone.now() - timedelta(seconds=3 * settings.SIGNAL_SWEEP_AFTER_SECONDS)
    SignalFactory(status="received", received_at=waited)
    worker = snapshot()["worker"]
    assert (worker["status"], worker["waiting_signals"]) == ("stalled", 1)


@pytest.mark.django_db
def test_the_sweeper_records_the_heartbeat():
    from signals_app.pipeline import signals_sweep

    cache.delete(dashboard.WORKER_HEARTBEAT_KEY)
    signals_sweep()

    assert snapshot()["worker"]["status"] == "ok"


# --- the WebSocket ----------------------------------------------------------------------------------


def communicator_for(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = user
    return communicator


async def staff_user(**fields):
    return await database_sync_to_async(UserFactory)(is_staff=True, **fields)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_websocket_refuses_anonymous_connections():
    connected, _ = await communicator_for(AnonymousUser()).connect()

    assert connected is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_websocket_refuses_users_who_are_not_staff():
    user = await database_sync_to_async(UserFactory)(is_staff=False)

    connected, _ = await communicator_for(user).connect()

    assert connected is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_staff_get_a_snapshot_on_connect_and_a_fresh_one_after_each_event():
    account = await database_sync_to_async(TradingAccountFactory)(name="main")
    communicator = communicator_for(await staff_user())
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert (first["type"], first["reason"]) == ("snapshot", "connected")
    assert account_in(first["snapshot"], "main")["positions"] == []

    await database_sync_to_async(PositionFactory)(account=account, symbol=BTC, side="long")
    signal = await database_sync_to_async(SignalFactory)(account=account, status="executed")
    await get_channel_layer().group_send("orders.executed", event_payload("orders.executed", signal, summary="ok"))

    pushed = await communicator.receive_json_from(timeout=5)
    assert pushed["reason"] == "event"
    assert [event["topic"] for event in pushed["events"]] == ["orders.executed"]
    [position] = account_in(pushed["snapshot"], "main")["positions"]
    assert (position["symbol"], position["side"]) == (BTC, "long")
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_events_is_answered_with_one_snapshot():
    communicator = communicator_for(await staff_user())
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)

    layer = get_channel_layer()
    for topic in ("signals.raw", "signals.validated", "orders.executed", "balances.updated"):
        await layer.group_send(topic, {"type": "pipeline.event", "topic": topic})

    pushed = await communicator.receive_json_from(timeout=5)
    assert [event["topic"] for event in pushed["events"]] == [
        "signals.raw",
        "signals.validated",
        "orders.executed",
        "balances.updated",
    ]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_several_events_in_one_message_are_each_shown_with_one_snapshot():
    communicator = communicator_for(await staff_user())
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)
    fills = [
        event_payload("orders.executed", None, account_id=1, symbol=symbol)
        for symbol in (BTC, "SOL/USDT:USDT", "LTC/USDT:USDT")
    ]

    await get_channel_layer().group_send(
        "orders.executed", {"type": "pipeline.events", "topic": "orders.executed", "events": fills}
    )

    pushed = await communicator.receive_json_from(timeout=5)
    assert [event["symbol"] for event in pushed["events"]] == [BTC, "SOL/USDT:USDT", "LTC/USDT:USDT"]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_user_who_loses_staff_status_is_disconnected_at_the_next_push():
    user = await staff_user()
    communicator = communicator_for(user)
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)

    user.is_staff = False
    await database_sync_to_async(user.save)()
    await get_channel_layer().group_send("positions.updated", {"type": "pipeline.event", "topic": "positions.updated"})

    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}


# --- the exchange feeds it -------------------------------------------------------------------------


def rest_a_limit_entry(*, account) -> Signal:
    """A limit buy of 0.01 BTC at 64,000 (stop loss 63,000) resting on the fake BingX, sent as an alert."""
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    alert = {
        "secret": secret,
        "alert_id": f"dashboard-{time.time_ns()}",
        "symbol": "BINANCE:BTCUSDT.P",
        "action": "buy",
        "order_type": "limit",
        "price": "64000",
        "size": {"mode": "qty", "value": "0.01"},
        "sl": {"price": "63000"},
    }
    response = Client().post("/webhook/tradingview", json.dumps(alert), content_type="application/json")
    assert response.status_code == 202, response.content
    signal = Signal.objects.get(pk=response.json()["signal_id"])
    assert signal.status == Signal.Status.EXECUTED, signal.rejection_reason
    return signal


def live_account_create():
    """A live account with auto-trade on, trading BTC at 5x isolated, with the fake's keys."""
    account = TradingAccountFactory(name="live", mode="live", auto_trade=True, api_key=KEY, api_secret=SECRET)
    RiskLimitsFactory(account=account)
    SymbolProfileFactory(account=account, symbol=BTC, leverage=5, max_leverage=20, margin_mode="isolated")
    return account


@pytest.fixture
def live_account(on_bingx):
    return live_account_create()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_resting_entry_filled_on_bingx_reaches_the_dashboard_with_its_stop_loss(bingx, live_account):
    await sync_to_async(rest_a_limit_entry)(account=live_account)
    communicator = communicator_for(await staff_user())
    await communicator.connect()
    first = await communicator.receive_json_from(timeout=5)
    assert account_in(first["snapshot"], "live")["positions"] == []

    bingx.set_mark_price("BTC-USDT", "63900")
    await sync_to_async(orders_poll)(account=live_account)

    position, topics = None, set()
    while position is None or position["stop_loss"] is None:  # the SL is placed just after the fill
        pushed = await communicator.receive_json_from(timeout=5)
        topics |= {event["topic"] for event in pushed["events"]}
        positions = account_in(pushed["snapshot"], "live")["positions"]
        position = positions[0] if positions else None
    assert {"positions.updated", "balances.updated"} <= topics
    assert (position["side"], position["qty"], position["entry_price"]) == ("long", "0.01", "64000")
    assert position["stop_loss"] == "63000"
    await communicator.disconnect()
