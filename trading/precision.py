"""The one place where money and quantities are rounded to what the exchange accepts.

Amounts are rounded **down** to the market's step, never up: rounding up would trade more than the
trader asked for. Prices are rounded to the tick, in the direction that keeps an order on the safe
side where that matters (see ``round_price``). Everything is ``Decimal``; floats are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal


@dataclass(frozen=True)
class MarketRules:
    """What one market accepts: steps and minimums, as the exchange publishes them."""

    symbol: str
    amount_step: Decimal
    price_tick: Decimal
    min_qty: Decimal = Decimal("0")
    min_notional: Decimal = Decimal("0")
    max_leverage: int | None = None

    def __post_init__(self) -> None:
        for name in ("amount_step", "price_tick", "min_qty", "min_notional"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TypeError(f"MarketRules.{name} must be a Decimal, got {type(value).__name__}")
        if self.amount_step <= 0 or self.price_tick <= 0:
            raise ValueError(f"{self.symbol}: amount step and price tick must be positive")


def decimal_text(value: Decimal | None) -> str:
    """A Decimal as people read it: plain digits, no exponent, no trailing zeros (0E-8 -> 0, 5.00000000 -> 5)."""
    return "n/a" if value is None else f"{value.normalize():f}"


def to_decimal(value: object) -> Decimal:
    """Exact conversion for values that arrive as strings or ints; floats go through their repr."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, float):
        # repr gives the shortest string that round-trips, so 0.1 becomes Decimal("0.1"), not 0.1000000000000000055...
        return Decimal(repr(value))
    return Decimal(str(value))


def round_amount_down(qty: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` that is not above ``qty`` (for qty >= 0)."""
    if qty < 0:
        raise ValueError("a quantity cannot be negative")
    steps = (qty / step).to_integral_value(rounding=ROUND_DOWN)
    return (steps * step).quantize(step)


def round_price(price: Decimal, tick: Decimal, *, direction: str = "nearest") -> Decimal:
    """Round a price to the tick: ``nearest``, ``down`` or ``up``."""
    rounding = {"nearest": ROUND_HALF_EVEN, "down": ROUND_DOWN, "up": ROUND_UP}[direction]
    ticks = (price / tick).to_integral_value(rounding=rounding)
    return (ticks * tick).quantize(tick)
