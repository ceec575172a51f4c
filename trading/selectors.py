"""Read-only queries that build what the risk engine and the pipeline look at."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone

from trading.models import (
    BalanceSnapshot,
    Fill,
    Order,
    Position,
    RiskLimits,
    SymbolProfile,
    TradingAccount,
    TradingMode,
)
from trading.risk import AccountState, RiskLimitsView, SymbolView

COUNTED_ENTRY_STATUSES = (
    Order.Status.NEW,
    Order.Status.SUBMITTED,
    Order.Status.OPEN,
    Order.Status.PARTIALLY_FILLED,
    Order.Status.FILLED,
    Order.Status.UNKNOWN,
)


def risk_limits_get(*, account: TradingAccount) -> RiskLimits:
    limits, _ = RiskLimits.objects.get_or_create(account=account)
    return limits


def risk_limits_view(limits: RiskLimits) -> RiskLimitsView:
    return RiskLimitsView(
        max_open_positions=limits.max_open_positions,
        max_trades_per_day=limits.max_trades_per_day,
        max_leverage=limits.max_leverage,
        max_daily_loss_usdt=limits.max_daily_loss_usdt,
        max_daily_loss_pct=limits.max_daily_loss_pct,
        max_drawdown_pct=limits.max_drawdown_pct,
        max_notional_per_trade=limits.max_notional_per_trade,
        min_confidence=limits.min_confidence,
        cooldown_seconds=limits.cooldown_seconds,
        trading_hours_start=limits.trading_hours_start,
        trading_hours_end=limits.trading_hours_end,
        trading_weekdays=limits.trading_weekdays,
        trading_timezone=limits.trading_timezone,
        max_signal_lag_seconds=limits.max_signal_lag_seconds,
    )


def symbol_view(profile: SymbolProfile | None) -> SymbolView | None:
    if profile is None:
        return None
    return SymbolView(
        symbol=profile.symbol,
        enabled=profile.enabled,
        max_leverage=profile.max_leverage,
        max_position_notional=profile.max_position_notional,
    )


def position_list_open(*, account: TradingAccount, symbol: str | None = None, side: str | None = None):
    positions = Position.objects.filter(account=account, status=Position.Status.OPEN)
    if symbol:
        positions = positions.filter(symbol=symbol)
    if side:
        positions = positions.filter(side=side)
    return positions


def balance_latest(*, account: TradingAccount) -> BalanceSnapshot | None:
    return BalanceSnapshot.objects.filter(account=account).order_by("-taken_at", "-id").first()


def dry_run_wallet_opening(*, account: TradingAccount) -> BalanceSnapshot:
    """A dry-run wallet as it opens, at DRY_RUN_STARTING_EQUITY (unsaved: ``dry_run.wallet_ensure`` stores it on
    the first trade, and the risk checks of that first trade count on it)."""
    start = Decimal(settings.DRY_RUN_STARTING_EQUITY)
    return BalanceSnapshot(
        account=account, equity=start, available=start, wallet_balance=start, taken_at=timezone.now()
    )


def day_start(*, now: datetime, timezone_name: str) -> datetime:
    local = now.astimezone(zoneinfo.ZoneInfo(timezone_name))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def account_state(
    *, account: TradingAccount, symbol: str, side: str, limits: RiskLimits, now: datetime
) -> AccountState:
    since = day_start(now=now, timezone_name=limits.trading_timezone)
    open_positions = position_list_open(account=account)
    same_side = open_positions.filter(symbol=symbol, side=side).first()
    symbol_notional = Decimal("0")
    if same_side is not None:
        symbol_notional = same_side.qty * (same_side.mark_price or same_side.entry_price)
    entries = Order.objects.filter(account=account, purpose=Order.Purpose.ENTRY, status__in=COUNTED_ENTRY_STATUSES)
    order_side = "buy" if side == "long" else "sell"
    entry_counts = entries.aggregate(
        latest=Max("created_at", filter=Q(symbol=symbol, side=order_side)),
        today=Count("id", filter=Q(created_at__gte=since)),
    )
    latest = balance_latest(account=account)
    if latest is None and account.mode == TradingMode.DRY_RUN:  # its wallet is known before its first trade
        latest = dry_run_wallet_opening(account=account)
    snapshots = BalanceSnapshot.objects.filter(account=account)
    before_today = snapshots.filter(taken_at__lt=since).order_by("-taken_at").first()
    first_today = snapshots.filter(taken_at__gte=since).order_by("taken_at").first()
    day_start_snapshot = before_today or first_today
    today = Fill.objects.filter(order__account=account, executed_at__gte=since).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee")
    )
    realized_today, fees_today = today["realized"] or Decimal("0"), today["fees"] or Decimal("0")
    positions = open_positions.aggregate(count=Count("id"), unrealized=Sum("unrealized_pnl"))
    unrealized = positions["unrealized"] or Decimal("0")
    return AccountState(
        trading_enabled=account.trading_enabled,
        open_positions=positions["count"],
        has_open_position_on_side=same_side is not None,
        symbol_open_notional=symbol_notional,
        trades_today=entry_counts["today"],
        last_entry_at=entry_counts["latest"],
        equity=latest.equity if latest else None,
        equity_peak=snapshots.aggregate(peak=Max("equity"))["peak"],
        day_start_equity=day_start_snapshot.equity if day_start_snapshot else None,
        daily_pnl=realized_today - fees_today + unrealized,
        available=latest.available if latest else None,
    )


def last_known_price(*, symbol: str) -> Decimal | None:
    """The latest price the platform saw for a symbol: a fill, or an open position's mark."""
    fill = Fill.objects.filter(order__symbol=symbol).order_by("-executed_at").first()
    if fill is not None:
        return fill.price
    position = Position.objects.filter(symbol=symbol, mark_price__isnull=False).order_by("-updated_at").first()
    return position.mark_price if position else None


@dataclass(frozen=True)
class PnlSummary:
    """One account's trading over a period: what the bot's status and reports show."""

    realized_pnl: Decimal  # from fills, before fees
    fees: Decimal
    volume: Decimal  # notional traded: sum of fill qty x price
    fills: int
    closed_positions: int
    winning_positions: int  # closed with a realized PnL above zero

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def hit_rate_pct(self) -> Decimal | None:
        if not self.closed_positions:
            return None
        return (Decimal(self.winning_positions) * 100 / self.closed_positions).quantize(Decimal("0.1"))


def pnl_summary(*, account: TradingAccount, since: datetime, until: datetime) -> PnlSummary:
    """Fills executed and positions closed in [since, until)."""
    fills = Fill.objects.filter(order__account=account, executed_at__gte=since, executed_at__lt=until).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee"), volume=Sum(F("qty") * F("price")), count=Count("id")
    )
    closed = Position.objects.filter(
        account=account, status=Position.Status.CLOSED, closed_at__gte=since, closed_at__lt=until
    ).aggregate(count=Count("id"), wins=Count("id", filter=Q(realized_pnl__gt=0)))
    return PnlSummary(
        realized_pnl=fills["realized"] or Decimal("0"),
        fees=fills["fees"] or Decimal("0"),
        volume=fills["volume"] or Decimal("0"),
        fills=fills["count"],
        closed_positions=closed["count"],
        winning_positions=closed["wins"],
    )
