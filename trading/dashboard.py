"""What the live dashboard shows: one read-only snapshot of every active account, as JSON-ready values.

``dashboard_snapshot`` is the one place the page (first render) and its WebSocket consumer (every push)
read from, so both always show the same thing. Numbers travel as strings (Decimal, no float rounding);
times as ISO 8601 in UTC. The browser formats them.

Health has three parts, each read without calling anything slow:
- exchange: ``TradingAccount.exchange_health`` (the circuit breaker's verdict);
- stream: the BingX user-data stream's own record, ``account.stream_state`` (``connected``,
  ``last_event_at``, ``last_error``), written by ``manage.py run_stream``. Without one it is "unknown";
- worker: the time of the sweeper's last run (``worker_heartbeat_record``, a cache key) and the signals
  left waiting longer than the sweeper allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Min
from django.utils import timezone

from signals_app.models import Signal
from trading.execution import OPEN_STATUSES
from trading.models import BalanceSnapshot, Order, Position, TradingAccount, TradingMode
from trading.selectors import balance_latest

logger = logging.getLogger(__name__)

# The channel-layer groups the dashboard listens to (the channel layer has no wildcard subscriptions).
DASHBOARD_TOPICS = (
    "signals.raw",
    "signals.validated",
    "signals.awaiting_confirmation",
    "signals.rejected",
    "signals.failed",
    "signals.expired",
    "signals.outcome_unknown",
    "orders.executed",
    "positions.updated",
    "positions.closed",
    "positions.stop_loss",
    "positions.take_profit",
    "balances.updated",
    "risk.breach",
    "alerts.circuit_open",
    "alerts.circuit_closed",
    "alerts.clock_skew",
    "alerts.protection_missing",
    "alerts.flatten_failed",
    "alerts.stream_down",
    "alerts.stream_restored",
)
SIGNALS_PER_ACCOUNT = 10
ORDERS_PER_ACCOUNT = 50
STREAM_STATE = "stream_state"  # the stream consumer's per-account row (a one-to-one on TradingAccount)
WORKER_HEARTBEAT_KEY = "tvbingx:worker:last_sweep"
# The sweeper runs every 10 s; missing it for a minute means no worker (or beat) is running.
WORKER_LATE_SECONDS = 60

STOP_PURPOSES = (Order.Purpose.STOP_LOSS,)
TAKE_PROFIT_PURPOSES = tuple(p for p in Order.Purpose.values if p.startswith("take_profit"))


def worker_heartbeat_record() -> None:
    """Called by the sweeper each run: the dashboard's evidence that a worker is alive."""
    try:
        cache.set(WORKER_HEARTBEAT_KEY, time.time(), timeout=24 * 3600)
    except Exception:  # a heartbeat must never break the sweep
        logger.warning("worker heartbeat not recorded", exc_info=True)


def dashboard_accounts():
    accounts = TradingAccount.objects.filter(is_active=True).order_by("name")
    return accounts.select_related(STREAM_STATE) if _has_stream_state() else accounts


def dashboard_snapshot(*, accounts: Iterable[TradingAccount]) -> dict[str, Any]:
    now = timezone.now()
    accounts = list(accounts)
    ids = [account.pk for account in accounts]
    positions = _by_account(Position.objects.filter(account_id__in=ids, status=Position.Status.OPEN))
    orders = _by_account(Order.objects.filter(account_id__in=ids, status__in=OPEN_STATUSES).order_by("-created_at"))
    return {
        "generated_at": _time(now),
        "worker": worker_health(now=now),
        "accounts": [
            _account(account, positions.get(account.pk, []), orders.get(account.pk, [])) for account in accounts
        ],
    }


def _by_account(rows) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(row.account_id, []).append(row)
    return grouped


def _account(account: TradingAccount, positions: list[Position], orders: list[Order]) -> dict[str, Any]:
    signals = Signal.objects.filter(account=account).order_by("-received_at", "-id")[:SIGNALS_PER_ACCOUNT]
    return {
        "id": account.pk,
        "name": account.name,
        "mode": account.mode,
        "mode_label": account.get_mode_display(),
        "trading_enabled": account.trading_enabled,
        "auto_trade": account.auto_trade,
        "balance": _balance(balance_latest(account=account)),
        "positions": [_position(position, orders) for position in positions],
        "open_orders": [_order(order) for order in orders[:ORDERS_PER_ACCOUNT]],
        "signals": [_signal(signal) for signal in signals],
        "health": {"exchange": exchange_health(account), "stream": stream_health(account)},
    }


def _balance(snapshot: BalanceSnapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "asset": snapshot.asset,
        "equity": _number(snapshot.equity),
        "available": _number(snapshot.available),
        "wallet_balance": _number(snapshot.wallet_balance),
        "unrealized_pnl": _number(snapshot.unrealized_pnl),
        "used_margin": _number(snapshot.used_margin),
        "taken_at": _time(snapshot.taken_at),
    }


def _position(position: Position, open_orders: list[Order]) -> dict[str, Any]:
    closing_side = "sell" if position.side == "long" else "buy"
    protective = [
        order
        for order in open_orders
        if order.symbol == position.symbol and order.side == closing_side and order.reduce_only
    ]
    stops = [order for order in protective if order.purpose in STOP_PURPOSES]
    trailing = [order for order in protective if order.purpose == Order.Purpose.TRAILING]
    take_profits = sorted((order for order in protective if order.purpose in TAKE_PROFIT_PURPOSES), key=_purpose)
    return {
        "id": position.pk,
        "symbol": position.symbol,
        "side": position.side,
        "qty": _number(position.qty),
        "entry_price": _number(position.entry_price),
        "mark_price": _number(position.mark_price),
        "unrealized_pnl": _number(position.unrealized_pnl),
        "roe_pct": _number(_roe_pct(position)),
        "leverage": position.leverage,
        "margin_mode": position.margin_mode,
        "liquidation_price": _number(position.liquidation_price),
        "stop_loss": _number(stops[0].trigger_price) if stops else None,
        "trailing_stop": _number(trailing[0].trigger_price) if trailing else None,
        "take_profits": [_number(order.trigger_price) for order in take_profits],
        "opened_at": _time(position.opened_at),
        "updated_at": _time(position.updated_at),
    }


def _purpose(order: Order) -> str:
    return order.purpose


def _roe_pct(position: Position) -> Decimal | None:
    """Unrealized PnL as a percentage of the initial margin (what BingX calls ROE)."""
    margin = position.qty * position.entry_price / Decimal(position.leverage or 1)
    if not margin:
        return None
    return (position.unrealized_pnl / margin * 100).quantize(Decimal("0.01"))


def _order(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.order_type,
        "type_label": order.get_order_type_display(),
        "purpose": order.purpose,
        "purpose_label": order.get_purpose_display(),
        "qty": _number(order.qty),
        "filled_qty": _number(order.filled_qty),
        "price": _number(order.price),
        "trigger_price": _number(order.trigger_price),
        "reduce_only": order.reduce_only,
        "status": order.status,
        "status_label": order.get_status_display(),
        "created_at": _time(order.created_at),
    }


def _signal(signal: Signal) -> dict[str, Any]:
    return {
        "id": signal.pk,
        "received_at": _time(signal.received_at),
        "symbol": signal.symbol,
        "action": signal.action,
        "strategy": signal.strategy,
        "status": signal.status,
        "status_label": signal.get_status_display(),
        "reason": signal.rejection_reason,
    }


# --- health ----------------------------------------------------------------------------------------


def exchange_health(account: TradingAccount) -> dict[str, Any]:
    if account.mode == TradingMode.DRY_RUN:
        return {"status": "n/a", "detail": "dry run: no exchange", "changed_at": None}
    return {
        "status": account.exchange_health,
        "detail": account.exchange_health_reason,
        "changed_at": _time(account.exchange_health_changed_at),
    }


def stream_health(account: TradingAccount) -> dict[str, Any]:
    if account.mode == TradingMode.DRY_RUN:
        return {"status": "n/a", "detail": "dry run: no exchange stream", "last_event_at": None}
    state = stream_state_of(account)
    if state is None:
        return {"status": "unknown", "detail": "no stream status reported", "last_event_at": None}
    connected = getattr(state, "connected", None)
    status = "unknown" if connected is None else "connected" if connected else "disconnected"
    last_event_at = getattr(state, "last_event_at", None)
    return {
        "status": status,
        "detail": "" if connected else str(getattr(state, "last_error", "") or ""),
        "last_event_at": _time(last_event_at) if isinstance(last_event_at, datetime) else None,
    }


def stream_state_of(account: TradingAccount):
    """The account's stream state row (``account.stream_state``), or None: no stream has run, or the stream
    consumer is not installed in this build."""
    try:
        return getattr(account, STREAM_STATE, None)
    except ObjectDoesNotExist:
        return None


def _has_stream_state() -> bool:
    return any(field.name == STREAM_STATE for field in TradingAccount._meta.get_fields())


def worker_health(*, now: datetime) -> dict[str, Any]:
    try:
        beat = cache.get(WORKER_HEARTBEAT_KEY)
    except Exception:  # cache down: the health page reports that; here it is just unknown
        beat = None
    last_sweep_at = datetime.fromtimestamp(beat, tz=UTC) if isinstance(beat, int | float) else None
    # The sweeper hands over signals older than SIGNAL_SWEEP_AFTER_SECONDS; twice that is overdue.
    overdue = now - timedelta(seconds=2 * settings.SIGNAL_SWEEP_AFTER_SECONDS)
    waiting = Signal.objects.filter(status=Signal.Status.RECEIVED, received_at__lte=overdue).aggregate(
        count=Count("id"), oldest=Min("received_at")
    )
    if waiting["count"]:
        status, detail = "stalled", f"{waiting['count']} signal(s) waiting too long for a worker"
    elif last_sweep_at is None:
        status, detail = "unknown", "no sweep recorded yet"
    elif (now - last_sweep_at).total_seconds() > WORKER_LATE_SECONDS:
        status, detail = "late", "the sweeper has not run for over a minute"
    else:
        status, detail = "ok", ""
    return {
        "status": status,
        "detail": detail,
        "last_sweep_at": _time(last_sweep_at),
        "waiting_signals": waiting["count"],
        "oldest_waiting_at": _time(waiting["oldest"]),
    }


# --- values ----------------------------------------------------------------------------------------


def _number(value: Decimal | None) -> str | None:
    """A Decimal as a plain string without trailing zeros ("65000", "0.01"); None stays None."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
