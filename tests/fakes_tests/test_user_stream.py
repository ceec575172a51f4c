"""The user-data stream: listen keys over REST, gzip frames and Ping/Pong, and ccxt.pro watching it."""

from __future__ import annotations

import asyncio
import gzip
import json
from decimal import Decimal

import aiohttp
import ccxt
import pytest

from tests.fakes.bingx import fake_bingx
from tests.fakes_tests.clients import pro_client, signed_request

BTC = "BTC/USDT:USDT"
LISTEN_KEY = "/openApi/user/auth/userDataStream"
WAIT_SECONDS = 5


def funded(bingx):
    account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("10000"))
    bingx.set_mark_price("BTC-USDT", Decimal("50000"))
    return account


def new_listen_key(bingx, account) -> str:
    status, body = signed_request(bingx, account, "POST", LISTEN_KEY)
    assert status == 200 and set(body) == {"listenKey"}  # bare, no envelope
    return body["listenKey"]


async def cached_until(read, wanted):
    """Poll what ccxt.pro has parsed from the stream (``client.orders`` ...) until ``wanted`` holds.

    A second watch_* call only resolves on the *next* message, and the fake pushes NEW, TRADE and
    ACCOUNT_UPDATE back to back, so the tests read ccxt's caches rather than chain watch calls.
    """

    async def loop():
        while True:
            answer = list(read() or [])
            if wanted(answer):
                return answer
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(loop(), WAIT_SECONDS)


async def connected(bingx, client, watch):
    """Start a watch (which opens the private socket) and wait until the fake has the socket."""
    task = asyncio.create_task(watch())
    await asyncio.to_thread(bingx.wait_for_ws_connections, 1)
    return task


def frame_text(message: aiohttp.WSMessage) -> str:
    assert message.type == aiohttp.WSMsgType.BINARY
    return gzip.decompress(message.data).decode()


# --- listen keys over REST ---


def test_a_listen_key_is_extended_and_deleted():
    with fake_bingx() as bingx:
        account = funded(bingx)
        key = new_listen_key(bingx, account)
        assert bingx.listen_keys == {key: "k1"}
        assert signed_request(bingx, account, "PUT", LISTEN_KEY, {"listenKey": key}) == (200, None)
        assert signed_request(bingx, account, "DELETE", LISTEN_KEY, {"listenKey": key}) == (200, None)
        assert signed_request(bingx, account, "PUT", LISTEN_KEY, {"listenKey": key})[0] == 404


def test_an_expired_listen_key_answers_404_to_put():
    with fake_bingx() as bingx:
        account = funded(bingx)
        key = new_listen_key(bingx, account)
        bingx.expire_listen_key(key)
        assert signed_request(bingx, account, "PUT", LISTEN_KEY, {"listenKey": key})[0] == 404
        assert bingx.listen_keys == {}


# --- the socket itself ---


@pytest.mark.asyncio
async def test_the_server_pings_with_gzip_binary_frames_and_counts_pongs():
    with fake_bingx(ping_interval_seconds=0.05) as bingx:
        key = new_listen_key(bingx, funded(bingx))
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{bingx.ws_url}?listenKey={key}") as ws:
            assert frame_text(await ws.receive(timeout=WAIT_SECONDS)) == "Ping"
            await ws.send_str("Pong")
            await asyncio.sleep(0.1)
            assert bingx.ws_connections[0].pongs == 1


@pytest.mark.asyncio
async def test_an_unknown_listen_key_is_closed_at_once():
    with fake_bingx() as bingx:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{bingx.ws_url}?listenKey=nope") as ws:
            message = await ws.receive(timeout=WAIT_SECONDS)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.asyncio
async def test_order_events_are_pushed_without_a_data_type_key():
    with fake_bingx() as bingx:
        account = funded(bingx)
        key = new_listen_key(bingx, account)
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{bingx.ws_url}?listenKey={key}") as ws:
            await asyncio.to_thread(bingx.wait_for_ws_connections, 1)
            signed_request(
                bingx, account, "POST", "/openApi/swap/v2/trade/order",
                {"symbol": "BTC-USDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "positionSide": "BOTH",
                 "clientOrderID": "ws1"},
            )  # fmt: skip
            frames = [json.loads(frame_text(await ws.receive(timeout=WAIT_SECONDS))) for _ in range(3)]
    assert [(f["e"], f.get("o", {}).get("x")) for f in frames] == [
        ("ORDER_TRADE_UPDATE", "NEW"),
        ("ORDER_TRADE_UPDATE", "TRADE"),
        ("ACCOUNT_UPDATE", None),
    ]
    assert all("dataType" not in frame for frame in frames)
    trade = frames[1]["o"]
    assert {key: trade[key] for key in ("s", "c", "S", "o", "X", "z", "ap", "ps", "N", "l", "L")} == {
        "s": "BTC-USDT", "c": "ws1", "S": "BUY", "o": "MARKET", "X": "FILLED", "z": "0.01", "ap": "50000",
        "ps": "BOTH", "N": "USDT", "l": "0.01", "L": "50000",
    }  # fmt: skip
    assert frames[2]["a"]["P"] == [
        {"s": "BTC-USDT", "pa": "0.01", "ep": "50000", "up": "0.0000", "mt": "cross", "iw": "0.0000", "ps": "LONG"}
    ]
    assert frames == account.events[:3]


def test_the_account_keeps_the_event_sequence_even_with_nobody_listening():
    with fake_bingx() as bingx:
        account = funded(bingx)
        signed_request(
            bingx, account, "POST", "/openApi/swap/v2/trade/order",
            {"symbol": "BTC-USDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "40000"},
        )  # fmt: skip
        order_id = account.orders[0].order_id
        signed_request(bingx, account, "DELETE", "/openApi/swap/v2/trade/order", {"orderId": order_id})
    assert [(e["o"]["x"], e["o"]["X"]) for e in account.events_of("ORDER_TRADE_UPDATE")] == [
        ("NEW", "NEW"),
        ("CANCELED", "CANCELED"),
    ]


@pytest.mark.asyncio
async def test_an_expired_key_gets_the_expiry_event_then_the_socket_closes():
    with fake_bingx() as bingx:
        key = new_listen_key(bingx, funded(bingx))
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{bingx.ws_url}?listenKey={key}") as ws:
            await asyncio.to_thread(bingx.wait_for_ws_connections, 1)
            bingx.expire_listen_key(key)
            farewell = json.loads(frame_text(await ws.receive(timeout=WAIT_SECONDS)))
            closing = await ws.receive(timeout=WAIT_SECONDS)
    assert (farewell["e"], farewell["listenKey"]) == ("listenKeyExpired", key)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.asyncio
async def test_dropping_connections_cuts_the_socket_without_a_close_handshake():
    with fake_bingx() as bingx:
        key = new_listen_key(bingx, funded(bingx))
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{bingx.ws_url}?listenKey={key}") as ws:
            await asyncio.to_thread(bingx.wait_for_ws_connections, 1)
            bingx.drop_ws_connections()
            message = await ws.receive(timeout=WAIT_SECONDS)
            assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert ws.close_code != 1000
        await asyncio.sleep(0.05)
        assert bingx.ws_connections == []


# --- ccxt.pro against the stream ---


@pytest.mark.asyncio
async def test_ccxt_pro_watch_orders_sees_a_market_order_fill():
    with fake_bingx() as bingx:
        client = pro_client(bingx, funded(bingx))
        try:
            await client.load_markets()
            first = await connected(bingx, client, client.watch_orders)
            created = await client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "pro1"})
            await asyncio.wait_for(first, WAIT_SECONDS)
            orders = await cached_until(lambda: client.orders, lambda got: got and got[-1]["status"] == "closed")
        finally:
            await client.close()
    assert (orders[-1]["id"], orders[-1]["clientOrderId"], orders[-1]["filled"]) == (created["id"], "pro1", 0.01)
    assert bingx.requests_for(LISTEN_KEY)[0].signature_ok is True


@pytest.mark.asyncio
async def test_ccxt_pro_watch_positions_sees_the_new_position():
    with fake_bingx() as bingx:
        client = pro_client(bingx, funded(bingx))
        try:
            await client.load_markets()
            first = await connected(bingx, client, client.watch_positions)
            await client.create_order(BTC, "market", "sell", 0.02)
            await asyncio.wait_for(first, WAIT_SECONDS)
            positions = await cached_until(lambda: client.positions, lambda got: any(p["contracts"] for p in got))
        finally:
            await client.close()
    (position,) = [p for p in positions if p["contracts"]]
    assert (position["symbol"], position["side"], position["contracts"], position["entryPrice"]) == (
        BTC,
        "short",
        0.02,
        50000.0,
    )


@pytest.mark.asyncio
async def test_ccxt_pro_watch_balance_sees_the_wallet_after_fees():
    with fake_bingx() as bingx:
        client = pro_client(bingx, funded(bingx))
        try:
            await client.load_markets()
            first = await connected(bingx, client, client.watch_balance)
            await client.create_order(BTC, "market", "buy", 0.01)
            await asyncio.wait_for(first, WAIT_SECONDS)  # the REST snapshot or the first push
            (balance,) = await cached_until(
                lambda: [client.balance.get("swap", {}).get("USDT", {})], lambda got: got[0].get("free") == 9999.75
            )
        finally:
            await client.close()
    assert balance["free"] == 9999.75  # ccxt takes the pushed wallet balance (wb) as free


@pytest.mark.asyncio
async def test_a_mark_move_from_the_test_thread_pushes_the_stop_loss_fill():
    with fake_bingx() as bingx:
        account = funded(bingx)
        client = pro_client(bingx, account)
        try:
            await client.load_markets()
            await client.create_order(BTC, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": 45000}})
            watching = await connected(bingx, client, lambda: client.watch_orders(BTC))
            bingx.set_mark_price("BTC-USDT", Decimal("44000"))
            await asyncio.wait_for(watching, WAIT_SECONDS)
            orders = await cached_until(lambda: client.orders, lambda got: any(o["status"] == "closed" for o in got))
        finally:
            await client.close()
    stop_id = str(account.orders[1].order_id)
    assert any(o["id"] == stop_id and o["status"] == "closed" for o in orders)


@pytest.mark.asyncio
async def test_ccxt_pro_fails_the_watch_when_the_socket_is_dropped():
    with fake_bingx() as bingx:
        client = pro_client(bingx, funded(bingx))
        try:
            await client.load_markets()
            watching = await connected(bingx, client, client.watch_orders)
            bingx.drop_ws_connections()
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(watching, WAIT_SECONDS)
        finally:
            await client.close()
