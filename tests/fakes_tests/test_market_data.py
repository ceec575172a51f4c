"""Public endpoints and load_markets, through real ccxt."""

from __future__ import annotations

from decimal import Decimal

import ccxt

from tests.fakes.bingx import fake_bingx
from tests.fakes_tests.clients import sync_client


def test_load_markets_with_keys_also_asks_for_currencies_and_lists_the_snapshot():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        markets = sync_client(bingx, account).markets
        assert bingx.requests_for("/openApi/wallets/v1/capital/config/getall")[0].signature_ok is True
    assert {"BTC/USDT:USDT", "LTC/USDT:USDT", "ADA/USDT:USDT", "SOL/USDT:USDT"} <= set(markets)
    assert markets["BTC/USDT:USDT"]["active"] is True


def test_extra_contracts_are_listed():
    with fake_bingx(extra_contracts=[{**_btc_like(), "symbol": "PEPE-USDT", "asset": "PEPE"}]) as bingx:
        assert "PEPE/USDT:USDT" in sync_client(bingx).markets


def test_the_ticker_last_price_is_the_mark():
    with fake_bingx() as bingx:
        bingx.set_mark_price("BTC/USDT:USDT", Decimal("50123.4"))
        assert sync_client(bingx).fetch_ticker("BTC/USDT:USDT")["last"] == 50123.4


def test_the_premium_index_carries_the_mark_price():
    with fake_bingx() as bingx:
        bingx.set_mark_price("LTC-USDT", Decimal("81.5"))
        response = sync_client(bingx).swapV2PublicGetQuotePremiumIndex({"symbol": "LTC-USDT"})
    assert response["data"]["markPrice"] == "81.5"


def test_a_ticker_before_any_mark_is_a_bingx_error():
    with fake_bingx() as bingx:
        try:
            sync_client(bingx).fetch_ticker("BTC/USDT:USDT")
        except ccxt.BadRequest as error:
            assert "set_mark_price" in str(error)
        else:
            raise AssertionError("expected a BingX error")


def _btc_like() -> dict:
    from tests.fakes.bingx import snapshot_contracts

    return next(item for item in snapshot_contracts() if item["symbol"] == "BTC-USDT")
