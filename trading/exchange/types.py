"""What the exchange tells us and what we ask of it, in our own plain types (``Decimal``, no ccxt dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal("0")

# BingX's raw order statuses -> our Order.Status values. ccxt leaves EXPIRED unmapped and a freshly
# created order without any status, so the raw text is what we go by.
ORDER_STATUS_FROM_BINGX = {
    "NEW": "open",
    "PENDING": "open",
    "RUNNING": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "CANCELLED": "canceled",
    "FAILED": "rejected",
    "EXPIRED": "expired",
}

ORDER_TYPE_FROM_BINGX = {
    "MARKET": "market",
    "LIMIT": "limit",
    "STOP_MARKET": "stop_market",
    "TAKE_PROFIT_MARKET": "take_profit_market",
    "TRAILING_STOP_MARKET": "trailing_stop_market",
}


def decimal_or_none(value: Any) -> Decimal | None:
    """BingX sends numbers as strings, numbers or "" (absent); floats go through their shortest repr."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def decimal_or_zero(value: Any) -> Decimal:
    number = decimal_or_none(value)
    return ZERO if number is None else number


@dataclass(frozen=True)
class OrderRequest:
    """One order to place. ``position_side`` is the position it opens or closes (long/short)."""

    symbol: str  # ccxt unified, "BTC/USDT:USDT"
    side: str  # buy | sell
    order_type: str  # market | limit | stop_market | take_profit_market
    qty: Decimal
    client_order_id: str
    position_side: str  # long | short
    hedged: bool = False
    reduce_only: bool = False
    price: Decimal | None = None
    trigger_price: Decimal | None = None


@dataclass(frozen=True)
class ExchangeOrder:
    exchange_order_id: str
    client_order_id: str
    symbol: str
    side: str  # buy | sell
    order_type: str  # our Order.Type values; unknown BingX types kept lower-cased
    status: str  # our Order.Status values; "submitted" when BingX did not say (a create answer)
    qty: Decimal | None
    filled_qty: Decimal
    average_price: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    fee: Decimal
    realized_pnl: Decimal
    reduce_only: bool
    position_side: str  # both | long | short
    updated_ms: int | None
    created_ms: int | None = None  # when BingX accepted it (its "time")

    @property
    def is_final(self) -> bool:
        return self.status in ("filled", "canceled", "rejected", "expired")


@dataclass(frozen=True)
class ExchangePosition:
    symbol: str
    side: str  # long | short
    qty: Decimal  # > 0
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    leverage: int | None
    margin_mode: str  # cross | isolated
    liquidation_price: Decimal | None


@dataclass(frozen=True)
class ExchangeBalance:
    asset: str
    equity: Decimal
    available: Decimal
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    used_margin: Decimal


@dataclass(frozen=True)
class ExchangeLeverage:
    long: int | None
    short: int | None
    max_long: int | None = None
    max_short: int | None = None
