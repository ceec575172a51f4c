"""Order sizing (pure): how much base quantity a signal's size request means, within the market's rules.

Size modes, as TradingView alerts give them in ``size.mode``:
- ``qty``: base quantity (e.g. 0.01 BTC).
- ``usdt``: notional value in USDT; qty = value / price.
- ``margin_usdt``: margin in USDT; notional = value x leverage.
- ``pct_equity`` / ``pct_available``: that % of equity / available balance used as margin; notional =
  margin x leverage.
- ``risk_pct``: risk that % of equity between entry and stop; qty = equity x pct / |entry - stop|.
- ``pct_position``: that % of the open position (for partial exits).

The result is rounded down to the market's amount step. Below the minimum quantity or notional the
request is refused, never rounded up: a trader who asked for less must not get more.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trading.precision import MarketRules, round_amount_down

SIZE_MODES = ("qty", "usdt", "margin_usdt", "pct_equity", "pct_available", "risk_pct", "pct_position")
HUNDRED = Decimal("100")


class SizingError(ValueError):
    """The request cannot be turned into an order; the message says why, for the trader."""


@dataclass(frozen=True)
class SizeRequest:
    mode: str
    value: Decimal
    price: Decimal
    leverage: int = 1
    equity: Decimal | None = None
    available: Decimal | None = None
    stop_price: Decimal | None = None
    position_qty: Decimal | None = None


def _requested_qty(request: SizeRequest) -> Decimal:
    mode, value, price, leverage = request.mode, request.value, request.price, Decimal(request.leverage)
    if mode == "qty":
        return value
    if mode == "usdt":
        return value / price
    if mode == "margin_usdt":
        return value * leverage / price
    if mode in ("pct_equity", "pct_available"):
        base = request.equity if mode == "pct_equity" else request.available
        if base is None:
            raise SizingError(
                f"size mode {mode} needs the account's {'equity' if mode == 'pct_equity' else 'available balance'}"
            )
        return base * value / HUNDRED * leverage / price
    if mode == "risk_pct":
        if request.stop_price is None:
            raise SizingError("size mode risk_pct needs a stop loss to measure the risk against")
        if request.equity is None:
            raise SizingError("size mode risk_pct needs the account's equity")
        distance = abs(price - request.stop_price)
        if distance == 0:
            raise SizingError("size mode risk_pct needs a stop loss away from the entry price")
        return request.equity * value / HUNDRED / distance
    if mode == "pct_position":
        if not request.position_qty:
            raise SizingError("size mode pct_position needs an open position")
        return request.position_qty * value / HUNDRED
    raise SizingError(f"unknown size mode '{mode}'; accepted: {', '.join(SIZE_MODES)}")


def size_order(request: SizeRequest, market: MarketRules) -> Decimal:
    """Base quantity for the request, rounded down to the step; raises SizingError below the minimums."""
    if request.value <= 0:
        raise SizingError(f"size must be positive, got {request.value}")
    if request.price <= 0:
        raise SizingError(f"price must be positive, got {request.price}")
    if request.leverage < 1:
        raise SizingError(f"leverage must be at least 1, got {request.leverage}")
    if request.mode in ("pct_equity", "pct_available", "risk_pct", "pct_position") and request.value > HUNDRED:
        raise SizingError(f"{request.mode} is a percentage; {request.value} is above 100")
    qty = round_amount_down(_requested_qty(request), market.amount_step)
    if qty <= 0 or qty < market.min_qty:
        raise SizingError(
            f"{market.symbol}: quantity {qty} is below the minimum {market.min_qty} (step {market.amount_step})"
        )
    notional = qty * request.price
    if notional < market.min_notional:
        raise SizingError(
            f"{market.symbol}: order value {notional.normalize():f} USDT is below the minimum "
            f"{market.min_notional.normalize():f} USDT"
        )
    return qty
