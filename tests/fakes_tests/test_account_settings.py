"""Balance, leverage, margin mode and position mode, through real ccxt."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tests.fakes.bingx import fake_bingx
from tests.fakes.bingx.state import MSG_HEDGE_SIDE, MSG_ONE_WAY_SIDE
from tests.fakes_tests.clients import sync_client

BTC = "BTC/USDT:USDT"


def test_a_fresh_account_balance_is_all_free():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("1234.5"))
        balance = sync_client(bingx, account).fetch_balance()["USDT"]
    assert (balance["free"], balance["used"], balance["total"]) == (1234.5, 0.0, 1234.5)


def test_the_balance_shows_used_margin_fees_and_unrealized_profit():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("10000"))
        client = sync_client(bingx, account)
        bingx.set_mark_price("BTC-USDT", 50000)
        client.create_order(BTC, "market", "buy", 0.1)  # 5000 notional at 10x: 500 margin, 2.5 fee
        bingx.set_mark_price("BTC-USDT", 51000)  # +100 unrealized
        raw = client.fetch_balance()["info"]["data"][0]
    assert raw["balance"] == "9997.5000"
    assert (raw["usedMargin"], raw["unrealizedProfit"], raw["equity"]) == ("500.0000", "100.0000", "10097.5000")
    assert raw["availableMargin"] == "9597.5000"
    assert account.available_margin == Decimal("9597.5")


def test_leverage_is_set_for_both_sides_in_one_way_mode_and_read_back():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.set_leverage(20, BTC, {"side": "BOTH"})
        leverage = client.fetch_leverage(BTC)
    assert (leverage["longLeverage"], leverage["shortLeverage"]) == (20, 20)
    assert account.leverage("BTC-USDT", "SHORT") == 20


def test_one_way_mode_refuses_a_long_side_leverage():
    with fake_bingx() as bingx:
        client = sync_client(bingx, bingx.add_account(api_key="k1", api_secret="s1"))
        with pytest.raises(ccxt.BadRequest, match=MSG_ONE_WAY_SIDE.replace("'", ".")):
            client.set_leverage(20, BTC, {"side": "LONG"})


def test_hedge_mode_sets_each_side_and_refuses_both():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1", hedge=True)
        client = sync_client(bingx, account)
        client.set_leverage(7, BTC, {"side": "SHORT"})
        with pytest.raises(ccxt.BadRequest, match=MSG_HEDGE_SIDE.replace("'", ".")):
            client.set_leverage(7, BTC, {"side": "BOTH"})
    assert (account.leverage(BTC, "LONG"), account.leverage(BTC, "SHORT")) == (10, 7)


def test_leverage_above_the_contracts_maximum_is_refused():
    with fake_bingx() as bingx:
        client = sync_client(bingx, bingx.add_account(api_key="k1", api_secret="s1"))
        with pytest.raises(ccxt.BadRequest, match="maximum 5"):
            client.set_leverage(6, "ADA/USDT:USDT", {"side": "BOTH"})


def test_the_default_leverage_is_capped_by_the_contract():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
    assert (account.leverage("BTC-USDT"), account.leverage("ADA-USDT")) == (10, 5)


def test_margin_mode_is_set_and_read_back():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.set_margin_mode("isolated", BTC)
        assert client.fetch_margin_mode(BTC)["marginMode"] == "isolated"
    assert account.margin_mode("BTC-USDT") == "isolated"


def test_margin_mode_cannot_change_while_a_position_is_open():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        bingx.set_mark_price("BTC-USDT", 50000)
        client.create_order(BTC, "market", "buy", 0.01)
        with pytest.raises(ccxt.BadRequest, match="positions or open orders"):
            client.set_margin_mode("isolated", BTC)
    assert account.margin_mode(BTC) == "cross"


def test_an_isolated_position_reports_isolated():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        account.set_margin_mode("BTC-USDT", "isolated")
        client = sync_client(bingx, account)
        bingx.set_mark_price("BTC-USDT", 50000)
        client.create_order(BTC, "market", "sell", 0.01)
        (position,) = client.fetch_positions()
    assert (position["marginMode"], position["side"], position["contracts"]) == ("isolated", "short", 0.01)


def test_position_mode_is_set_and_read_back():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.set_position_mode(True)
        assert client.fetch_position_mode()["hedged"] is True
    assert account.hedge is True


def test_position_mode_cannot_change_while_an_order_is_open():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.create_order(BTC, "limit", "buy", 0.01, 40000)
        with pytest.raises(ccxt.BadRequest, match="positions or open orders"):
            client.set_position_mode(True)
    assert account.hedge is False
