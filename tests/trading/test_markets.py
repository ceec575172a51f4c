"""The market catalog: which BingX USDT perpetual a ticker means, and where the market list comes from.

Nothing here is mocked but the network: live loads go through the real ccxt to a local fake BingX
(tests/fakes/bingx_markets.py), and "BingX is down" is a port nobody listens on.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from decimal import Decimal
from io import StringIO
from typing import NamedTuple

import pytest
from django.core.management import CommandError, call_command

from tests.fakes.bingx_markets import fake_bingx, snapshot_contracts
from trading.exchange import ExchangeUnavailable, load_swap_markets, parse_swap_contracts
from trading.markets import (
    MarketCatalog,
    UnknownSymbol,
    market_catalog_from_snapshot,
    market_snapshot_read,
    markets_catalog,
)

CONTRACTS_PATH = "/openApi/swap/v2/quote/contracts"

# ccxt's own recording of BingX's linear swaps: /work/shared/data/bingx/ccxt-static-markets-bingx.json, from
# ccxt/ccxt ts/src/test/static/markets/bingx.json @ 1756184783121dc60228e61b606f09d09f81d635. The raw contracts
# (each market's `info`, verbatim) are the shipped snapshot's first content; they are copied here so these
# tests keep their fixed input after the snapshot is refreshed from BingX.
RECORDED_CONTRACTS = [
    {
        "contractId": "100006",
        "symbol": "LTC-USDT",
        "size": "0",
        "quantityPrecision": "1",
        "pricePrecision": "2",
        "feeRate": "0.0005",
        "makerFeeRate": "0.0002",
        "takerFeeRate": "0.0005",
        "tradeMinLimit": "0",
        "tradeMinQuantity": "0.1",
        "tradeMinUSDT": "2",
        "maxLongLeverage": "100",
        "maxShortLeverage": "100",
        "currency": "USDT",
        "asset": "LTC",
        "status": "1",
        "apiStateOpen": "true",
        "apiStateClose": "true",
        "ensureTrigger": True,
        "triggerFeeRate": "0.00050000",
    },
    {
        "contractId": "100",
        "symbol": "BTC-USDT",
        "size": "0",
        "quantityPrecision": "4",
        "pricePrecision": "1",
        "feeRate": "0.0005",
        "makerFeeRate": "0.0002",
        "takerFeeRate": "0.0005",
        "tradeMinLimit": "0",
        "tradeMinQuantity": "0.0001",
        "tradeMinUSDT": "2",
        "maxLongLeverage": "125",
        "maxShortLeverage": "125",
        "currency": "USDT",
        "asset": "BTC",
        "status": "1",
        "apiStateOpen": "true",
        "apiStateClose": "true",
        "ensureTrigger": True,
        "triggerFeeRate": "0.00020000",
    },
    {
        "contractId": "100004",
        "symbol": "ADA-USDT",
        "size": "0",
        "quantityPrecision": "0",
        "pricePrecision": "5",
        "feeRate": "0.0005",
        "makerFeeRate": "0.0002",
        "takerFeeRate": "0.0005",
        "tradeMinLimit": "0",
        "tradeMinQuantity": "1",
        "tradeMinUSDT": "2",
        "maxLongLeverage": "5",
        "maxShortLeverage": "5",
        "currency": "USDT",
        "asset": "ADA",
        "status": "1",
        "apiStateOpen": "true",
        "apiStateClose": "true",
        "ensureTrigger": True,
        "triggerFeeRate": "0.00015000",
    },
    {
        "contractId": "100028",
        "symbol": "SOL-USDT",
        "size": "0",
        "quantityPrecision": "0",
        "pricePrecision": "3",
        "feeRate": "0.0005",
        "makerFeeRate": "0.0002",
        "takerFeeRate": "0.0005",
        "tradeMinLimit": "0",
        "tradeMinQuantity": "1",
        "tradeMinUSDT": "2",
        "maxLongLeverage": "5",
        "maxShortLeverage": "5",
        "currency": "USDT",
        "asset": "SOL",
        "status": "1",
        "apiStateOpen": "true",
        "apiStateClose": "true",
        "ensureTrigger": True,
        "triggerFeeRate": "0.00050000",
    },
]


class RecordedMarket(NamedTuple):
    """What that ccxt parsed a contract into. It stored precision as decimal places (4 means a step of
    0.0001); ccxt 4.5 gives the step itself."""

    id: str
    amount_places: int
    price_places: int
    min_amount: Decimal
    min_cost: Decimal
    max_leverage: int


RECORDED_CCXT_MARKETS = {
    "LTC/USDT:USDT": RecordedMarket("LTC-USDT", 1, 2, Decimal("0.1"), Decimal("2"), 100),
    "BTC/USDT:USDT": RecordedMarket("BTC-USDT", 4, 1, Decimal("0.0001"), Decimal("2"), 125),
    "ADA/USDT:USDT": RecordedMarket("ADA-USDT", 0, 5, Decimal("1"), Decimal("2"), 5),
    "SOL/USDT:USDT": RecordedMarket("SOL-USDT", 0, 3, Decimal("1"), Decimal("2"), 5),
}


def made_up_contract(symbol: str, **fields: str) -> dict:
    """Test-only data in BingX's contract format, shaped like the recorded BTC-USDT contract."""
    recorded_btc = next(item for item in RECORDED_CONTRACTS if item["symbol"] == "BTC-USDT")
    return {**recorded_btc, "contractId": f"test-{symbol}", "symbol": symbol, "asset": symbol.split("-")[0], **fields}


PEPE = made_up_contract(
    "1000PEPE-USDT",
    quantityPrecision="0",
    pricePrecision="7",
    tradeMinQuantity="1",
    maxLongLeverage="50",
    maxShortLeverage="20",
)
SUSPENDED = made_up_contract("HALT-USDT", apiStateOpen="false", apiStateClose="false")


def catalog_of(contracts: list[dict]) -> MarketCatalog:
    return MarketCatalog.from_ccxt_markets(parse_swap_contracts(contracts), source="test")


@pytest.fixture
def catalog() -> MarketCatalog:
    return catalog_of(RECORDED_CONTRACTS + [PEPE, SUSPENDED])


@pytest.fixture
def live_bingx(settings):
    """BingX is the fake, serving the shipped snapshot plus 1000PEPE-USDT; the catalog loads live."""
    with fake_bingx(extra_contracts=[PEPE]) as bingx:
        settings.MARKET_DATA_SOURCE = "auto"
        settings.BINGX_BASE_URL = bingx.base_url
        yield bingx


@pytest.fixture
def unreachable_base_url() -> str:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def shipped_market_count() -> int:
    return len(parse_swap_contracts(snapshot_contracts()))


# --- Resolving symbols --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [
        ("BTCUSDT", "BTC/USDT:USDT"),
        ("BTCUSDT.P", "BTC/USDT:USDT"),
        ("BINANCE:BTCUSDT.P", "BTC/USDT:USDT"),
        ("BTC-USDT", "BTC/USDT:USDT"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("btcusdt.p", "BTC/USDT:USDT"),
        ("BYBIT:BTCUSDT.PERP", "BTC/USDT:USDT"),
        ("  BTCUSDT.P\n", "BTC/USDT:USDT"),
        ("1000PEPEUSDT.P", "1000PEPE/USDT:USDT"),
        ("BINGX:1000PEPEUSDT", "1000PEPE/USDT:USDT"),
        ("sol/usdt:usdt", "SOL/USDT:USDT"),
    ],
)
def test_it_resolves_every_accepted_spelling(catalog, raw, symbol):
    assert catalog.resolve(raw).symbol == symbol


def test_a_resolved_market_carries_its_bingx_id_currencies_and_rules(catalog):
    market = catalog.resolve("1000PEPEUSDT.P")
    assert (market.exchange_id, market.base, market.quote, market.settle) == (
        "1000PEPE-USDT",
        "1000PEPE",
        "USDT",
        "USDT",
    )
    assert market.active
    assert market.rules.symbol == "1000PEPE/USDT:USDT"
    assert (market.rules.amount_step, market.rules.price_tick) == (Decimal("1"), Decimal("0.0000001"))
    assert market.rules.max_leverage == 20  # the smaller of the long (50) and short (20) maximums


@pytest.mark.parametrize("raw", ["XYZUSDT.P", "BINANCE:XYZUSDT.P", "BTCUSD.P", "BTCUSDC", "BINANCE:BTC/USDT:USDT"])
def test_an_unknown_symbol_is_refused_with_its_name(catalog, raw):
    with pytest.raises(UnknownSymbol, match=f"unknown symbol '{raw}'") as caught:
        catalog.resolve(raw)
    assert caught.value.symbol == raw
    assert isinstance(caught.value, ValueError)


def test_a_market_closed_to_api_trading_is_refused_with_its_name(catalog):
    with pytest.raises(UnknownSymbol, match=r"unknown symbol 'HALTUSDT\.P': HALT/USDT:USDT is not open for trading"):
        catalog.resolve("HALTUSDT.P")


@pytest.mark.parametrize("raw", ["", "   ", "BINANCE:", ".P"])
def test_an_empty_symbol_is_refused(catalog, raw):
    with pytest.raises(UnknownSymbol, match=f"unknown symbol '{raw}'"):
        catalog.resolve(raw)


# --- Parsing: ccxt's parser, as ccxt recorded it ------------------------------------------------------------


@pytest.mark.parametrize("symbol", sorted(RECORDED_CCXT_MARKETS))
def test_ccxt_parses_recorded_bingx_contracts_as_ccxt_recorded_them(symbol):
    recorded = RECORDED_CCXT_MARKETS[symbol]
    market = catalog_of(RECORDED_CONTRACTS).resolve(symbol)
    assert market.exchange_id == recorded.id
    assert market.rules.amount_step == Decimal(1).scaleb(-recorded.amount_places)
    assert market.rules.price_tick == Decimal(1).scaleb(-recorded.price_places)
    assert market.rules.min_qty == recorded.min_amount
    assert market.rules.min_notional == recorded.min_cost
    assert market.rules.max_leverage == recorded.max_leverage


def test_steps_and_minimums_are_exact_decimals_without_float_noise():
    rules = {market.symbol: market.rules for market in catalog_of(RECORDED_CONTRACTS).markets}
    assert [str(rules["BTC/USDT:USDT"].amount_step), str(rules["BTC/USDT:USDT"].price_tick)] == ["0.0001", "0.1"]
    assert [str(rules["ADA/USDT:USDT"].amount_step), str(rules["ADA/USDT:USDT"].price_tick)] == ["1", "0.00001"]
    assert str(rules["ADA/USDT:USDT"].min_notional) == "2"


def test_only_linear_usdt_perpetuals_are_kept():
    usdc_settled = made_up_contract("BTC-USDC", currency="USDC")
    assert [market["symbol"] for market in parse_swap_contracts([PEPE, usdc_settled])] == ["1000PEPE/USDT:USDT"]


# --- The shipped snapshot -------------------------------------------------------------------------------


def test_the_snapshot_loads_offline(settings, unreachable_base_url):
    settings.BINGX_BASE_URL = unreachable_base_url  # nothing may call out in snapshot mode; this would fail
    catalog = markets_catalog()
    assert catalog.source == "snapshot"
    assert len(catalog) == shipped_market_count() > 0
    assert catalog.resolve("BINANCE:BTCUSDT.P").exchange_id == "BTC-USDT"


def test_the_snapshot_holds_raw_bingx_contracts_and_names_its_source():
    snapshot = market_snapshot_read()
    assert snapshot.source
    for contract in snapshot.contracts:
        assert {"symbol", "currency", "asset", "quantityPrecision", "pricePrecision", "tradeMinQuantity"} <= set(
            contract
        )


# --- Loading live from BingX ------------------------------------------------------------------------------


def test_it_loads_the_live_list_through_ccxt_with_one_public_request(live_bingx):
    catalog = markets_catalog()
    assert catalog.source == "bingx"
    assert catalog.recorded_at is not None
    assert len(catalog) == shipped_market_count() + 1
    assert catalog.resolve("1000PEPEUSDT.P").exchange_id == "1000PEPE-USDT"
    # Only the linear contract list: no signed currency list, no spot or coin-M lists, no credentials.
    assert live_bingx.state.paths() == [CONTRACTS_PATH]
    assert "signature" not in live_bingx.state.requests[0].query


def test_the_live_list_and_the_snapshot_are_parsed_identically(live_bingx):
    live = markets_catalog()
    for market in market_catalog_from_snapshot().markets:
        assert live.resolve(market.symbol) == market


def test_a_bingx_error_answer_surfaces_as_our_error_not_ccxts(live_bingx):
    live_bingx.state.market_error = (
        100410,
        "The endpoint trigger frequency limit rule is currently in the disabled period",
    )
    with pytest.raises(ExchangeUnavailable, match="disabled period") as caught:
        load_swap_markets(base_url=live_bingx.base_url)
    assert type(caught.value).__module__ == "trading.exchange.errors"


def test_a_bingx_that_does_not_answer_in_time_is_unavailable(live_bingx):
    live_bingx.state.response_delay_seconds = 2
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailable, match="RequestTimeout"):
        load_swap_markets(base_url=live_bingx.base_url, timeout_seconds=0.2)
    assert time.monotonic() - started < 1


def test_it_falls_back_to_the_snapshot_quickly_when_bingx_is_unreachable(settings, unreachable_base_url, caplog):
    settings.MARKET_DATA_SOURCE = "auto"
    settings.BINGX_BASE_URL = unreachable_base_url
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trading.markets"):
        catalog = markets_catalog()
    assert time.monotonic() - started < 3
    assert catalog.source == "snapshot"
    assert catalog.resolve("BTCUSDT.P").symbol == "BTC/USDT:USDT"
    assert "using the shipped snapshot" in caplog.text and unreachable_base_url in caplog.text


def test_a_failed_live_refresh_keeps_serving_the_last_good_list(settings, live_bingx, caplog):
    first = markets_catalog()
    live_bingx.state.market_error = (100410, "system busy")
    settings.MARKETS_REFRESH_SECONDS = 0
    with caplog.at_level(logging.WARNING, logger="trading.markets"):
        again = markets_catalog()
    assert again is first and again.source == "bingx"
    assert "keeping the previous market list" in caplog.text
    assert live_bingx.state.paths() == [CONTRACTS_PATH, CONTRACTS_PATH]


# --- Caching ------------------------------------------------------------------------------------------


def test_the_list_is_reused_within_markets_refresh_seconds(settings, live_bingx):
    settings.MARKETS_REFRESH_SECONDS = 3600
    assert markets_catalog() is markets_catalog()
    assert live_bingx.state.paths() == [CONTRACTS_PATH]


def test_the_list_is_reloaded_once_markets_refresh_seconds_have_passed(settings, live_bingx):
    first = markets_catalog()
    live_bingx.state.swap_contracts.append(made_up_contract("NEW-USDT"))
    settings.MARKETS_REFRESH_SECONDS = 0  # the first list is now older than the refresh period
    second = markets_catalog()
    assert second is not first
    assert second.resolve("NEWUSDT.P").symbol == "NEW/USDT:USDT"
    assert live_bingx.state.paths() == [CONTRACTS_PATH, CONTRACTS_PATH]


def test_refresh_reloads_at_once(live_bingx):
    first = markets_catalog()
    assert markets_catalog(refresh=True) is not first
    assert live_bingx.state.paths() == [CONTRACTS_PATH, CONTRACTS_PATH]


def test_concurrent_first_callers_share_one_load(live_bingx):
    start = threading.Barrier(8)
    results = []

    def load():
        start.wait()
        results.append(markets_catalog())

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 8 and all(result is results[0] for result in results)
    assert live_bingx.state.paths() == [CONTRACTS_PATH]


def test_switching_to_snapshot_mode_takes_effect_at_once(settings, live_bingx):
    assert markets_catalog().source == "bingx"
    settings.MARKET_DATA_SOURCE = "snapshot"
    assert markets_catalog().source == "snapshot"


# --- manage.py refresh_market_snapshot -------------------------------------------------------------------


def test_refresh_market_snapshot_writes_a_snapshot_ccxt_can_parse(settings, tmp_path):
    output = tmp_path / "contracts.json"
    with fake_bingx(extra_contracts=[PEPE]) as bingx:
        settings.BINGX_BASE_URL = bingx.base_url
        printed = run_refresh_market_snapshot("--output", str(output))
    count = len(snapshot_contracts()) + 1
    assert f"Wrote {count} contracts ({count} USDT perpetuals) to {output}" in printed
    snapshot = market_snapshot_read(output)
    assert snapshot.source == f"{bingx.base_url}/openApi/swap/v2/quote/contracts"
    assert snapshot.recorded_at is not None
    assert market_catalog_from_snapshot(output).resolve("1000PEPEUSDT.P").rules.price_tick == Decimal("0.0000001")


def test_refresh_market_snapshot_fails_clearly_when_bingx_is_unreachable(settings, tmp_path, unreachable_base_url):
    output = tmp_path / "contracts.json"
    settings.BINGX_BASE_URL = unreachable_base_url
    with pytest.raises(CommandError, match=f"unavailable from {unreachable_base_url}") as caught:
        run_refresh_market_snapshot("--output", str(output))
    assert caught.value.returncode != 0
    assert "The snapshot was not changed" in str(caught.value)
    assert not output.exists()


def test_refresh_market_snapshot_keeps_the_old_file_when_bingx_lists_nothing(settings, tmp_path):
    output = tmp_path / "contracts.json"
    output.write_text("previous snapshot")
    with fake_bingx() as bingx:
        bingx.state.swap_contracts.clear()
        settings.BINGX_BASE_URL = bingx.base_url
        with pytest.raises(CommandError, match="not changed"):
            run_refresh_market_snapshot("--output", str(output))
    assert output.read_text() == "previous snapshot"


def run_refresh_market_snapshot(*args: str) -> str:
    out = StringIO()
    call_command("refresh_market_snapshot", *args, stdout=out)
    return out.getvalue()
