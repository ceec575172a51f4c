"""A BingX USDT-M perpetual account through ccxt, spoken to in our own types and errors.

``client_for(account)`` gives the calling thread its client for the account (ccxt's sync client keeps
an HTTP session, so reusing it saves a connection per call; it is not thread-safe, hence one per thread).

Every call goes through ``BingXClient._call``, which
- refuses at once while the account's circuit breaker is open, and feeds it transport failures;
- stamps requests with BingX's time (our clock corrected by the measured offset; ccxt would not);
- repeats *reads* and other idempotent calls after a transport failure or rate limit, with backoff.
  Order creation is never repeated here: ``trading.execution.order_submit`` decides, after looking the
  order up by its client id.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro
from django.conf import settings

from trading.exchange.breaker import breaker_check, breaker_record_failure, breaker_record_success
from trading.exchange.clock import ClockReading, clock_measure, clock_reading, clock_usable
from trading.exchange.errors import (
    ClockSkew,
    ExchangeError,
    ExchangeUnavailable,
    NotConfigured,
    OrderNotFound,
    RateLimited,
    translate,
)
from trading.exchange.public import rest_api_root, rest_root_apply
from trading.exchange.types import (
    ORDER_STATUS_FROM_BINGX,
    ORDER_TYPE_FROM_BINGX,
    ExchangeBalance,
    ExchangeLeverage,
    ExchangeOrder,
    ExchangePosition,
    OrderRequest,
    decimal_or_none,
    decimal_or_zero,
)
from trading.markets import markets_catalog

logger = logging.getLogger(__name__)

LIVE_REST_ROOT = "https://open-api.bingx.com"
SETTLE = "USDT"
# ccxt's WS sections; the spot URL must not be a prefix of the linear one (see the reference notes).
WS_PATHS = {"linear": "/swap-market", "spot": "/market", "inverse": "/cswap-market"}
# How ccxt words an HTTP 404 (it raises ExchangeNotAvailable): "bingx PUT <url> 404 Not Found <body>".
_HTTP_404 = re.compile(r"\s404\s")


class _BingX(ccxt.bingx):
    """ccxt's bingx, stamping requests with BingX's time instead of the host's."""

    clock_offset_ms = 0

    def nonce(self):
        return self.milliseconds() + self.clock_offset_ms


@dataclass(frozen=True)
class Endpoints:
    rest_root: str  # ".../openApi", the root ccxt appends /<section>/<version>/<path> to
    ws: dict[str, str]  # ccxt's urls["api"]["ws"]
    sandbox: bool


def endpoints_for(mode: str) -> Endpoints:
    """Where an account in ``mode`` connects.

    BINGX_BASE_URL / BINGX_WS_URL, when set away from BingX's live defaults, win in every mode (backup
    domain, proxy, local fake). Otherwise demo accounts use BingX's virtual-USDT (VST) hosts.
    """
    if mode not in ("live", "demo"):
        raise NotConfigured(f"an account in {mode} mode does not talk to BingX")
    return _endpoints(mode, settings.BINGX_BASE_URL, settings.BINGX_WS_URL)


@functools.lru_cache(maxsize=16)
def _endpoints(mode: str, base_url: str, ws_url: str) -> Endpoints:
    configured = base_url.rstrip("/")
    rest_overridden = configured not in ("", LIVE_REST_ROOT, LIVE_REST_ROOT + "/openApi")
    probe = ccxt.pro.bingx()  # the async/WebSocket flavour knows the WS URLs too; nothing is connected
    sandbox = mode == "demo"
    if sandbox:
        probe.set_sandbox_mode(True)
    rest_root = rest_api_root(configured) if rest_overridden else probe.implode_hostname(probe.urls["api"]["swap"])
    ws = dict(probe.urls["api"]["ws"])
    if ws_url:
        origin = ws_url.rstrip("/").removesuffix(WS_PATHS["linear"])
        ws = {section: origin + path for section, path in WS_PATHS.items()}
    return Endpoints(rest_root=rest_root, ws=ws, sandbox=sandbox and not rest_overridden)


@dataclass(frozen=True)
class Credentials:
    account_id: int
    label: str  # the account name (and sub-account id), for messages
    mode: str  # live | demo
    api_key: str
    api_secret: str


class BingXClient:
    def __init__(self, credentials: Credentials, endpoints: Endpoints) -> None:
        if not (credentials.api_key and credentials.api_secret):
            raise NotConfigured(f"account {credentials.label} has no BingX API key pair")
        self.credentials = credentials
        self.endpoints = endpoints
        self._ccxt = _BingX(
            {
                "apiKey": credentials.api_key,
                "secret": credentials.api_secret,
                "timeout": int(settings.EXCHANGE_TIMEOUT_SECONDS * 1000),
                # ccxt's own limiter spaces calls 100-500 ms apart, which an entry (settings + order) cannot
                # afford; BingX's limits are far above what one account sends, and a 429 is handled.
                "enableRateLimit": False,
                "options": {"defaultType": "swap"},
            }
        )
        if endpoints.sandbox:
            self._ccxt.set_sandbox_mode(True)  # before the overrides below, which it would discard
        rest_root_apply(self._ccxt, endpoints.rest_root)
        self._ccxt.urls["api"]["ws"] = dict(endpoints.ws)
        self._catalog = None

    @property
    def account_id(self) -> int:
        return self.credentials.account_id

    def close(self) -> None:
        session = getattr(self._ccxt, "session", None)
        if session is not None:
            session.close()

    # --- plumbing ------------------------------------------------------------------------------------

    def _markets_ready(self) -> None:
        catalog = markets_catalog()
        if catalog is self._catalog:
            return
        markets = getattr(catalog, "ccxt_markets", ())
        if markets:
            self._ccxt.set_markets(list(markets))
        else:
            self._call("load markets", self._ccxt.load_markets, repeat=True, needs_markets=False)
        self._catalog = catalog

    def _call(self, action: str, fn: Callable, *args: Any, repeat: bool, needs_markets: bool = True) -> Any:
        account_id = self.account_id
        attempts = max(1, settings.EXCHANGE_RETRY_ATTEMPTS) if repeat else 1
        clock_retried = False
        attempt = 0
        if needs_markets:
            self._markets_ready()
        while True:
            attempt += 1
            breaker_check(account_id)
            reading = clock_reading(self.endpoints.rest_root)
            self._ccxt.clock_offset_ms = reading.offset_ms if reading else 0
            try:
                result = fn(*args)
            except Exception as raw:  # noqa: BLE001 - every ccxt error becomes one of ours below
                error = translate(raw, action=action)
                if isinstance(error, ExchangeUnavailable):
                    breaker_record_failure(account_id, str(error))
                elif not isinstance(error, RateLimited):
                    breaker_record_success(account_id)  # BingX answered: the transport works
                if isinstance(error, ClockSkew) and not clock_retried:
                    # Refused before it was looked at, so sending it again is safe once the clock is right.
                    clock_retried = True
                    self.clock_measure()
                    continue
                if repeat and isinstance(error, (ExchangeUnavailable, RateLimited)) and attempt < attempts:
                    pause = float(settings.EXCHANGE_RETRY_BACKOFF_SECONDS) * 2 ** (attempt - 1)
                    logger.warning("%s (attempt %s of %s); again in %.2fs", error, attempt, attempts, pause)
                    time.sleep(pause)
                    continue
                raise error from raw
            breaker_record_success(account_id)
            return result

    def _market_id(self, symbol: str) -> str:
        self._markets_ready()
        try:
            return self._ccxt.market(symbol)["id"]
        except ccxt.BaseError as error:
            raise ExchangeError(f"{symbol} is not a BingX market: {error}") from error

    # --- clock -----------------------------------------------------------------------------------------

    def server_time_ms(self) -> int:
        try:
            return int(self._ccxt.fetch_time())
        except Exception as raw:  # noqa: BLE001
            raise translate(raw, action="read BingX's time") from raw

    def clock_measure(self) -> ClockReading:
        return clock_measure(self.endpoints.rest_root, self.server_time_ms)

    def clock_check(self) -> ClockReading:
        """Raise ``ClockSkew`` unless request times can be corrected well enough to trade."""
        return clock_usable(self.endpoints.rest_root, self.server_time_ms)

    # --- account -------------------------------------------------------------------------------------

    def balance(self) -> ExchangeBalance:
        raw = self._call("fetch balance", self._ccxt.fetch_balance, {"type": "swap"}, repeat=True)
        rows = (raw.get("info") or {}).get("data")
        rows = rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []
        row = next((item for item in rows if isinstance(item, dict) and item.get("asset") == SETTLE), None)
        if row is None:
            raise ExchangeUnavailable(f"BingX's balance answer has no {SETTLE} row")
        return ExchangeBalance(
            asset=SETTLE,
            equity=decimal_or_zero(row.get("equity")),
            available=decimal_or_zero(row.get("availableMargin")),
            wallet_balance=decimal_or_zero(row.get("balance")),
            unrealized_pnl=decimal_or_zero(row.get("unrealizedProfit")),
            used_margin=decimal_or_zero(row.get("usedMargin")),
        )

    def positions(self, symbol: str | None = None) -> list[ExchangePosition]:
        raw = self._call("fetch positions", self._ccxt.fetch_positions, [symbol] if symbol else None, repeat=True)
        result = []
        for position in raw:
            info = position.get("info") or {}
            qty = abs(decimal_or_zero(info.get("positionAmt", position.get("contracts"))))
            if qty == 0:
                continue
            side = position.get("side") or ("long" if decimal_or_zero(info.get("positionAmt")) > 0 else "short")
            leverage = decimal_or_none(info.get("leverage"))
            result.append(
                ExchangePosition(
                    symbol=position["symbol"],
                    side=side,
                    qty=qty,
                    entry_price=decimal_or_zero(info.get("avgPrice")),
                    mark_price=decimal_or_none(info.get("markPrice")),
                    unrealized_pnl=decimal_or_zero(info.get("unrealizedProfit")),
                    realized_pnl=decimal_or_zero(info.get("realisedProfit")),
                    leverage=int(leverage) if leverage else None,
                    margin_mode=position.get("marginMode") or "cross",
                    liquidation_price=decimal_or_none(info.get("liquidationPrice")) or None,
                )
            )
        return result

    def leverage(self, symbol: str) -> ExchangeLeverage:
        raw = self._call("fetch leverage", self._ccxt.fetch_leverage, symbol, repeat=True)
        info = (raw.get("info") or {}) if isinstance(raw, dict) else {}

        def whole(value: Any) -> int | None:
            number = decimal_or_none(value)
            return int(number) if number is not None else None

        return ExchangeLeverage(
            long=whole(raw.get("longLeverage")),
            short=whole(raw.get("shortLeverage")),
            max_long=whole(info.get("maxLongLeverage")),
            max_short=whole(info.get("maxShortLeverage")),
        )

    def set_leverage(self, symbol: str, *, side: str, leverage: int) -> None:
        """``side``: BOTH in one-way mode, LONG or SHORT in hedge mode (BingX sets one side per call)."""
        self._call("set leverage", self._ccxt.set_leverage, int(leverage), symbol, {"side": side}, repeat=True)

    def margin_mode(self, symbol: str) -> str:
        raw = self._call("fetch margin mode", self._ccxt.fetch_margin_mode, symbol, repeat=True)
        return raw.get("marginMode") or "cross"

    def set_margin_mode(self, symbol: str, mode: str) -> None:
        self._call("set margin mode", self._ccxt.set_margin_mode, mode, symbol, repeat=True)

    def hedge_mode(self) -> bool:
        raw = self._call("fetch position mode", self._ccxt.fetch_position_mode, repeat=True)
        return bool(raw.get("hedged"))

    def set_hedge_mode(self, hedged: bool) -> None:
        self._call("set position mode", self._ccxt.set_position_mode, bool(hedged), repeat=True)

    # --- user-data stream listen keys ------------------------------------------------------------------

    def listen_key_create(self) -> str:
        """A new listen key for the user-data stream (valid 60 minutes; each extension adds 60 more)."""
        raw = self._call(
            "create listen key", self._ccxt.user_auth_private_post_userdatastream, repeat=True, needs_markets=False
        )
        key = raw.get("listenKey") if isinstance(raw, dict) else None
        if not key:  # the one BingX answer without the envelope: a bare {"listenKey": ...}
            data = raw.get("data") if isinstance(raw, dict) else None
            key = data.get("listenKey") if isinstance(data, dict) else None
        if not key:
            raise ExchangeUnavailable("BingX's listen key answer has no listenKey")
        return str(key)

    def listen_key_extend(self, listen_key: str) -> bool:
        """Extend ``listen_key``; False when BingX no longer knows it (HTTP 404: expired or deleted)."""

        def put() -> bool:
            try:
                self._ccxt.user_auth_private_put_userdatastream({"listenKey": listen_key})
            except ccxt.ExchangeNotAvailable as error:  # ccxt files every 404 under it
                if _HTTP_404.search(str(error)):
                    return False
                raise
            return True

        return self._call("extend listen key", put, repeat=True, needs_markets=False)

    def listen_key_delete(self, listen_key: str) -> None:
        """Give ``listen_key`` up (its sockets are closed); an unknown key is already gone."""

        def delete() -> None:
            try:
                self._ccxt.user_auth_private_delete_userdatastream({"listenKey": listen_key})
            except ccxt.ExchangeNotAvailable as error:
                if not _HTTP_404.search(str(error)):
                    raise

        self._call("delete listen key", delete, repeat=True, needs_markets=False)

    def user_stream_url(self, listen_key: str) -> str:
        return f"{self.endpoints.ws['linear']}?listenKey={listen_key}"

    # --- orders ----------------------------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Send one order, once. Raises ``ExchangeUnavailable`` when its outcome is unknown."""
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.hedged:
            # ccxt picks positionSide from the side and reduceOnly (and drops reduceOnly, which BingX
            # refuses in hedge mode): a reduce-only sell closes the long.
            params["hedged"] = True
        if request.reduce_only:
            params["reduceOnly"] = True
        order_type = request.order_type
        if order_type == "stop_market":
            params["stopLossPrice"] = quantity_text(request.trigger_price)
            order_type = "market"
        elif order_type == "take_profit_market":
            params["takeProfitPrice"] = quantity_text(request.trigger_price)
            order_type = "market"
        raw = self._call(
            "create order",
            self._ccxt.create_order,
            request.symbol,
            order_type,
            request.side,
            quantity_text(request.qty),
            quantity_text(request.price) if request.price is not None else None,
            params,
            repeat=False,
        )
        return self._order(raw, fallback_symbol=request.symbol)

    def order(self, symbol: str, exchange_order_id: str) -> ExchangeOrder:
        raw = self._call("fetch order", self._ccxt.fetch_order, exchange_order_id, symbol, repeat=True)
        return self._order(raw, fallback_symbol=symbol)

    def order_by_client_id(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        """The order with this client id, or None when BingX says there is none (absence proven)."""
        request = {"symbol": self._market_id(symbol), "clientOrderID": client_order_id}
        try:
            raw = self._call(
                "look up order by client id", self._ccxt.swap_v2_private_get_trade_order, request, repeat=True
            )
        except OrderNotFound:
            return None
        data = raw.get("data") if isinstance(raw, dict) else None
        order = data.get("order", data) if isinstance(data, dict) else None
        if not order:
            return None
        return self._order(self._ccxt.parse_order(order, self._ccxt.market(symbol)), fallback_symbol=symbol)

    def open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        raw = self._call("fetch open orders", self._ccxt.fetch_open_orders, symbol, repeat=True)
        return [self._order(order, fallback_symbol=symbol) for order in raw]

    def recent_orders(self, *, since_ms: int, limit: int = 1000, pages: int = 5) -> list[ExchangeOrder]:
        """Orders of every symbol placed since ``since_ms`` (any status), oldest first; one request per
        ``limit`` orders, newest first, at most ``pages`` requests (BingX's order history, ``fetch_orders``)."""
        found: dict[str, ExchangeOrder] = {}
        until_ms = None
        for _ in range(pages):
            params = {"until": until_ms} if until_ms is not None else {}
            raw = self._call("fetch order history", self._ccxt.fetch_orders, None, since_ms, limit, params, repeat=True)
            page = [self._order(order, fallback_symbol=None) for order in raw]
            for order in page:
                found.setdefault(order.exchange_order_id, order)
            times = [order.created_ms for order in page if order.created_ms]
            if len(page) < limit or not times or min(times) <= since_ms:
                break
            until_ms = min(times) - 1
        return sorted(found.values(), key=lambda order: (order.created_ms or 0, order.exchange_order_id))

    def cancel_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> ExchangeOrder:
        params = {"clientOrderId": client_order_id} if client_order_id and not exchange_order_id else {}
        raw = self._call("cancel order", self._ccxt.cancel_order, exchange_order_id, symbol, params, repeat=True)
        return self._order(raw, fallback_symbol=symbol)

    def _order(self, parsed: dict[str, Any], *, fallback_symbol: str | None) -> ExchangeOrder:
        info = parsed.get("info") or {}
        if isinstance(info.get("order"), dict):
            info = info["order"]
        raw_status = str(info.get("status") or "").upper()
        status = ORDER_STATUS_FROM_BINGX.get(raw_status, "submitted")
        raw_type = str(info.get("type") or parsed.get("type") or "").upper()
        commission = decimal_or_zero(info.get("commission"))
        client_order_id = (
            parsed.get("clientOrderId") or info.get("clientOrderId") or info.get("clientOrderID") or ""
        ).lower()
        trigger = decimal_or_none(info.get("stopPrice"))
        price = decimal_or_none(info.get("price"))
        average = decimal_or_none(info.get("avgPrice"))
        return ExchangeOrder(
            exchange_order_id=str(parsed.get("id") or info.get("orderId") or ""),
            client_order_id=client_order_id,
            symbol=parsed.get("symbol") or fallback_symbol or "",
            side=(parsed.get("side") or str(info.get("side") or "")).lower(),
            order_type=ORDER_TYPE_FROM_BINGX.get(raw_type, raw_type.lower()),
            status=status,
            qty=decimal_or_none(info.get("origQty", info.get("quantity"))),
            filled_qty=decimal_or_zero(info.get("executedQty")),
            average_price=average if average else None,
            price=price if price else None,
            trigger_price=trigger if trigger else None,
            fee=abs(commission),
            realized_pnl=decimal_or_zero(info.get("profit")),
            reduce_only=str(info.get("reduceOnly")).lower() == "true",
            position_side=str(info.get("positionSide") or "BOTH").lower(),
            updated_ms=int(info.get("updateTime") or info.get("time") or 0) or None,
            created_ms=int(info.get("time") or 0) or None,
        )


# --- one client per account per thread ---------------------------------------------------------------

_clients = threading.local()


def credentials_for(account) -> Credentials:
    label = account.name + (f" (sub-account {account.subaccount_id})" if account.subaccount_id else "")
    return Credentials(
        account_id=account.pk,
        label=label,
        mode=account.mode,
        api_key=account.api_key,
        api_secret=account.api_secret,
    )


def client_for(account) -> BingXClient:
    """This thread's client for ``account`` (a TradingAccount), rebuilt when its keys or endpoints change."""
    credentials = credentials_for(account)
    endpoints = endpoints_for(credentials.mode)
    fingerprint = hashlib.sha256(
        "\0".join(
            [
                credentials.mode,
                credentials.api_key,
                credentials.api_secret,
                repr(endpoints),
                str(settings.EXCHANGE_TIMEOUT_SECONDS),
            ]
        ).encode()
    ).hexdigest()
    cache: dict[int, tuple[str, BingXClient]] = getattr(_clients, "by_account", None) or {}
    _clients.by_account = cache
    cached = cache.get(credentials.account_id)
    if cached and cached[0] == fingerprint:
        return cached[1]
    if cached:
        cached[1].close()
    client = BingXClient(credentials, endpoints)
    cache[credentials.account_id] = (fingerprint, client)
    return client


def clients_forget() -> None:
    """Close this thread's clients (tests, after settings change)."""
    cache = getattr(_clients, "by_account", None) or {}
    for _, client in cache.values():
        client.close()
    cache.clear()


def quantity_text(value: Decimal) -> str:
    return format(value.normalize(), "f")
