"""The risk engine (pure): may this trade go ahead, given the account's limits and its current state?

No ORM and no I/O here: the caller builds a snapshot (``RiskLimitsView``, ``SymbolView``,
``AccountState``) and gets back every rule the trade breaks, each with a name and a sentence for the
trader. Rules that exist to stop new exposure never block a trade that only reduces it: a close is
checked for staleness alone, so the kill switch, a loss limit or a closed trading window can never
trap a trader in a position.

Limits are inclusive: a trade that lands exactly on a limit passes; one just over it fails.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from trading.precision import decimal_text

HUNDRED = Decimal("100")
FUTURE_SKEW = timedelta(seconds=60)  # a sent_at further ahead than this means a broken clock, not a fresh alert
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class RiskLimitsView:
    max_open_positions: int
    max_trades_per_day: int
    max_leverage: int
    max_daily_loss_usdt: Decimal | None = None
    max_daily_loss_pct: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    max_notional_per_trade: Decimal | None = None
    min_confidence: Decimal = Decimal("0")
    cooldown_seconds: int = 0
    trading_hours_start: time | None = None
    trading_hours_end: time | None = None
    trading_weekdays: str = "0123456"
    trading_timezone: str = "UTC"
    max_signal_lag_seconds: int = 60


@dataclass(frozen=True)
class SymbolView:
    symbol: str
    enabled: bool
    max_leverage: int
    max_position_notional: Decimal | None = None


@dataclass(frozen=True)
class AccountState:
    trading_enabled: bool
    open_positions: int = 0
    has_open_position_on_side: bool = False  # adding to it opens no new position
    symbol_open_notional: Decimal = Decimal("0")  # this symbol and side, at current prices
    trades_today: int = 0
    last_entry_at: datetime | None = None  # this symbol and side
    equity: Decimal | None = None
    equity_peak: Decimal | None = None
    day_start_equity: Decimal | None = None
    daily_pnl: Decimal = Decimal("0")  # realized + unrealized since the start of the day; a loss is negative
    available: Decimal | None = None


@dataclass(frozen=True)
class TradeRequest:
    symbol: str
    opens_exposure: bool  # False for closes and reduce-only orders
    notional: Decimal = Decimal("0")
    leverage: int = 1
    confidence: Decimal | None = None  # 0-100
    sent_at: datetime | None = None
    max_lag_seconds: int | None = None  # the alert's own max_lag_s; the stricter of it and the account's wins


@dataclass(frozen=True)
class RiskRejection:
    rule: str
    message: str


@dataclass(frozen=True)
class RiskDecision:
    rejections: tuple[RiskRejection, ...]
    breach: str | None = None  # "daily_loss" or "drawdown": auto-trade goes off, and positions may be flattened

    @property
    def passed(self) -> bool:
        return not self.rejections

    @property
    def reason(self) -> str:
        return "; ".join(rejection.message for rejection in self.rejections)


def _money(value: Decimal) -> str:
    return decimal_text(value)


def signal_lag_rejection(
    *, sent_at: datetime | None, alert_max_lag: int | None, account_max_lag: int, now: datetime
) -> RiskRejection | None:
    """The staleness rule, shared by the webhook (a 400) and the risk check (a rejection).

    The stricter of the alert's own max_lag_s and the account's limit applies; a sent_at far in the
    future means a broken clock, not a fresh alert.
    """
    if sent_at is None:
        return None
    allowed = account_max_lag if alert_max_lag is None else min(account_max_lag, alert_max_lag)
    age = now - sent_at
    if age < -FUTURE_SKEW:
        return RiskRejection(
            "signal_from_future", f"the alert's sent_at is {-age.total_seconds():.0f} s in the future; check the clock"
        )
    if age.total_seconds() > allowed:
        return RiskRejection("signal_stale", f"the alert is {age.total_seconds():.0f} s old; the limit is {allowed} s")
    return None


def check_signal_lag(request: TradeRequest, limits: RiskLimitsView, now: datetime) -> RiskRejection | None:
    return signal_lag_rejection(
        sent_at=request.sent_at,
        alert_max_lag=request.max_lag_seconds,
        account_max_lag=limits.max_signal_lag_seconds,
        now=now,
    )


def check_trading_hours(limits: RiskLimitsView, now: datetime) -> RiskRejection | None:
    local = now.astimezone(zoneinfo.ZoneInfo(limits.trading_timezone))
    if str(local.weekday()) not in limits.trading_weekdays:
        allowed = ", ".join(WEEKDAY_NAMES[int(day)] for day in sorted(limits.trading_weekdays))
        return RiskRejection(
            "outside_trading_days", f"{WEEKDAY_NAMES[local.weekday()]} is not a trading day (allowed: {allowed})"
        )
    start, end = limits.trading_hours_start, limits.trading_hours_end
    if start is None or end is None or start == end:
        return None
    clock = local.time().replace(tzinfo=None)
    # A window like 22:00-06:00 runs over midnight.
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return RiskRejection(
            "outside_trading_hours",
            f"{clock:%H:%M} {limits.trading_timezone} is outside trading hours {start:%H:%M}-{end:%H:%M}",
        )
    return None


def loss_breach(limits: RiskLimitsView, state: AccountState) -> RiskRejection | None:
    loss = -state.daily_pnl
    if limits.max_daily_loss_usdt is not None and loss > limits.max_daily_loss_usdt:
        return RiskRejection(
            "daily_loss",
            f"today's loss {_money(loss)} USDT is over the limit {_money(limits.max_daily_loss_usdt)} USDT",
        )
    if limits.max_daily_loss_pct is not None and state.day_start_equity:
        loss_pct = loss / state.day_start_equity * HUNDRED
        if loss_pct > limits.max_daily_loss_pct:
            return RiskRejection(
                "daily_loss",
                f"today's loss {loss_pct:.2f}% is over the limit {_money(limits.max_daily_loss_pct)}%",
            )
    if limits.max_drawdown_pct is not None and state.equity_peak and state.equity is not None:
        drawdown = (state.equity_peak - state.equity) / state.equity_peak * HUNDRED
        if drawdown > limits.max_drawdown_pct:
            return RiskRejection(
                "drawdown",
                f"drawdown {drawdown:.2f}% from the equity peak {_money(state.equity_peak)} is over the limit "
                f"{_money(limits.max_drawdown_pct)}%",
            )
    return None


def _entry_rejections(
    request: TradeRequest, limits: RiskLimitsView, symbol: SymbolView | None, state: AccountState, now: datetime
) -> list[RiskRejection | None]:
    required_margin = request.notional / Decimal(max(request.leverage, 1))
    symbol_total = state.symbol_open_notional + request.notional
    return [
        None
        if state.trading_enabled
        else RiskRejection("kill_switch", "trading is stopped for this account (kill switch); only exits are allowed"),
        None
        if symbol is not None and symbol.enabled
        else RiskRejection("symbol_not_whitelisted", f"{request.symbol} is not whitelisted for this account"),
        check_trading_hours(limits, now),
        None
        if request.confidence is None or request.confidence >= limits.min_confidence
        else RiskRejection(
            "confidence_too_low",
            f"confidence {_money(request.confidence)} is below the minimum {_money(limits.min_confidence)}",
        ),
        _cooldown(request, limits, state, now),
        None
        if state.trades_today < limits.max_trades_per_day
        else RiskRejection(
            "trades_per_day", f"{state.trades_today} trades today; the limit is {limits.max_trades_per_day}"
        ),
        None
        if state.has_open_position_on_side or state.open_positions < limits.max_open_positions
        else RiskRejection(
            "open_positions", f"{state.open_positions} positions are open; the limit is {limits.max_open_positions}"
        ),
        None
        if limits.max_notional_per_trade is None or request.notional <= limits.max_notional_per_trade
        else RiskRejection(
            "notional_per_trade",
            f"order value {_money(request.notional)} USDT is over the per-trade limit "
            f"{_money(limits.max_notional_per_trade)} USDT",
        ),
        None
        if symbol is None or symbol.max_position_notional is None or symbol_total <= symbol.max_position_notional
        else RiskRejection(
            "notional_per_symbol",
            f"{request.symbol} position would be {_money(symbol_total)} USDT; the limit is "
            f"{_money(symbol.max_position_notional)} USDT",
        ),
        None
        if symbol is None or request.leverage <= symbol.max_leverage
        else RiskRejection(
            "leverage_symbol",
            f"leverage {request.leverage}x is above {request.symbol}'s maximum {symbol.max_leverage}x",
        ),
        None
        if request.leverage <= limits.max_leverage
        else RiskRejection(
            "leverage_account", f"leverage {request.leverage}x is above the account's maximum {limits.max_leverage}x"
        ),
        None
        if state.available is None or required_margin <= state.available
        else RiskRejection(
            "insufficient_balance",
            f"required margin {required_margin:.2f} USDT is more than the available {_money(state.available)} USDT",
        ),
        loss_breach(limits, state),
    ]


def _cooldown(
    request: TradeRequest, limits: RiskLimitsView, state: AccountState, now: datetime
) -> RiskRejection | None:
    if not limits.cooldown_seconds or state.last_entry_at is None:
        return None
    waited = (now - state.last_entry_at).total_seconds()
    if waited >= limits.cooldown_seconds:
        return None
    return RiskRejection(
        "cooldown",
        f"{request.symbol} was entered {waited:.0f} s ago; the cooldown is {limits.cooldown_seconds} s",
    )


def risk_check(
    request: TradeRequest,
    *,
    limits: RiskLimitsView,
    symbol: SymbolView | None,
    state: AccountState,
    now: datetime,
) -> RiskDecision:
    """Every rule the trade breaks (empty when it may go ahead), and whether a loss limit is breached."""
    checks: list[RiskRejection | None] = [check_signal_lag(request, limits, now)]
    if request.opens_exposure:
        checks.extend(_entry_rejections(request, limits, symbol, state, now))
    breach = loss_breach(limits, state)
    return RiskDecision(
        rejections=tuple(check for check in checks if check is not None),
        breach=breach.rule if breach else None,
    )
