"""BingX's JSON shapes for the simulated objects (reference §2 and §4, and ccxt's recorded responses).

Numbers are strings, as BingX sends them, except where BingX sends JSON numbers (order ids, times, leverage).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import FakeAccount, FakeBingXState, FakeOrder, FakePosition

MONEY_PLACES = 4
FEE_PLACES = 8
SETTLE_ASSET = "USDT"
WS_STATUS = {"CANCELLED": "CANCELED"}  # the stream spells it the American way


def fixed(value: Decimal, places: int) -> str:
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (``0.00100`` -> ``0.001``, ``5E+1`` -> ``50``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def balance_view(state: FakeBingXState, account: FakeAccount) -> dict[str, Any]:
    with state.lock:
        return {
            "userId": str(abs(hash(account.api_key)) % 10**9),
            "asset": SETTLE_ASSET,
            "balance": fixed(account.wallet_balance, MONEY_PLACES),
            "equity": fixed(account.equity, MONEY_PLACES),
            "unrealizedProfit": fixed(account.unrealized_profit, MONEY_PLACES),
            "realisedProfit": fixed(account.realised_profit, MONEY_PLACES),
            "availableMargin": fixed(account.available_margin, MONEY_PLACES),
            "usedMargin": fixed(account.used_margin, MONEY_PLACES),
            "freezedMargin": fixed(account.frozen_margin, MONEY_PLACES),
            "shortUid": str(abs(hash(account.api_key)) % 10**8),
        }


def position_view(state: FakeBingXState, position: FakePosition) -> dict[str, Any]:
    contract = state.contract(position.symbol)
    mark = state.marks.get(position.symbol, position.avg_price)
    unrealized = position.unrealized_profit(mark)
    margin = position.initial_margin
    value = position.qty * mark
    return {
        "positionId": str(position.position_id),
        "symbol": position.symbol,
        "currency": SETTLE_ASSET,
        "positionAmt": fixed(position.qty, contract.quantity_places),
        "availableAmt": fixed(position.qty, contract.quantity_places),
        "positionSide": position.position_side,
        "isolated": position.margin_mode == "isolated",
        "avgPrice": plain(position.avg_price),
        "initialMargin": fixed(margin, MONEY_PLACES),
        "margin": fixed(margin + unrealized if position.margin_mode == "isolated" else margin, MONEY_PLACES),
        "leverage": position.leverage,
        "unrealizedProfit": fixed(unrealized, MONEY_PLACES),
        "realisedProfit": fixed(position.realized_profit, MONEY_PLACES),
        "liquidationPrice": 0,
        "pnlRatio": fixed(unrealized / margin if margin else Decimal(0), MONEY_PLACES),
        "maxMarginReduction": "0.0000",
        "riskRate": "0.0000",
        "markPrice": plain(mark),
        "positionValue": fixed(value, MONEY_PLACES),
        "onlyOnePosition": position.one_way,
        "updateTime": position.update_time_ms,
    }


def _empty_attachment() -> dict[str, Any]:
    return {"type": "", "quantity": "0", "stopPrice": "0", "price": "0", "workingType": "", "stopGuaranteed": ""}


def _attachment(raw: str) -> dict[str, Any]:
    import json

    if not raw:
        return _empty_attachment()
    try:
        spec = json.loads(raw)
    except ValueError:
        return _empty_attachment()
    return {**_empty_attachment(), **{key: str(value) for key, value in spec.items()}}


def order_view(state: FakeBingXState, order: FakeOrder) -> dict[str, Any]:
    """An order as GET trade/order, openOrders, allOrders and DELETE trade/order return it (reference §2.6)."""
    contract = state.contract(order.symbol)
    filled = order.executed_qty > 0
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "side": order.side,
        "positionSide": order.position_side,
        "type": order.type,
        "origQty": fixed(order.qty, contract.quantity_places),
        "price": fixed(order.price, contract.price_places),
        "executedQty": fixed(order.executed_qty, contract.quantity_places),
        "avgPrice": fixed(order.avg_price, contract.price_places),
        "cumQuote": plain(order.executed_qty * order.avg_price) if filled else "",
        "stopPrice": fixed(order.stop_price, contract.price_places) if order.stop_price else "",
        "profit": fixed(order.profit, MONEY_PLACES) if filled else "",
        "commission": plain(order.commission) if filled else "",
        "status": order.status,
        "time": order.time_ms,
        "updateTime": order.update_time_ms,
        "clientOrderId": order.client_order_id,
        "leverage": f"{order.leverage}X",
        "takeProfit": _attachment(order.take_profit),
        "stopLoss": _attachment(order.stop_loss),
        "advanceAttr": 0,
        "positionID": 0,
        "takeProfitEntrustPrice": 0,
        "stopLossEntrustPrice": 0,
        "orderType": "",
        "workingType": order.working_type,
        "onlyOnePosition": order.position_side == "BOTH",
        "reduceOnly": order.closes_position,  # BingX reports hedge-mode closing orders as reduce-only
        "postOnly": order.time_in_force == "PostOnly",
        "stopGuaranteed": "false",
        "triggerOrderId": order.parent_order_id or 0,
    }


def order_created_view(state: FakeBingXState, order: FakeOrder) -> dict[str, Any]:
    """``data.order`` of POST trade/order: the request echoed back, no status (reference §2.4)."""
    contract = state.contract(order.symbol)
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "positionSide": order.position_side,
        "side": order.side,
        "type": order.type,
        "price": plain(order.price) if order.type != "MARKET" else "0",
        "quantity": fixed(order.qty, contract.quantity_places),
        "stopPrice": plain(order.stop_price),
        "workingType": order.working_type,
        "clientOrderID": order.client_order_id,
        "timeInForce": order.time_in_force,
        "priceRate": "0",
        "stopLoss": order.stop_loss,
        "takeProfit": order.take_profit,
        "reduceOnly": order.reduce_only,
        "activationPrice": "0",
        "closePosition": "",
        "stopGuaranteed": "",
    }


def order_event(
    state: FakeBingXState,
    order: FakeOrder,
    execution: str,
    *,
    last_qty: Decimal = Decimal(0),
    last_price: Decimal = Decimal(0),
    realized: Decimal = Decimal(0),
) -> dict[str, Any]:
    """ORDER_TRADE_UPDATE (reference §4): pushed on NEW, each TRADE and CANCELED. No dataType key."""
    now = state.now_ms()
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now,
        "o": {
            "s": order.symbol,
            "c": order.client_order_id,
            "i": order.order_id,
            "S": order.side,
            "o": order.type,
            "q": plain(order.qty),
            "p": plain(order.price),
            "sp": plain(order.stop_price),
            "ap": plain(order.avg_price),
            "x": execution,
            "X": WS_STATUS.get(order.status, order.status),
            "N": SETTLE_ASSET,
            "n": plain(order.commission),
            "T": order.update_time_ms,
            "wt": order.working_type,
            "ps": order.position_side,
            "rp": plain(realized),
            "z": plain(order.executed_qty),
            "l": plain(last_qty),
            "L": plain(last_price),
        },
    }


def account_update_event(state: FakeBingXState, account: FakeAccount, touched: list[tuple[str, str]]) -> dict[str, Any]:
    """ACCOUNT_UPDATE after a fill: the wallet and every position the fill touched (a closed one with pa 0)."""
    now = state.now_ms()
    positions = []
    isolated_wallet = Decimal(0)
    for position in account._positions.values():
        if position.margin_mode == "isolated":
            isolated_wallet += position.initial_margin
    for symbol, side in touched:
        position = account._positions.get((symbol, side))
        mode = account.margin_mode(symbol)
        if position is None:
            entry = {"s": symbol, "pa": "0", "ep": "0", "up": "0", "mt": mode, "iw": "0", "ps": side}
        else:
            mark = state.marks.get(symbol)
            entry = {
                "s": symbol,
                "pa": plain(position.qty),
                "ep": plain(position.avg_price),
                "up": fixed(position.unrealized_profit(mark), MONEY_PLACES),
                "mt": position.margin_mode,
                "iw": fixed(
                    position.initial_margin if position.margin_mode == "isolated" else Decimal(0), MONEY_PLACES
                ),
                "ps": side,
            }
        positions.append(entry)
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now,
        "T": now,
        "a": {
            "m": "ORDER",
            "B": [
                {
                    "a": SETTLE_ASSET,
                    "wb": fixed(account.wallet_balance, MONEY_PLACES),
                    "cw": fixed(account.wallet_balance - isolated_wallet, MONEY_PLACES),
                    "bc": "0",
                }
            ],
            "P": positions,
        },
    }
