"""BingX's public market list (no keys): the contracts, parsed by ccxt exactly as ccxt parses them live.

A short-lived synchronous client per call: callers (the market catalog, management commands, Celery
tasks) are synchronous, and such a client shares nothing between threads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import ccxt

from trading.exchange.errors import ExchangeUnavailable

logger = logging.getLogger(__name__)

RawContract = dict[str, Any]  # one item of BingX's GET /openApi/swap/v2/quote/contracts `data`
CcxtMarket = dict[str, Any]  # ccxt's unified market structure

# Short, because a caller may be waiting on it (an alert in flight); a slow BingX falls back to the snapshot.
REQUEST_TIMEOUT_SECONDS = 5.0
SETTLE_CURRENCY = "USDT"


def fetch_swap_contracts(*, base_url: str, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> list[RawContract]:
    """BingX's raw USDT-M perpetual contract list, exactly as BingX sends it (one public GET)."""
    client = _public_client(base_url=base_url, timeout_seconds=timeout_seconds)
    try:
        # ccxt's implicit endpoint rather than load_markets(): load_markets() would also fetch the spot
        # and coin-M lists, and ccxt offers no way to skip them short of sandbox mode.
        response = client.swap_v2_public_get_quote_contracts()
    except ccxt.BaseError as error:
        raise ExchangeUnavailable(
            f"BingX market list unavailable from {base_url}: {type(error).__name__}: {error}"
        ) from error
    finally:
        client.close()
    contracts = response.get("data") if isinstance(response, dict) else None
    if not isinstance(contracts, list):
        raise ExchangeUnavailable(f"BingX answered {swap_contracts_url(base_url)} without a contract list")
    return contracts


def parse_swap_contracts(contracts: Iterable[RawContract]) -> list[CcxtMarket]:
    """ccxt's unified markets for the linear USDT-settled perpetuals among raw BingX contracts.

    The live list and the offline snapshot both go through here, so they are parsed identically.
    """
    parser = _parser()
    markets = []
    for contract in contracts:
        try:
            market = parser.parse_market(contract)
        except Exception as error:
            # ccxt's parser assumes well-formed items; one odd contract must not hide the few hundred good ones.
            symbol = contract.get("symbol") if isinstance(contract, dict) else None
            logger.warning("Skipping BingX contract %r that ccxt cannot parse: %s", symbol, error)
            continue
        if _is_linear_usdt_swap(market):
            markets.append(market)
    return markets


def load_swap_markets(*, base_url: str, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> list[CcxtMarket]:
    """BingX's linear USDT perpetual markets, live, as ccxt unified markets."""
    markets = parse_swap_contracts(fetch_swap_contracts(base_url=base_url, timeout_seconds=timeout_seconds))
    if not markets:
        # An empty list would make every symbol unknown; treat it as the outage it almost certainly is.
        raise ExchangeUnavailable(f"BingX at {base_url} listed no USDT perpetual that ccxt can parse")
    return markets


def rest_api_root(base_url: str) -> str:
    """``https://open-api.bingx.com`` -> ``https://open-api.bingx.com/openApi`` (a root given with it is kept)."""
    root = base_url.rstrip("/")
    return root if root.endswith("/openApi") else f"{root}/openApi"


def swap_contracts_url(base_url: str) -> str:
    """Where the USDT-M perpetual contract list lives (what ccxt requests, minus its timestamp)."""
    return f"{rest_api_root(base_url)}/swap/v2/quote/contracts"


def _public_client(*, base_url: str, timeout_seconds: float) -> ccxt.bingx:
    # No API keys: public endpoints need none, and without keys nothing is signed.
    client = ccxt.bingx(
        {
            "timeout": int(timeout_seconds * 1000),  # ccxt counts milliseconds
            "options": {"defaultType": "swap"},
        }
    )
    rest_root_apply(client, rest_api_root(base_url))
    return client


def rest_root_apply(client: ccxt.bingx, api_root: str) -> None:
    """Point every REST section of a ccxt bingx client at ``api_root`` (".../openApi").

    ccxt has no host switch: each API section holds a full root, to which sign() appends
    /<section>/<version>/<path>. Pointing every section at the same root covers any endpoint.
    """
    for section, url in list(client.urls["api"].items()):
        if isinstance(url, str):
            client.urls["api"][section] = api_root


@functools.cache
def _parser() -> ccxt.bingx:
    """A client used only for parsing: it never sends a request, so one instance serves all threads."""
    return ccxt.bingx()


def _is_linear_usdt_swap(market: CcxtMarket | None) -> bool:
    return bool(
        market
        and market.get("swap")
        and market.get("linear")
        and market.get("quote") == SETTLE_CURRENCY
        and market.get("settle") == SETTLE_CURRENCY
    )
