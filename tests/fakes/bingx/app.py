"""BingX's HTTP endpoints (the paths ccxt 4.5.90 calls) mapped onto ``FakeBingXState``.

Each request passes, in order: recording -> injected fault (if one matches) -> the global response delay ->
the handler. Private handlers first authenticate as BingX does (reference §1): a known ``X-BX-APIKEY``
(100413), an HMAC-SHA256 signature over the raw query string (100001), a timestamp within ``recvWindow``
(default 5000 ms) of the fake's clock (100421). Params always come from the query string, whatever the method;
unknown params are ignored. Refusals are HTTP 200 with BingX's envelope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import faults
from .state import BingXError, FakeAccount, FakeBingXState, symbol_id
from .wire import balance_view, order_created_view, order_view, plain, position_view

STATE = web.AppKey("state", FakeBingXState)
DEFAULT_RECV_WINDOW_MS = 5000
API = "/openApi"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # decoded
    api_key: str | None = None
    signature_ok: bool | None = None  # None: unsigned, or signed for an unknown key
    time: float = field(default=0.0)  # time.time() when received


def bingx_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signature_payload(raw_query: str) -> tuple[str, str | None]:
    """(the string BingX signs, the signature sent): the raw query minus ``signature``, values %-decoded."""
    pairs = [part.partition("=") for part in raw_query.split("&") if part]
    signature = next((value for key, _, value in pairs if key == "signature"), None)
    payload = "&".join(f"{key}={unquote(value)}" for key, _, value in pairs if key != "signature")
    return payload, signature


def signature_valid(secret: str, raw_query: str) -> bool:
    payload, signature = signature_payload(raw_query)
    return signature is not None and hmac.compare_digest(bingx_signature(secret, payload), signature)


def bingx_ok(data: Any = None, *, state: FakeBingXState | None = None) -> web.Response:
    body: dict[str, Any] = {"code": 0, "msg": "", "timestamp": _now_ms(state)}
    if data is not None:
        body["data"] = data
    return web.json_response(body)


def bingx_error(code: int, msg: str, *, state: FakeBingXState | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg, "timestamp": _now_ms(state)})


def _now_ms(state: FakeBingXState | None = None) -> int:
    return state.now_ms() if state is not None else int(time.time() * 1000)


def create_app(state: FakeBingXState, ws_handler: Callable[[web.Request], Awaitable[Any]] | None = None):
    app = web.Application(middlewares=[_record_request, _inject_faults, _bingx_errors])
    app[STATE] = state
    get, post, put, delete = app.router.add_get, app.router.add_post, app.router.add_put, app.router.add_delete
    # public
    get(f"{API}/swap/v2/quote/contracts", _swap_contracts)
    get(f"{API}/cswap/v1/market/contracts", _inverse_swap_contracts)
    get(f"{API}/spot/v1/common/symbols", _spot_symbols)
    get(f"{API}/swap/v2/server/time", _server_time)
    get(f"{API}/swap/v2/quote/ticker", _ticker)
    get(f"{API}/swap/v2/quote/premiumIndex", _premium_index)
    # private
    get(f"{API}/wallets/v1/capital/config/getall", private(_currencies))
    get(f"{API}/swap/v3/user/balance", private(_balance))
    get(f"{API}/swap/v2/user/positions", private(_positions))
    get(f"{API}/swap/v2/trade/leverage", private(_leverage_get))
    post(f"{API}/swap/v2/trade/leverage", private(_leverage_set))
    get(f"{API}/swap/v2/trade/marginType", private(_margin_type_get))
    post(f"{API}/swap/v2/trade/marginType", private(_margin_type_set))
    get(f"{API}/swap/v1/positionSide/dual", private(_position_mode_get))
    post(f"{API}/swap/v1/positionSide/dual", private(_position_mode_set))
    post(f"{API}/swap/v2/trade/order", private(_order_create))
    post(f"{API}/swap/v2/trade/order/test", private(_order_create_test))
    get(f"{API}/swap/v2/trade/order", private(_order_get))
    delete(f"{API}/swap/v2/trade/order", private(_order_cancel))
    get(f"{API}/swap/v2/trade/openOrders", private(_open_orders))
    get(f"{API}/swap/v2/trade/allOrders", private(_all_orders))
    get(f"{API}/swap/v1/trade/fullOrder", private(_all_orders))
    delete(f"{API}/swap/v2/trade/allOpenOrders", private(_cancel_all_orders))
    post(f"{API}/swap/v2/trade/closeAllPositions", private(_close_all_positions))
    post(f"{API}/user/auth/userDataStream", private(_listen_key_create))
    put(f"{API}/user/auth/userDataStream", private(_listen_key_extend))
    delete(f"{API}/user/auth/userDataStream", private(_listen_key_delete))
    if ws_handler is not None:
        get("/swap-market", ws_handler)
    return app


# --- middlewares ---------------------------------------------------------------------------------------


@web.middleware
async def _record_request(request: web.Request, handler):
    state = request.app[STATE]
    api_key = request.headers.get("X-BX-APIKEY")
    signature_ok = None
    raw_query = request.rel_url.raw_query_string
    with state.lock:
        account = state.accounts.get(api_key) if api_key else None
        if account is not None and "signature=" in raw_query:
            signature_ok = signature_valid(account.api_secret, raw_query)
        state.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), api_key, signature_ok, time.time())
        )
    return await handler(request)


@web.middleware
async def _inject_faults(request: web.Request, handler):
    state = request.app[STATE]
    fault = state.take_fault(request.method, request.path)
    if fault is None:
        return await handler(request)
    if fault.kind == faults.DELAY:
        await asyncio.sleep(fault.seconds)
        return await handler(request)
    if fault.kind == faults.TIMEOUT_AFTER_EXECUTE:
        await handler(request)
        await asyncio.sleep(fault.seconds)
        return _close_without_answer(request)
    if fault.kind == faults.TIMEOUT_BEFORE_EXECUTE:
        await asyncio.sleep(fault.seconds)
        return _close_without_answer(request)
    if fault.kind == faults.DROP_CONNECTION:
        return _close_without_answer(request)
    if fault.kind == faults.HTTP_ERROR:
        return web.Response(status=fault.status, text=f"{fault.status} fake BingX fault")
    if fault.kind == faults.RATE_LIMIT:
        return web.Response(status=429, text="Too Many Requests")
    if fault.kind == faults.ERROR:
        return bingx_error(fault.code, fault.msg, state=state)
    if fault.kind == faults.CANNED:
        return web.json_response(fault.body, status=fault.status)
    raise ValueError(f"unknown fault kind {fault.kind!r}")


def _close_without_answer(request: web.Request) -> web.StreamResponse:
    # Closing the transport leaves the client with no status line at all; aiohttp then skips the write.
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


@web.middleware
async def _bingx_errors(request: web.Request, handler):
    state = request.app[STATE]
    if state.response_delay_seconds:
        await asyncio.sleep(state.response_delay_seconds)
    try:
        return await handler(request)
    except BingXError as error:
        return bingx_error(error.code, error.msg, state=state)


def private(handler: Callable[[web.Request, FakeAccount, dict[str, str]], Awaitable[web.StreamResponse]]):
    async def authenticated(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        params = dict(request.query)
        with state.lock:
            account = state.accounts.get(request.headers.get("X-BX-APIKEY", ""))
        if account is None:
            raise BingXError(100413, "Incorrect apiKey")
        if not signature_valid(account.api_secret, request.rel_url.raw_query_string):
            raise BingXError(100001, "Signature verification failed")
        try:
            timestamp = int(params.get("timestamp", ""))
            window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
        except ValueError:
            raise BingXError(100421, "Null timestamp or timestamp mismatch") from None
        if abs(state.now_ms() - timestamp) > window:
            raise BingXError(100421, "Null timestamp or timestamp mismatch")
        return await handler(request, account, params)

    return authenticated


# --- public --------------------------------------------------------------------------------------------


async def _swap_contracts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.market_error:
        return bingx_error(*state.market_error, state=state)
    return bingx_ok(state.swap_contracts, state=state)


async def _inverse_swap_contracts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return bingx_error(*state.market_error, state=state) if state.market_error else bingx_ok([], state=state)


async def _spot_symbols(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.market_error:
        return bingx_error(*state.market_error, state=state)
    return bingx_ok({"symbols": []}, state=state)


async def _server_time(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return bingx_ok({"serverTime": state.now_ms()}, state=state)


def _ticker_view(state: FakeBingXState, symbol: str) -> dict[str, Any]:
    mark = plain(state.marks[symbol])
    now = state.now_ms()
    return {
        "symbol": symbol,
        "priceChange": "0",
        "priceChangePercent": "0",
        "lastPrice": mark,
        "lastQty": "0",
        "highPrice": mark,
        "lowPrice": mark,
        "volume": "0",
        "quoteVolume": "0",
        "openPrice": mark,
        "openTime": now - 24 * 3600 * 1000,
        "closeTime": now,
        "bidPrice": mark,
        "bidQty": "0",
        "askPrice": mark,
        "askQty": "0",
    }


def _priced_symbols(state: FakeBingXState, request: web.Request) -> list[str]:
    symbol = request.query.get("symbol")
    with state.lock:
        if symbol:
            state.contract(symbol)
            if symbol_id(symbol) not in state.marks:
                raise BingXError(80001, f"no market price for {symbol} yet (fake BingX: call set_mark_price first)")
            return [symbol_id(symbol)]
        return sorted(state.marks)


async def _ticker(request: web.Request) -> web.Response:
    state = request.app[STATE]
    views = [_ticker_view(state, symbol) for symbol in _priced_symbols(state, request)]
    return bingx_ok(views[0] if request.query.get("symbol") else views, state=state)


async def _premium_index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    eight_hours = 8 * 3600 * 1000
    views = [
        {
            "symbol": symbol,
            "markPrice": plain(state.marks[symbol]),
            "indexPrice": plain(state.marks[symbol]),
            "lastFundingRate": "0.00010000",
            "nextFundingTime": (state.now_ms() // eight_hours + 1) * eight_hours,
        }
        for symbol in _priced_symbols(state, request)
    ]
    return bingx_ok(views[0] if request.query.get("symbol") else views, state=state)


# --- private: account ----------------------------------------------------------------------------------


async def _currencies(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    return bingx_ok([], state=request.app[STATE])


async def _balance(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    return bingx_ok([balance_view(state, account)], state=state)


async def _positions(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    symbol = params.get("symbol")
    with state.lock:
        if symbol:
            state.contract(symbol)
        views = [
            position_view(state, position)
            for position in account._positions.values()
            if not symbol or position.symbol == symbol_id(symbol)
        ]
    return bingx_ok(views, state=state)


async def _leverage_get(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        contract = state.contract(params.get("symbol", ""))
        available = account.available_margin
        long_leverage = account.leverage(contract.symbol, "LONG")
        short_leverage = account.leverage(contract.symbol, "SHORT")
    return bingx_ok(
        {
            "longLeverage": long_leverage,
            "shortLeverage": short_leverage,
            "maxLongLeverage": contract.max_long_leverage,
            "maxShortLeverage": contract.max_short_leverage,
            "availableLongVol": plain(available * long_leverage),
            "availableShortVol": plain(available * short_leverage),
            "availableLongVal": plain(available * long_leverage),
            "availableShortVal": plain(available * short_leverage),
            "maxPositionLongVal": "0",
            "maxPositionShortVal": "0",
        },
        state=state,
    )


async def _leverage_set(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    symbol = params.get("symbol", "")
    value = state.api_set_leverage(account, symbol, params.get("side", ""), params.get("leverage", ""))
    available = account.available_margin
    return bingx_ok(
        {
            "leverage": value,
            "symbol": symbol_id(symbol),
            "availableLongVol": plain(available * value),
            "availableShortVol": plain(available * value),
            "availableLongVal": plain(available * value),
            "availableShortVal": plain(available * value),
            "maxPositionLongVal": "0",
            "maxPositionShortVal": "0",
        },
        state=state,
    )


async def _margin_type_get(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    contract = state.contract(params.get("symbol", ""))
    mode = account.margin_mode(contract.symbol)
    return bingx_ok({"marginType": "ISOLATED" if mode == "isolated" else "CROSSED", "symbol": contract.symbol})


async def _margin_type_set(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    state.api_set_margin_type(account, params.get("symbol", ""), params.get("marginType", ""))
    return bingx_ok(state=state)


async def _position_mode_get(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    return bingx_ok({"dualSidePosition": "true" if account.hedge else "false"}, state=request.app[STATE])


async def _position_mode_set(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    state.api_set_position_mode(account, params.get("dualSidePosition", ""))
    return bingx_ok({"dualSidePosition": "true" if account.hedge else "false"}, state=state)


# --- private: orders -----------------------------------------------------------------------------------


async def _order_create(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        order = state.place_order(account, params)
        return bingx_ok({"order": order_created_view(state, order)}, state=state)


async def _order_create_test(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        order = state.place_order(account, params, test=True)
        return bingx_ok({"order": order_created_view(state, order)}, state=state)


def _order_for(state: FakeBingXState, account: FakeAccount, params: dict[str, str]):
    order = state.find_order(account, params.get("orderId"), params.get("clientOrderID") or params.get("clientOrderId"))
    if params.get("symbol") and symbol_id(params["symbol"]) != order.symbol:
        raise BingXError(80016, "order not exist")
    return order


async def _order_get(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        return bingx_ok({"order": order_view(state, _order_for(state, account, params))}, state=state)


async def _order_cancel(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        order = _order_for(state, account, params)
        state.cancel_order(account, str(order.order_id), None)
        return bingx_ok({"order": order_view(state, order)}, state=state)


async def _open_orders(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    symbol = symbol_id(params["symbol"]) if params.get("symbol") else None
    with state.lock:
        views = [
            order_view(state, order)
            for order in account._orders
            if order.is_open and (symbol is None or order.symbol == symbol)
        ]
    return bingx_ok({"orders": views}, state=state)


async def _all_orders(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    symbol = symbol_id(params["symbol"]) if params.get("symbol") else None
    start = int(params.get("startTime") or 0)
    end = int(params.get("endTime") or 2**63)
    limit = int(params.get("limit") or 500)
    with state.lock:
        selected = [
            order
            for order in account._orders
            if (symbol is None or order.symbol == symbol) and start <= order.time_ms <= end
        ]
        views = [order_view(state, order) for order in selected[-limit:]]
    return bingx_ok({"orders": views}, state=state)


async def _cancel_all_orders(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        symbol = state.contract(params["symbol"]).symbol if params.get("symbol") else None
        cancelled = state.cancel_all_orders(account, symbol)
        return bingx_ok({"success": [order_view(state, order) for order in cancelled], "failed": None}, state=state)


async def _close_all_positions(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        symbol = state.contract(params["symbol"]).symbol if params.get("symbol") else None
        order_ids = state.close_all_positions(account, symbol)
    return bingx_ok({"success": order_ids, "failed": None}, state=state)


# --- private: user-data stream listen keys -------------------------------------------------------------


async def _listen_key_create(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    # The one answer without BingX's envelope: a bare {"listenKey": ...}.
    return web.json_response({"listenKey": request.app[STATE].listen_key_create(account)})


async def _listen_key_extend(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    extended = request.app[STATE].listen_key_extend(params.get("listenKey", ""))
    return web.Response(status=200 if extended else 404)


async def _listen_key_delete(request: web.Request, account: FakeAccount, params: dict[str, str]) -> web.Response:
    deleted = request.app[STATE].listen_key_delete(params.get("listenKey", ""))
    return web.Response(status=200 if deleted else 404)
