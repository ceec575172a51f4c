"""Orders, fills, triggers and positions, through real ccxt (sync)."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tests.fakes.bingx import fake_bingx
from tests.fakes.bingx.state import MSG_HEDGE_POSITION_SIDE, MSG_HEDGE_REDUCE_ONLY, MSG_ONE_WAY_POSITION_SIDE
from tests.fakes_tests.clients import signed_request, sync_client

BTC = "BTC/USDT:USDT"
ORDER = "/openApi/swap/v2/trade/order"


def trading(bingx, *, hedge=False, balance="10000", mark="50000"):
    account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal(balance), hedge=hedge)
    bingx.set_mark_price("BTC-USDT", Decimal(mark))
    return account, sync_client(bingx, account)


def escaped(message: str) -> str:
    return message.replace("'", ".").replace("(", ".").replace(")", ".")


# --- market orders and positions ---


def test_a_market_buy_fills_at_the_mark_with_the_taker_fee():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        created = client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "Entry-1"})
        (order,) = account.orders
    assert created["status"] is None and created["clientOrderId"] == "entry-1"
    assert (order.status, order.executed_qty, order.avg_price) == ("FILLED", Decimal("0.01"), Decimal("50000"))
    assert (order.commission, account.wallet_balance) == (Decimal("-0.25"), Decimal("9999.75"))
    assert (order.client_order_id, order.position_side, order.accepted_at > 0) == ("entry-1", "BOTH", True)


def test_a_one_way_position_reads_back_as_long_with_a_positive_amount():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01)
        (position,) = client.fetch_positions()
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 0.01, 50000.0)
    assert position["info"]["positionSide"] == "LONG" and position["info"]["onlyOnePosition"] is True
    assert account.position(BTC, "long").qty == Decimal("0.01")
    assert account.position(BTC, "short") is None


def test_one_way_mode_nets_and_a_bigger_sell_flips_the_position():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01)
        bingx.set_mark_price("BTC-USDT", 51000)
        client.create_order(BTC, "market", "sell", 0.03)
        sell = account.orders[-1]
    assert sell.profit == Decimal("10")  # 0.01 closed at +1000
    assert account.position(BTC, "long") is None
    short = account.position(BTC, "short")
    assert (short.qty, short.avg_price, short.side_sign) == (Decimal("0.02"), Decimal("51000"), -1)


def test_closing_realizes_the_pnl_into_the_wallet():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.1)
        bingx.set_mark_price("BTC-USDT", 49000)
        client.create_order(BTC, "market", "sell", 0.1, None, {"reduceOnly": True})
    fees = Decimal("0.1") * (50000 + 49000) * Decimal("0.0005")
    assert account.orders[-1].profit == Decimal("-100")
    assert account.wallet_balance == Decimal("10000") - 100 - fees
    assert account.positions == {}


def test_hedge_mode_keeps_long_and_short_apart_and_closes_one_side():
    with fake_bingx() as bingx:
        account, client = trading(bingx, hedge=True)
        client.create_order(BTC, "market", "buy", 0.02, None, {"hedged": True})
        client.create_order(BTC, "market", "sell", 0.01, None, {"hedged": True})
        client.create_order(BTC, "market", "sell", 0.02, None, {"hedged": True, "reduceOnly": True})
        sides = sorted((p["side"], p["contracts"]) for p in client.fetch_positions())
    assert sides == [("short", 0.01)]
    assert [o.position_side for o in account.orders] == ["LONG", "SHORT", "LONG"]


def test_hedge_mode_refuses_position_side_both():
    with fake_bingx() as bingx:
        _, client = trading(bingx, hedge=True)
        with pytest.raises(ccxt.BadRequest, match=escaped(MSG_HEDGE_POSITION_SIDE)):
            client.create_order(BTC, "market", "buy", 0.01)


def test_hedge_mode_refuses_reduce_only():
    with fake_bingx() as bingx:
        _, client = trading(bingx, hedge=True)
        with pytest.raises(ccxt.BadRequest, match=escaped(MSG_HEDGE_REDUCE_ONLY)):
            client.create_order(BTC, "market", "sell", 0.01, None, {"positionSide": "LONG", "reduceOnly": True})


def test_one_way_mode_refuses_a_long_position_side():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        with pytest.raises(ccxt.BadRequest, match=escaped(MSG_ONE_WAY_POSITION_SIDE)):
            client.create_order(BTC, "market", "buy", 0.01, None, {"hedged": True})


# --- refusals ---


def test_reduce_only_without_a_position_is_refused():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        with pytest.raises(ccxt.InvalidOrder, match="No position to close"):
            client.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert account.orders == []


def test_a_repeated_client_order_id_is_a_duplicate_whatever_its_case():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "limit", "buy", 0.01, 40000, {"clientOrderId": "sig-42"})
        with pytest.raises(ccxt.DuplicateOrderId):
            client.create_order(BTC, "limit", "buy", 0.01, 40000, {"clientOrderId": "SIG-42"})
    assert len(account.orders) == 1


def test_an_order_beyond_the_available_margin_is_insufficient_funds():
    with fake_bingx() as bingx:
        account, client = trading(bingx, balance="100")
        with pytest.raises(ccxt.InsufficientFunds, match="Insufficient margin"):
            client.create_order(BTC, "market", "buy", 0.02)  # 1000 notional / 10x = 100 + 0.5 fee
    assert account.orders == []


def test_a_quantity_off_the_step_is_an_invalid_order():
    with fake_bingx() as bingx:
        account, _ = trading(bingx)
        status, body = signed_request(
            bingx,
            account,
            "POST",
            ORDER,
            {"symbol": "BTC-USDT", "side": "BUY", "type": "MARKET", "quantity": "0.00015", "positionSide": "BOTH"},
        )
    assert (status, body["code"]) == (200, 101400)
    assert "step" in body["msg"]


def test_an_order_below_the_minimum_notional_is_an_invalid_order():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        with pytest.raises(ccxt.InvalidOrder, match="110425"):
            client.create_order(BTC, "limit", "buy", 0.0001, 10000)  # 1 USDT < 2 USDT


def test_a_market_order_before_any_mark_is_refused():
    with fake_bingx() as bingx:
        client = sync_client(bingx, bingx.add_account(api_key="k1", api_secret="s1"))
        with pytest.raises(ccxt.BadRequest, match="set_mark_price"):
            client.create_order("LTC/USDT:USDT", "market", "buy", 1)


def test_an_unknown_symbol_is_refused_bingx_style():
    with fake_bingx() as bingx:
        account, _ = trading(bingx)
        _, body = signed_request(
            bingx, account, "POST", ORDER, {"symbol": "NOPE-USDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
        )
    assert body["code"] == 109400 and "NOPE-USDT" in body["msg"]


def test_a_test_order_is_validated_but_never_placed():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        created = client.create_order(BTC, "market", "buy", 0.01, None, {"test": True})
        assert bingx.requests_for(ORDER + "/test")
        with pytest.raises(ccxt.InsufficientFunds):
            client.create_order(BTC, "market", "buy", 10, None, {"test": True})
    assert created["id"] and account.orders == [] and account.positions == {}


# --- limits and triggers ---


def test_a_limit_rests_with_frozen_margin_then_fills_at_its_price_when_the_mark_crosses():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        created = client.create_order(BTC, "limit", "buy", 0.01, 49000)
        assert client.fetch_order(created["id"], BTC)["status"] == "open"
        assert account.frozen_margin == Decimal("49")
        bingx.set_mark_price("BTC-USDT", 48500)
        filled = client.fetch_order(created["id"], BTC)
    assert (filled["status"], filled["average"], filled["filled"]) == ("closed", 49000.0, 0.01)
    assert account.orders[0].commission == Decimal("-0.098")  # maker 0.0002
    assert account.frozen_margin == 0


def test_a_marketable_limit_fills_at_once_at_the_mark():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "limit", "buy", 0.01, 51000)
    assert (account.orders[0].status, account.orders[0].avg_price) == ("FILLED", Decimal("50000"))


def test_a_partial_fill_is_reported_as_partially_filled():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        created = client.create_order(BTC, "limit", "buy", 0.02, 49000)
        account.fill_order(int(created["id"]), Decimal("0.005"))
        order = client.fetch_order(created["id"], BTC)
    assert (order["status"], order["filled"], order["amount"]) == ("open", 0.005, 0.02)
    assert order["info"]["status"] == "PARTIALLY_FILLED"


def test_attached_stop_loss_and_take_profit_become_reduce_only_triggers_after_the_fill():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(
            BTC,
            "market",
            "buy",
            0.01,
            None,
            {"stopLoss": {"triggerPrice": 45000}, "takeProfit": {"triggerPrice": 60000}},
        )
        triggers = client.fetch_open_orders(BTC)
    assert sorted((o["info"]["type"], o["side"], o["reduceOnly"]) for o in triggers) == [
        ("STOP_MARKET", "sell", True),
        ("TAKE_PROFIT_MARKET", "sell", True),
    ]
    assert {o.stop_price for o in account.open_orders} == {Decimal("45000"), Decimal("60000")}


def test_a_stop_loss_fires_on_the_mark_and_its_sibling_is_cancelled():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(
            BTC,
            "market",
            "buy",
            0.01,
            None,
            {"stopLoss": {"triggerPrice": 45000}, "takeProfit": {"triggerPrice": 60000}},
        )
        bingx.set_mark_price("BTC-USDT", 46000)
        assert len(account.open_orders) == 2
        bingx.set_mark_price("BTC-USDT", 44900)
    entry, stop, take = account.orders
    assert (stop.status, stop.avg_price, stop.profit) == ("FILLED", Decimal("44900"), Decimal("-51"))
    assert take.status == "CANCELLED"
    assert account.positions == {}


def test_a_take_profit_fires_when_the_mark_rises_through_it_in_hedge_mode():
    with fake_bingx() as bingx:
        account, client = trading(bingx, hedge=True)
        client.create_order(BTC, "limit", "buy", 0.01, 49000, {"hedged": True, "takeProfit": {"triggerPrice": 55000}})
        bingx.set_mark_price("BTC-USDT", 49000)
        (take,) = account.open_orders
        assert (take.type, take.position_side, take.side) == ("TAKE_PROFIT_MARKET", "LONG", "SELL")
        bingx.set_mark_price("BTC-USDT", 55500)
    assert account.order(take.order_id).status == "FILLED"
    assert account.position(BTC, "long") is None


def test_a_stand_alone_buy_stop_fires_when_the_mark_rises():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "sell", 0.01)
        client.create_order(BTC, "market", "buy", 0.01, None, {"stopLossPrice": 52000, "reduceOnly": True})
        bingx.set_mark_price("BTC-USDT", 51999)
        assert account.orders[-1].status == "NEW"
        bingx.set_mark_price("BTC-USDT", 52000)
    assert account.orders[-1].status == "FILLED"
    assert account.positions == {}


def test_a_trigger_order_opens_when_the_mark_reaches_it():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01, None, {"triggerPrice": 51000})
        assert account.orders[0].type == "TRIGGER_MARKET" and account.positions == {}
        bingx.set_mark_price("BTC-USDT", 51000)
    assert account.position(BTC, "long").avg_price == Decimal("51000")


# --- queries and cancels ---


def test_fetch_order_reads_back_what_was_placed():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        created = client.create_order(BTC, "limit", "sell", 0.01, 55000, {"clientOrderId": "abc"})
        order = client.fetch_order(created["id"], BTC)
    assert (order["id"], order["clientOrderId"], order["side"], order["type"]) == (
        created["id"],
        "abc",
        "sell",
        "limit",
    )
    assert (order["amount"], order["price"], order["status"], order["filled"]) == (0.01, 55000.0, "open", 0.0)
    assert order["info"]["leverage"] == "10X"


def test_an_order_can_be_looked_up_by_client_id():
    with fake_bingx() as bingx:
        account, _ = trading(bingx)
        sync_client(bingx, account).create_order(BTC, "limit", "buy", 0.01, 40000, {"clientOrderId": "Look-Me"})
        _, body = signed_request(bingx, account, "GET", ORDER, {"symbol": "BTC-USDT", "clientOrderID": "look-me"})
    assert body["data"]["order"]["clientOrderId"] == "look-me"
    assert account.order_by_client_id("LOOK-ME").price == Decimal("40000")


def test_an_unknown_order_is_order_not_found():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        with pytest.raises(ccxt.OrderNotFound):
            client.fetch_order("123", BTC)


def test_open_orders_lists_only_resting_orders():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01)
        resting = client.create_order(BTC, "limit", "buy", 0.01, 40000)
        assert [o["id"] for o in client.fetch_open_orders(BTC)] == [resting["id"]]
        assert [o["id"] for o in client.fetch_open_orders()] == [resting["id"]]


def test_cancel_by_id_cancels():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        created = client.create_order(BTC, "limit", "buy", 0.01, 40000)
        cancelled = client.cancel_order(created["id"], BTC)
    assert cancelled["status"] == "canceled" and account.orders[0].status == "CANCELLED"
    assert account.frozen_margin == 0


def test_cancel_by_client_id_cancels():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "limit", "buy", 0.01, 40000, {"clientOrderId": "c1"})
        client.cancel_order(None, BTC, {"clientOrderId": "c1"})
        assert bingx.requests_for(ORDER, "DELETE")[0].query["clientOrderID"] == "c1"
    assert account.order_by_client_id("c1").status == "CANCELLED"


def test_cancelling_a_filled_order_is_refused():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        created = client.create_order(BTC, "market", "buy", 0.01)
        with pytest.raises(ccxt.ExchangeError, match="order is already filled"):
            client.cancel_order(created["id"], BTC)


def test_cancel_all_orders_cancels_the_symbols_open_orders():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "limit", "buy", 0.01, 40000)
        client.create_order(BTC, "limit", "buy", 0.01, 41000)
        client.cancel_all_orders(BTC)
    assert [o.status for o in account.orders] == ["CANCELLED", "CANCELLED"]


def test_all_orders_is_the_history():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01)
        client.create_order(BTC, "limit", "buy", 0.01, 40000)
        _, body = signed_request(bingx, account, "GET", "/openApi/swap/v2/trade/allOrders", {"symbol": "BTC-USDT"})
    assert [o["status"] for o in body["data"]["orders"]] == ["FILLED", "NEW"]


def test_close_all_positions_closes_at_the_mark():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.create_order(BTC, "market", "buy", 0.01)
        client.close_all_positions()
    assert account.positions == {}
