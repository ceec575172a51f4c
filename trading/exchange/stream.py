"""BingX's swap user-data stream, in our own types: one WebSocket per listen key (reference §4).

``user_stream(url)`` connects to ``.../swap-market?listenKey=K``, gunzips BingX's binary frames, answers
``Ping`` with ``Pong`` and yields each event parsed into the plain dataclasses below. It ends (raising
``StreamClosed``) when the socket closes, goes silent for ``idle_timeout`` seconds, or BingX announces the
key expired; reconnecting, keeping the key alive and applying the events are the caller's business
(``trading.stream``).

ccxt.pro's ``watch_*`` are not used: a watch resolves on the next message only, so back-to-back events
(NEW, TRADE, ACCOUNT_UPDATE of one fill) are lost between calls. Reading the socket ourselves loses none.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from trading.exchange.types import (
    ORDER_STATUS_FROM_BINGX,
    ORDER_TYPE_FROM_BINGX,
    ExchangeOrder,
    decimal_or_none,
    decimal_or_zero,
)
from trading.markets import UnknownSymbol, markets_catalog

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
# Signs of a forced close (Binance-style, which BingX's stream follows): the order type LIQUIDATION, the
# execution type CALCULATED, or the exchange's own client ids for liquidation and auto-deleverage orders.
LIQUIDATION_TYPES = frozenset({"LIQUIDATION"})
LIQUIDATION_EXECUTIONS = frozenset({"CALCULATED"})
LIQUIDATION_CLIENT_PREFIXES = ("autoclose", "adl_autoclose", "liquidation")


class StreamClosed(Exception):
    """The socket is gone; ``key_refused`` when BingX will not take the listen key any more."""

    def __init__(self, reason: str, *, key_refused: bool = False) -> None:
        self.key_refused = key_refused
        super().__init__(reason)


@dataclass(frozen=True)
class OrderUpdate:
    """ORDER_TRADE_UPDATE: one order's state after NEW, a TRADE, CANCELED, EXPIRED or CALCULATED."""

    event_ms: int
    execution: str  # x: NEW | TRADE | CANCELED | CALCULATED | EXPIRED
    order: ExchangeOrder  # cumulative: filled_qty (z), average_price (ap), fee (|n|); realized_pnl is 0 here
    last_qty: Decimal  # l: this trade's quantity (0 when not a trade)
    last_price: Decimal  # L
    trade_realized_pnl: Decimal  # rp: realized PnL of this trade alone
    trade_id: str | None  # t, when BingX sends it
    raw_type: str  # o as BingX spelled it (LIQUIDATION stays visible here)

    @property
    def is_liquidation(self) -> bool:
        return (
            self.raw_type in LIQUIDATION_TYPES
            or self.execution in LIQUIDATION_EXECUTIONS
            or self.order.client_order_id.startswith(LIQUIDATION_CLIENT_PREFIXES)
        )


@dataclass(frozen=True)
class PositionUpdate:
    symbol: str  # ccxt unified
    side: str  # long | short
    qty: Decimal  # >= 0; 0: the position is gone
    entry_price: Decimal
    unrealized_pnl: Decimal
    margin_mode: str  # cross | isolated
    isolated_margin: Decimal


@dataclass(frozen=True)
class BalanceUpdate:
    asset: str
    wallet_balance: Decimal  # wb
    cross_wallet_balance: Decimal  # cw: the wallet less isolated margin


@dataclass(frozen=True)
class AccountUpdate:
    """ACCOUNT_UPDATE: the wallet and the positions an event touched (reason m: ORDER, FUNDING_FEE, ...)."""

    event_ms: int
    reason: str
    balances: tuple[BalanceUpdate, ...]
    positions: tuple[PositionUpdate, ...]


@dataclass(frozen=True)
class ListenKeyExpired:
    event_ms: int
    listen_key: str


StreamEvent = OrderUpdate | AccountUpdate | ListenKeyExpired


# --- parsing ------------------------------------------------------------------------------------------


def unified_symbol(exchange_symbol: str) -> str:
    """``BTC-USDT`` -> ``BTC/USDT:USDT`` (the catalog's spelling when it knows the market)."""
    try:
        return markets_catalog().resolve(exchange_symbol).symbol
    except UnknownSymbol:
        base, _, quote = exchange_symbol.partition("-")
        return f"{base}/{quote}:{quote}" if quote else exchange_symbol


def parse_event(message: dict[str, Any]) -> StreamEvent | None:
    """Our event for one decoded private-stream message; None for what we do not act on."""
    kind = message.get("e")
    event_ms = int(message.get("E") or 0)
    if kind == "ORDER_TRADE_UPDATE" and isinstance(message.get("o"), dict):
        return _order_update(message["o"], event_ms)
    if kind == "ACCOUNT_UPDATE" and isinstance(message.get("a"), dict):
        return _account_update(message["a"], event_ms)
    if kind == "listenKeyExpired":
        return ListenKeyExpired(event_ms=event_ms, listen_key=str(message.get("listenKey") or ""))
    return None  # ACCOUNT_CONFIG_UPDATE and anything new


def _order_update(raw: dict[str, Any], event_ms: int) -> OrderUpdate:
    raw_type = str(raw.get("o") or "").upper()
    position_side = str(raw.get("ps") or "BOTH").lower()
    price, average, trigger = (decimal_or_none(raw.get(key)) for key in ("p", "ap", "sp"))
    reduce_only = raw.get("ro")
    order = ExchangeOrder(
        exchange_order_id=str(raw.get("i") or ""),
        client_order_id=str(raw.get("c") or "").lower(),
        symbol=unified_symbol(str(raw.get("s") or "")),
        side=str(raw.get("S") or "").lower(),
        order_type=ORDER_TYPE_FROM_BINGX.get(raw_type, raw_type.lower()),
        status=ORDER_STATUS_FROM_BINGX.get(str(raw.get("X") or "").upper(), "submitted"),
        qty=decimal_or_none(raw.get("q")),
        filled_qty=decimal_or_zero(raw.get("z")),
        average_price=average or None,
        price=price or None,
        trigger_price=trigger or None,
        fee=abs(decimal_or_zero(raw.get("n"))),
        realized_pnl=ZERO,
        reduce_only=str(reduce_only).lower() == "true" if reduce_only is not None else False,
        position_side=position_side,
        updated_ms=int(raw.get("T") or 0) or event_ms or None,
    )
    trade_id = raw.get("t")
    return OrderUpdate(
        event_ms=event_ms,
        execution=str(raw.get("x") or "").upper(),
        order=order,
        last_qty=decimal_or_zero(raw.get("l")),
        last_price=decimal_or_zero(raw.get("L")),
        trade_realized_pnl=decimal_or_zero(raw.get("rp")),
        trade_id=str(trade_id) if trade_id not in (None, "", 0) else None,
        raw_type=raw_type,
    )


def _account_update(raw: dict[str, Any], event_ms: int) -> AccountUpdate:
    balances = tuple(
        BalanceUpdate(
            asset=str(row.get("a") or ""),
            wallet_balance=decimal_or_zero(row.get("wb")),
            cross_wallet_balance=decimal_or_zero(row.get("cw")),
        )
        for row in raw.get("B") or ()
        if isinstance(row, dict)
    )
    positions = []
    for row in raw.get("P") or ():
        if not isinstance(row, dict):
            continue
        amount = decimal_or_zero(row.get("pa"))
        side = str(row.get("ps") or "").lower()
        if side not in ("long", "short"):  # one-way mode (BOTH): the sign of the amount tells
            side = "short" if amount < 0 else "long"
        positions.append(
            PositionUpdate(
                symbol=unified_symbol(str(row.get("s") or "")),
                side=side,
                qty=abs(amount),
                entry_price=decimal_or_zero(row.get("ep")),
                unrealized_pnl=decimal_or_zero(row.get("up")),
                margin_mode="isolated" if str(row.get("mt") or "").lower() == "isolated" else "cross",
                isolated_margin=decimal_or_zero(row.get("iw")),
            )
        )
    reason = str(raw.get("m") or "")
    return AccountUpdate(event_ms=event_ms, reason=reason, balances=balances, positions=tuple(positions))


# --- the socket -----------------------------------------------------------------------------------------


def stream_session() -> aiohttp.ClientSession:
    """The HTTP session user-data sockets are opened on (one per account stream)."""
    return aiohttp.ClientSession()


def frame_text(message: aiohttp.WSMessage) -> str:
    """BingX gzips every server frame into a binary one; a text frame is taken as it is."""
    if message.type == aiohttp.WSMsgType.BINARY:
        try:
            return gzip.decompress(message.data).decode()
        except (OSError, EOFError):  # not gzip after all
            return message.data.decode(errors="replace")
    return message.data


async def user_stream(
    session: aiohttp.ClientSession, url: str, *, idle_timeout: float, connect_timeout: float
) -> AsyncIterator[StreamEvent | None]:
    """Events from one connection to ``url``, in BingX's order, until the socket ends (``StreamClosed``).

    First yields None once the socket is open (the caller's cue that it is connected).
    """
    try:
        ws = await session.ws_connect(
            url, autoping=True, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=connect_timeout)
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise StreamClosed(f"cannot connect: {type(error).__name__}: {error}") from error
    async with ws:
        yield None
        while True:
            try:
                message = await ws.receive(timeout=idle_timeout)
            except TimeoutError as error:
                raise StreamClosed(f"no frame for {idle_timeout:g}s") from error
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                # BingX closes a socket whose key it refuses (unknown or expired) with 1008.
                code = ws.close_code
                raise StreamClosed(f"closed by BingX (code {code})", key_refused=code == 1008)
            if message.type == aiohttp.WSMsgType.ERROR:
                raise StreamClosed(f"socket error: {ws.exception()}")
            if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                continue
            text = frame_text(message)
            if text == "Ping":
                await ws.send_str("Pong")
                continue
            try:
                decoded = json.loads(text)
            except ValueError:
                logger.warning("user stream: not JSON, ignored: %.200s", text)
                continue
            event = parse_event(decoded) if isinstance(decoded, dict) else None
            if event is not None:
                yield event
                if isinstance(event, ListenKeyExpired):
                    raise StreamClosed("listen key expired", key_refused=True)
