"""Parity with BingX's recorded answers: real ccxt parses the fake's answer like the recorded one.

Each case runs the same unified ccxt call twice against the fake: once answered by the fake itself, once
answered with the recorded BingX body (``Fault.canned``) from ccxt's static fixtures
(/work/shared/data/bingx/ccxt-static-response-bingx.json, see its README). The two parsed structures must
have the same keys and the same value types; where the recording has a value, so must the fake, and on the
fields that matter the fake must not add a value BingX leaves empty either.

The recordings have no USDT-M swap case for fetchOpenOrders or cancelOrder: those two reuse the recorded
swap order of fetchOrder "swap stopLoss order" (wrapped in ``data.orders``, and with status CANCELLED).
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bingx import Fault, fake_bingx
from tests.fakes_tests.clients import sync_client

RECORDINGS = Path("/work/shared/data/bingx/ccxt-static-response-bingx.json")
LTC = "LTC/USDT:USDT"
ORDER = "/openApi/swap/v2/trade/order"
POSITIONS = "/openApi/swap/v2/user/positions"


def recorded_case(method: str, description: str) -> dict[str, Any]:
    document = json.loads(RECORDINGS.read_text())
    return next(case for case in document["methods"][method] if case["description"] == description)


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key != "info"}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def mismatches(recorded: Any, fake: Any, strict: tuple[str, ...], where: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(fake, dict):
        problems = [f"{where}: keys {sorted(set(recorded) ^ set(fake))}"] if set(recorded) != set(fake) else []
        for key in set(recorded) & set(fake):
            if key in strict and (recorded[key] == "NoneType") != (fake[key] == "NoneType"):
                problems.append(f"{where}.{key}: recorded {recorded[key]}, fake {fake[key]}")
            else:
                problems += mismatches(recorded[key], fake[key], strict, f"{where}.{key}")
        return problems
    if isinstance(recorded, list) and isinstance(fake, list):
        if len(recorded) != len(fake):
            return [f"{where}: {len(recorded)} items recorded, {len(fake)} from the fake"]
        return [p for r, f in zip(recorded, fake, strict=True) for p in mismatches(r, f, strict, f"{where}[]")]
    if recorded == "NoneType" or recorded == fake:
        return []
    return [f"{where}: recorded {recorded}, fake {fake}"]


def assert_same_shape(recorded: Any, fake: Any, strict: tuple[str, ...]) -> None:
    assert mismatches(shape(recorded), shape(fake), strict) == []


def both_answers(bingx, client, http_method: str, path: str, body: Any, call) -> tuple[Any, Any]:
    fake = call()
    bingx.fault(http_method, path, Fault.canned(body), times=1)
    recorded = call()
    assert bingx.fired_faults[-1].path == path
    return recorded, fake


def trading(bingx, *, hedge: bool = False):
    account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("10000"), hedge=hedge)
    bingx.set_mark_price("LTC-USDT", Decimal("95.61"))
    bingx.set_mark_price("BTC-USDT", Decimal("50000"))
    return account, sync_client(bingx, account)


ORDER_FIELDS = ("id", "clientOrderId", "symbol", "type", "side", "amount", "price", "status", "reduceOnly")
TRIGGER_FIELDS = ("triggerPrice", "stopLossPrice", "takeProfitPrice")


def test_fetch_balance_parses_like_bingxs_swap_balance():
    case = recorded_case("fetchBalance", "swap fetch balance")
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        recorded, fake = both_answers(
            bingx, client, "GET", "/openApi/swap/v3/user/balance", case["httpResponse"], client.fetch_balance
        )
    assert_same_shape(recorded, fake, ("free", "used", "total"))


def test_fetch_positions_parses_like_bingxs_positions():
    case = recorded_case("fetchPositions", "fetch position")
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        client.create_order(LTC, "market", "buy", 0.1)
        recorded, fake = both_answers(
            bingx, client, "GET", POSITIONS, case["httpResponse"], lambda: client.fetch_positions([LTC])
        )
    strict = ("id", "symbol", "side", "contracts", "entryPrice", "marginMode", "notional", "markPrice", "leverage")
    assert_same_shape(recorded, fake, strict)


@pytest.mark.parametrize(
    ("description", "strict"),
    [
        ("swap create order limit", ("id", "clientOrderId", "symbol", "side", "status")),
        ("Create order with tp and sl", ORDER_FIELDS + TRIGGER_FIELDS),
        ("create takeProfitOrder", ORDER_FIELDS + TRIGGER_FIELDS),
        ("create trigger order", ORDER_FIELDS + TRIGGER_FIELDS),
    ],
)
def test_create_order_parses_like_bingxs_created_order(description, strict):
    case = recorded_case("createOrder", description)
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        recorded, fake = both_answers(
            bingx, client, "POST", ORDER, case["httpResponse"], lambda: client.create_order(*case["input"])
        )
    assert_same_shape(recorded, fake, strict)


def test_fetch_order_parses_like_bingxs_filled_swap_order():
    case = recorded_case("fetchOrder", "fetch swap order")  # a hedge-mode market close of a long
    with fake_bingx() as bingx:
        _, client = trading(bingx, hedge=True)
        client.create_order(LTC, "market", "buy", 0.1, None, {"hedged": True})
        close = client.create_order(
            LTC, "market", "sell", 0.1, None, {"hedged": True, "reduceOnly": True, "clientOrderId": "b39b0316"}
        )
        recorded, fake = both_answers(
            bingx, client, "GET", ORDER, case["httpResponse"], lambda: client.fetch_order(close["id"], LTC)
        )
    assert_same_shape(recorded, fake, ORDER_FIELDS + ("filled", "average", "timestamp", "fee"))
    assert (fake["reduceOnly"], fake["timeInForce"]) == (True, "IOC")
    assert (recorded["reduceOnly"], recorded["timeInForce"]) == (True, "IOC")


def test_the_comparison_catches_a_missing_or_an_extra_value():
    recorded, fake = shape({"id": "1", "price": None}), shape({"id": None, "price": 1.0})
    assert sorted(mismatches(recorded, fake, ("id", "price"))) == [
        ".id: recorded str, fake NoneType",
        ".price: recorded NoneType, fake float",
    ]


def place_stand_alone_stop_loss(client) -> dict:
    client.create_order(LTC, "market", "buy", 0.1)
    return client.create_order(LTC, "market", "sell", 0.1, None, {"stopLossPrice": 20, "reduceOnly": True})


def test_fetch_order_parses_like_bingxs_resting_stop_loss():
    case = recorded_case("fetchOrder", "swap stopLoss order")
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        stop = place_stand_alone_stop_loss(client)
        recorded, fake = both_answers(
            bingx, client, "GET", ORDER, case["httpResponse"], lambda: client.fetch_order(stop["id"], LTC)
        )
    assert_same_shape(recorded, fake, ORDER_FIELDS + TRIGGER_FIELDS + ("filled", "average", "fee"))


def test_fetch_open_orders_parses_like_bingxs_swap_order_list():
    order = recorded_case("fetchOrder", "swap stopLoss order")["httpResponse"]["data"]["order"]
    body = {"code": "0", "msg": "", "data": {"orders": [order]}}
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        place_stand_alone_stop_loss(client)
        recorded, fake = both_answers(
            bingx, client, "GET", "/openApi/swap/v2/trade/openOrders", body, lambda: client.fetch_open_orders(LTC)
        )
    assert_same_shape(recorded, fake, ORDER_FIELDS + TRIGGER_FIELDS)


def test_cancel_order_parses_like_bingxs_cancelled_swap_order():
    body = copy.deepcopy(recorded_case("fetchOrder", "swap stopLoss order")["httpResponse"])
    body["data"]["order"]["status"] = "CANCELLED"
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        stop = place_stand_alone_stop_loss(client)
        fake = client.cancel_order(stop["id"], LTC)
        bingx.fault("DELETE", ORDER, Fault.canned(body), times=1)
        recorded = client.cancel_order(stop["id"], LTC)
    assert fake["status"] == recorded["status"] == "canceled"
    assert_same_shape(recorded, fake, ORDER_FIELDS + TRIGGER_FIELDS)


def test_fetch_margin_mode_parses_like_bingxs_margin_type():
    case = recorded_case("fetchMarginMode", "fetch linear swap margin mode")
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        recorded, fake = both_answers(
            bingx,
            client,
            "GET",
            "/openApi/swap/v2/trade/marginType",
            case["httpResponse"],
            lambda: client.fetch_margin_mode(*case["input"]),
        )
    assert fake["marginMode"] == recorded["marginMode"] == "cross"
    assert_same_shape(recorded, fake, ("symbol", "marginMode"))
