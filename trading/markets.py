"""BingX's USDT-margined perpetual markets, and which one a TradingView ticker means.

``markets_catalog()`` is the entry point. It loads the market list from BingX (MARKET_DATA_SOURCE=auto)
or from the snapshot shipped in ``trading/data/`` (MARKET_DATA_SOURCE=snapshot, or when BingX is
unreachable), keeps it for MARKETS_REFRESH_SECONDS, and answers ``resolve("BINANCE:BTCUSDT.P")``.
Both sources are parsed by ccxt (see ``trading.exchange``), so they give identical markets.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone

from trading.exchange import ExchangeUnavailable, load_swap_markets, parse_swap_contracts
from trading.precision import MarketRules, to_decimal

logger = logging.getLogger(__name__)

SNAPSHOT_PATH = Path(__file__).resolve().parent / "data" / "bingx_swap_contracts.json"
SOURCE_BINGX = "bingx"
SOURCE_SNAPSHOT = "snapshot"
# After a failed live load, try again sooner than the normal refresh: a fallback list is a stopgap.
FAILED_REFRESH_RETRY_SECONDS = 60
TRADINGVIEW_PERPETUAL_SUFFIXES = (".PERP", ".P")


class UnknownSymbol(ValueError):
    """The text names no BingX USDT perpetual that is open for trading."""

    def __init__(self, symbol: object, reason: str) -> None:
        self.symbol = symbol
        super().__init__(f"unknown symbol {symbol!r}: {reason}")


@dataclass(frozen=True)
class Market:
    """One BingX USDT-margined perpetual, as the rest of the project sees it."""

    symbol: str  # ccxt's unified symbol, "BTC/USDT:USDT"
    exchange_id: str  # BingX's own symbol, "BTC-USDT"
    base: str
    quote: str
    settle: str
    active: bool  # BingX accepts both opening and closing orders through its API
    rules: MarketRules

    @classmethod
    def from_ccxt(cls, market: dict[str, Any]) -> Market:
        """Build from a ccxt unified market; ccxt gives bingx precision as step sizes (TICK_SIZE mode)."""
        precision, limits = market["precision"], market["limits"]
        rules = MarketRules(
            market["symbol"],
            amount_step=_exact_decimal(precision["amount"]),
            price_tick=_exact_decimal(precision["price"]),
            min_qty=_minimum(limits["amount"]["min"]),
            min_notional=_minimum(limits["cost"]["min"]),
            max_leverage=_max_leverage(market["info"]),
        )
        return cls(
            symbol=market["symbol"],
            exchange_id=market["id"],
            base=market["base"],
            quote=market["quote"],
            settle=market["settle"],
            active=bool(market["active"]),
            rules=rules,
        )


class MarketCatalog:
    """An immutable market list with O(1) symbol resolution, and a note of where and when it came from."""

    def __init__(
        self,
        markets: Iterable[Market],
        *,
        source: str,
        recorded_at: datetime | None = None,
        loaded_at: datetime | None = None,
    ) -> None:
        self.markets: tuple[Market, ...] = tuple(markets)
        # ccxt's own market structures, when built from them: the exchange client reuses them instead of
        # loading markets again (see trading.exchange.client).
        self.ccxt_markets: tuple[dict[str, Any], ...] = ()
        self.source = source  # "bingx" or "snapshot"
        self.recorded_at = recorded_at  # when the list was taken from BingX (unknown for some snapshots)
        self.loaded_at = loaded_at or timezone.now()  # when this process built the catalog
        self._index = _build_index(self.markets)

    @classmethod
    def from_ccxt_markets(
        cls, markets: Iterable[dict[str, Any]], *, source: str, recorded_at: datetime | None = None
    ) -> MarketCatalog:
        markets = list(markets)
        catalog = cls(_markets_from_ccxt(markets), source=source, recorded_at=recorded_at)
        catalog.ccxt_markets = tuple(markets)
        return catalog

    def __len__(self) -> int:
        return len(self.markets)

    def __repr__(self) -> str:
        return f"<MarketCatalog {len(self)} markets from {self.source} loaded {self.loaded_at:%Y-%m-%d %H:%M:%S}>"

    def resolve(self, raw: str) -> Market:
        """The open market named by ``BTCUSDT``, ``BINANCE:BTCUSDT.P``, ``BTC-USDT``, ``BTC/USDT:USDT`` ..."""
        key = _lookup_key(raw) if isinstance(raw, str) else ""
        if not key:
            raise UnknownSymbol(raw, "no symbol given")
        market = self._index.get(key)
        if market is None:
            raise UnknownSymbol(
                raw, f"no BingX USDT perpetual matches it ({len(self)} markets, list from {self.source})"
            )
        if not market.active:
            raise UnknownSymbol(raw, f"{market.symbol} is not open for trading on BingX")
        return market


@dataclass(frozen=True)
class MarketSnapshot:
    """The offline market list: raw BingX contracts (GET /openApi/swap/v2/quote/contracts `data`)."""

    source: str
    recorded_at: datetime | None
    contracts: list[dict[str, Any]]


def market_snapshot_read(path: Path = SNAPSHOT_PATH) -> MarketSnapshot:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    recorded_at = document.get("recorded_at")
    return MarketSnapshot(
        source=document.get("source", ""),
        recorded_at=datetime.fromisoformat(recorded_at) if recorded_at else None,
        contracts=document["contracts"],
    )


def market_snapshot_write(snapshot: MarketSnapshot, *, path: Path = SNAPSHOT_PATH) -> None:
    """Replace the snapshot file atomically, so a reader never sees half a file."""
    path = Path(path)
    document = {
        "source": snapshot.source,
        "recorded_at": snapshot.recorded_at.isoformat() if snapshot.recorded_at else None,
        "contracts": snapshot.contracts,
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def market_catalog_from_snapshot(path: Path = SNAPSHOT_PATH) -> MarketCatalog:
    snapshot = market_snapshot_read(path)
    return MarketCatalog.from_ccxt_markets(
        parse_swap_contracts(snapshot.contracts), source=SOURCE_SNAPSHOT, recorded_at=snapshot.recorded_at
    )


def markets_catalog(*, refresh: bool = False) -> MarketCatalog:
    """The current market list, loaded at most once per MARKETS_REFRESH_SECONDS (``refresh`` forces a load)."""
    return _catalog_cache.get(refresh=refresh)


# --- Loading and caching --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CacheEntry:
    catalog: MarketCatalog
    attempted_at: float  # time.monotonic() of the last load attempt, successful or not
    attempt_failed: bool


class _CatalogCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # one load at a time
        self._entry: _CacheEntry | None = None

    def get(self, *, refresh: bool) -> MarketCatalog:
        previous = self._entry
        if previous is not None and not refresh:
            if self._is_fresh(previous):
                return previous.catalog
            if not self._lock.acquire(blocking=False):
                # Another thread is already refreshing: answer now with the previous list rather than
                # queue up behind a network call.
                return previous.catalog
        else:
            self._lock.acquire()
        try:
            previous = self._entry
            if previous is not None and not refresh and self._is_fresh(previous):
                return previous.catalog  # refreshed by another thread while this one waited
            self._entry = self._load(previous)
            return self._entry.catalog
        finally:
            self._lock.release()

    def clear(self) -> None:
        self._entry = None

    def _is_fresh(self, entry: _CacheEntry) -> bool:
        lifetime = settings.MARKETS_REFRESH_SECONDS
        if entry.attempt_failed:
            lifetime = min(lifetime, FAILED_REFRESH_RETRY_SECONDS)
        return time.monotonic() - entry.attempted_at < lifetime

    def _load(self, previous: _CacheEntry | None) -> _CacheEntry:
        attempted_at = time.monotonic()
        if settings.MARKET_DATA_SOURCE == SOURCE_SNAPSHOT:
            return _CacheEntry(market_catalog_from_snapshot(), attempted_at, attempt_failed=False)
        try:
            markets = load_swap_markets(base_url=settings.BINGX_BASE_URL)
        except ExchangeUnavailable as error:
            return _CacheEntry(_fallback_catalog(error, previous), attempted_at, attempt_failed=True)
        catalog = MarketCatalog.from_ccxt_markets(markets, source=SOURCE_BINGX, recorded_at=timezone.now())
        return _CacheEntry(catalog, attempted_at, attempt_failed=False)


def _fallback_catalog(error: ExchangeUnavailable, previous: _CacheEntry | None) -> MarketCatalog:
    if previous is not None:
        logger.warning("%s; keeping the previous market list %r", error, previous.catalog)
        return previous.catalog
    catalog = market_catalog_from_snapshot()
    logger.warning("%s; using the shipped snapshot (%d markets) instead", error, len(catalog))
    return catalog


_catalog_cache = _CatalogCache()


@receiver(setting_changed)
def _forget_catalog_loaded_under_other_settings(*, setting: str, **kwargs: Any) -> None:
    # A list loaded from another source or host is not the list asked for now (tests, override_settings).
    if setting in ("MARKET_DATA_SOURCE", "BINGX_BASE_URL"):
        _catalog_cache.clear()


# --- Conversions and lookup keys --------------------------------------------------------------------


def _markets_from_ccxt(markets: Iterable[dict[str, Any]]) -> list[Market]:
    result = []
    for market in markets:
        try:
            result.append(Market.from_ccxt(market))
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            # A market without usable steps cannot be traded safely; leave it out rather than guess.
            logger.warning("Skipping market %r: %s", market.get("symbol"), error)
    return result


def _exact_decimal(value: object) -> Decimal:
    """ccxt hands back floats; str() of a float is its shortest exact decimal form (0.1 -> "0.1")."""
    number = to_decimal(value)
    # 1.0 -> 1 (not "1.0", which would print every quantity with a ".0"); 0.10 -> 0.1; no exponents.
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def _minimum(value: object) -> Decimal:
    return Decimal(0) if value is None else _exact_decimal(value)


def _max_leverage(info: dict[str, Any]) -> int | None:
    """BingX publishes one maximum per side; the smaller one is what any position can use."""
    sides = [info.get("maxLongLeverage"), info.get("maxShortLeverage")]
    values = [int(to_decimal(value)) for value in sides if value not in (None, "")]
    return min(values) if values else None


def _build_index(markets: Iterable[Market]) -> dict[str, Market]:
    """Every accepted spelling, upper-cased: unified symbol, BingX id and compact base+quote."""
    index: dict[str, Market] = {}
    for market in markets:
        for spelling in (market.symbol, market.exchange_id, market.base + market.quote):
            index.setdefault(spelling.upper(), market)
    return index


def _lookup_key(raw: str) -> str:
    """``binance:btcusdt.p`` -> ``BTCUSDT``; ``BTC/USDT:USDT`` stays as it is."""
    text = raw.strip().upper()
    if "/" not in text:
        # TradingView's "EXCHANGE:TICKER"; a unified symbol's ":USDT" is its settle currency, not a prefix.
        text = text.rpartition(":")[2].strip()
    for suffix in TRADINGVIEW_PERPETUAL_SUFFIXES:
        if text.endswith(suffix):
            return text.removesuffix(suffix)
    return text
