"""Processing a stored signal: validated -> risk-checked -> executing (auto) or awaiting_confirmation (manual).

Signals of one account and symbol go through one at a time, in arrival order, by holding that lane
(``SignalLane``); other symbols run in parallel. Every stage is a checked, audited transition with its
reason. Execution goes to ``trading.dry_run`` for dry-run accounts and to ``trading.execution`` (BingX
through ccxt) for demo and live ones; both record orders, fills and positions alike.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from signals_app.dispatch import lanes_dispatch
from signals_app.events import publish
from signals_app.models import Signal, SignalLane
from signals_app.services import signal_transition
from trading import dry_run, execution
from trading.audit import Actor, audit_record
from trading.dashboard import worker_heartbeat_record
from trading.exchange.errors import ClockSkew, ExchangeError, ExchangeRejected
from trading.markets import UnknownSymbol, markets_catalog
from trading.models import Order, Position, SymbolProfile, TakeProfitLevel, TradingAccount, TradingMode
from trading.precision import MarketRules, round_amount_down, round_price
from trading.risk import RiskDecision, SymbolView, TradeRequest, risk_check
from trading.selectors import (
    account_state,
    last_known_price,
    position_list_open,
    risk_limits_get,
    risk_limits_view,
    symbol_view,
)
from trading.services import account_set_auto_trade
from trading.sizing import SizeRequest, SizingError, size_order
from trading.symbol_settings import SymbolSettingsFailed

logger = logging.getLogger(__name__)
PIPELINE = Actor.system("pipeline")
LANE_LEASE = timedelta(minutes=5)
HUNDRED = Decimal("100")
S = Signal.Status
ENTRY_ACTIONS = ("buy", "sell", "reverse")


class SignalRejected(Exception):
    """The signal cannot go ahead; the message is the reason shown to the trader."""


@dataclass
class Plan:
    """What a signal would do, worked out from the alert, the symbol's defaults and the market."""

    entry: dry_run.EntryPlan | None
    close_sides: tuple[str, ...]
    price: Decimal
    market: MarketRules
    risk: RiskDecision

    def describe(self) -> dict:
        data: dict = {"price": str(self.price), "checks": "passed" if self.risk.passed else self.risk.reason}
        if self.entry:
            data.update(
                side=self.entry.side,
                qty=str(self.entry.qty),
                notional=str((self.entry.qty * self.entry.price).quantize(Decimal("0.01"))),
                leverage=self.entry.leverage,
                margin_mode=self.entry.margin_mode,
                protective=[
                    {"purpose": leg.purpose, "trigger": str(leg.trigger_price), "qty": str(leg.qty)}
                    for leg in self.entry.protective
                ],
            )
        if self.close_sides:
            data["close"] = list(self.close_sides)
        return data


# --- lanes ---------------------------------------------------------------------------------------


def _lane_claim(account_id: int, symbol: str, holder: str) -> Signal | None:
    """Take the lane and its oldest waiting signal, or None when it is busy or empty (lane released)."""
    now = timezone.now()
    with transaction.atomic():
        SignalLane.objects.get_or_create(account_id=account_id, symbol=symbol)
        lane = SignalLane.objects.select_for_update().get(account_id=account_id, symbol=symbol)
        if lane.busy_until and lane.busy_until > now and lane.holder != holder:
            return None  # another worker is on it and will reach our signal in order
        waiting = (
            Signal.objects.filter(account_id=account_id, symbol=symbol, status=S.RECEIVED)
            .order_by("received_at", "id")
            .first()
        )
        if waiting is None:
            # Released in the same transaction as the "nothing left" check: a signal committed after it
            # finds the lane free, one committed before it was seen here.
            lane.holder, lane.busy_until = "", None
            lane.save(update_fields=["holder", "busy_until"])
            return None
        lane.holder, lane.busy_until = holder, now + LANE_LEASE
        lane.save(update_fields=["holder", "busy_until"])
        return waiting


def signal_lane_process(*, account_id: int, symbol: str) -> int:
    """Work through the lane's waiting signals in arrival order; returns how many were processed."""
    holder = uuid.uuid4().hex
    processed = 0
    while (signal := _lane_claim(account_id, symbol, holder)) is not None:
        try:
            signal_process(signal)
        except Exception as error:  # one broken signal must not block its lane
            logger.exception("signal %s failed in processing", signal.pk)
            signal.refresh_from_db()
            if signal.status in (S.RECEIVED, S.VALIDATED, S.APPROVED, S.EXECUTING):
                signal_transition(signal=signal, to=S.FAILED, actor=PIPELINE, reason=f"internal error: {error}")
        processed += 1
    return processed


# --- stages --------------------------------------------------------------------------------------


def signal_process(signal: Signal) -> None:
    """received -> validated -> risk-checked -> executing or awaiting_confirmation -> executed/rejected/failed."""
    signal.refresh_from_db()
    if signal.status != S.RECEIVED:
        return  # already taken further (a redelivered task, a second worker): nothing to do
    if not signal_transition(signal=signal, to=S.VALIDATED, actor=PIPELINE):
        return
    publish("signals.validated", signal)
    account = signal.account
    try:
        _symbol_settings_apply(signal, account)
        plan = plan_build(signal, account)
    except SignalRejected as rejection:
        _reject(signal, str(rejection))
        return
    signal.risk_checked_at = timezone.now()
    signal.extras = {**signal.extras, "plan": plan.describe()}
    signal.save(update_fields=["risk_checked_at", "extras", "updated_at"])
    if plan.risk.breach:
        _breach_handle(account, plan.risk)
    if not plan.risk.passed:
        _reject(signal, plan.risk.reason)
        return
    limits = risk_limits_get(account=account)
    automatic = account.auto_trade and (signal.confidence is None or signal.confidence >= limits.auto_min_confidence)
    if not automatic:
        expires = timezone.now() + timedelta(seconds=limits.confirmation_timeout_seconds)
        signal_transition(
            signal=signal,
            to=S.AWAITING_CONFIRMATION,
            actor=PIPELINE,
            reason="manual mode" if not account.auto_trade else "confidence below the auto-trade threshold",
            changes={"confirmation_expires_at": expires},
        )
        publish("signals.awaiting_confirmation", signal)
        return
    signal_transition(signal=signal, to=S.EXECUTING, actor=PIPELINE)
    _execute(signal, account, plan, actor=PIPELINE)


def _reject(signal: Signal, reason: str) -> None:
    signal_transition(signal=signal, to=S.REJECTED, actor=PIPELINE, reason=reason)
    publish("signals.rejected", signal)


def _market(signal: Signal) -> MarketRules:
    try:
        return markets_catalog().resolve(signal.symbol).rules
    except UnknownSymbol as error:
        raise SignalRejected(str(error)) from None


def _price(signal: Signal) -> Decimal:
    price = signal.price or last_known_price(symbol=signal.symbol)
    if price is None:
        raise SignalRejected(
            f'no price known for {signal.symbol}: send the price in the alert ("price": "{{{{close}}}}")'
        )
    return price


def _protective_legs(
    signal: Signal, profile: SymbolProfile | None, *, side: str, entry: Decimal, qty: Decimal, market: MarketRules
) -> tuple[dry_run.ProtectiveLeg, ...]:
    """Stop loss and take profits as prices, from the alert or else the symbol's defaults."""
    sign = Decimal("1") if side == "long" else Decimal("-1")
    legs = []
    stop = signal.sl_price
    if stop is None and signal.sl_pct is not None:
        stop = entry * (1 - sign * signal.sl_pct / HUNDRED)
    if (
        stop is None
        and profile
        and profile.stop_loss_mode != SymbolProfile.StopLossMode.NONE
        and profile.stop_loss_value
    ):
        stop = (
            profile.stop_loss_value
            if profile.stop_loss_mode == SymbolProfile.StopLossMode.PRICE
            else entry * (1 - sign * profile.stop_loss_value / HUNDRED)
        )
    if stop is not None:
        if (stop - entry) * sign >= 0:
            raise SignalRejected(f"stop loss {stop} is on the wrong side of the entry {entry} for a {side}")
        legs.append(dry_run.ProtectiveLeg("stop_loss", round_price(stop, market.price_tick), qty))
    levels = signal.tp_levels or [
        {
            "price": level.value if level.mode == TakeProfitLevel.Mode.PRICE else None,
            "pct": level.value if level.mode == TakeProfitLevel.Mode.PCT else None,
            "size_pct": level.size_pct,
        }
        for level in (profile.take_profit_levels.all() if profile else [])
    ]
    remaining = qty
    for number, level in enumerate(levels, start=1):
        price = Decimal(str(level["price"])) if level.get("price") is not None else None
        if price is None:
            price = entry * (1 + sign * Decimal(str(level["pct"])) / HUNDRED)
        if (price - entry) * sign <= 0:
            raise SignalRejected(f"take profit {number} at {price} is on the wrong side of the entry {entry}")
        leg_qty = round_amount_down(qty * Decimal(str(level["size_pct"])) / HUNDRED, market.amount_step)
        leg_qty = min(leg_qty, remaining) if number < len(levels) else remaining
        if leg_qty <= 0:
            continue
        remaining -= leg_qty
        legs.append(dry_run.ProtectiveLeg(f"take_profit_{number}", round_price(price, market.price_tick), leg_qty))
    return tuple(legs)


def _entry_side(signal: Signal, account: TradingAccount) -> str:
    if signal.action == "buy":
        return "long"
    if signal.action == "sell":
        return "short"
    open_sides = set(
        Position.objects.filter(account=account, symbol=signal.symbol, status="open").values_list("side", flat=True)
    )
    if open_sides == {"long"}:
        return "short"
    if open_sides == {"short"}:
        return "long"
    raise SignalRejected(f"reverse needs exactly one open position on {signal.symbol}; found {len(open_sides)}")


def _symbol_view(profile: SymbolProfile | None, market: MarketRules) -> SymbolView | None:
    """The symbol's limits, capped by what BingX allows on that market."""
    view = symbol_view(profile)
    if view is not None and market.max_leverage and market.max_leverage < view.max_leverage:
        view = replace(view, max_leverage=market.max_leverage)
    return view


def plan_build(
    signal: Signal,
    account: TradingAccount,
    *,
    qty_override: Decimal | None = None,
    leverage_override: int | None = None,
) -> Plan:
    """Work out what the signal would do and run the risk checks on it (no writes)."""
    market = _market(signal)
    profile = SymbolProfile.objects.filter(account=account, symbol=signal.symbol).first()
    limits = risk_limits_get(account=account)
    now = timezone.now()
    close_sides: tuple[str, ...] = ()
    entry = None
    if signal.action in ("close", "close_long", "close_short", "cancel", "update"):
        close_sides = {"close": ("long", "short"), "close_long": ("long",), "close_short": ("short",)}.get(
            signal.action, ()
        )
        if close_sides:
            price = _price(signal)
        else:  # cancel and update trade nothing at a price; it is only shown
            price = signal.price or last_known_price(symbol=signal.symbol) or Decimal("0")
        request = TradeRequest(
            symbol=signal.symbol,
            opens_exposure=False,
            sent_at=signal.sent_at,
            max_lag_seconds=signal.max_lag_seconds,
            confidence=signal.confidence,
        )
        state = account_state(account=account, symbol=signal.symbol, side="long", limits=limits, now=now)
        decision = risk_check(
            request, limits=risk_limits_view(limits), symbol=symbol_view(profile), state=state, now=now
        )
        return Plan(entry=None, close_sides=close_sides, price=price, market=market, risk=decision)

    side = _entry_side(signal, account)
    if signal.action == "reverse":
        close_sides = ("short",) if side == "long" else ("long",)
    price = _price(signal)
    leverage = leverage_override or signal.leverage or (profile.leverage if profile else account.default_leverage)
    margin_mode = signal.margin_mode or (profile.margin_mode if profile else account.default_margin_mode)
    state = account_state(account=account, symbol=signal.symbol, side=side, limits=limits, now=now)
    if qty_override is not None:
        mode, value = "qty", qty_override
    elif signal.size_mode and signal.size_value is not None:
        mode, value = signal.size_mode, signal.size_value
    elif profile and profile.order_size_value:
        mode, value = profile.order_size_mode, profile.order_size_value
    else:
        raise SignalRejected(
            f"no order size: give `size` in the alert or a default order size on the {signal.symbol} symbol profile"
        )
    stop_for_risk = signal.sl_price
    if stop_for_risk is None and signal.sl_pct is not None:
        stop_for_risk = price * (1 - (1 if side == "long" else -1) * signal.sl_pct / HUNDRED)
    try:
        qty = size_order(
            SizeRequest(
                mode=mode,
                value=value,
                price=price,
                leverage=leverage,
                equity=state.equity,
                available=state.available,
                stop_price=stop_for_risk,
            ),
            market,
        )
    except SizingError as error:
        raise SignalRejected(str(error)) from None
    request = TradeRequest(
        symbol=signal.symbol,
        opens_exposure=True,
        notional=qty * price,
        leverage=leverage,
        confidence=signal.confidence,
        sent_at=signal.sent_at,
        max_lag_seconds=signal.max_lag_seconds,
    )
    if close_sides:  # a reverse frees the position it closes before it opens the other side
        closing = list(position_list_open(account=account, symbol=signal.symbol).filter(side__in=close_sides))
        freed = sum((p.qty * p.entry_price / p.leverage for p in closing), Decimal("0"))
        state = replace(
            state,
            open_positions=state.open_positions - len(closing),
            available=None if state.available is None else state.available + freed,
        )
    decision = risk_check(
        request, limits=risk_limits_view(limits), symbol=_symbol_view(profile, market), state=state, now=now
    )
    protective = _protective_legs(signal, profile, side=side, entry=price, qty=qty, market=market)
    entry = dry_run.EntryPlan(
        symbol=signal.symbol,
        side=side,
        qty=qty,
        price=price,
        order_type=signal.order_type,
        leverage=leverage,
        margin_mode=margin_mode,
        protective=protective,
    )
    return Plan(entry=entry, close_sides=close_sides, price=price, market=market, risk=decision)


def _execute(signal: Signal, account: TradingAccount, plan: Plan, *, actor: Actor) -> None:
    if account.mode == TradingMode.DRY_RUN:
        try:
            _execute_dry_run(signal, account, plan, actor=actor)
        except SignalRejected as rejection:  # found out while executing (e.g. the position is gone): nothing traded
            signal_transition(signal=signal, to=S.REJECTED, actor=actor, reason=str(rejection))
            publish("signals.rejected", signal)
        return
    try:
        summary = _execute_on_exchange(signal, account, plan, actor=actor)
    except (SignalRejected, SymbolSettingsFailed, ExchangeRejected) as refusal:
        # Refused before anything traded (or BingX refused the order): a decision, not a fault.
        _finish(signal, S.REJECTED, f"{refusal}", actor=actor, topic="signals.rejected")
    except execution.OutcomeUnknown as unknown:
        # Stays executing: the poller resolves the order by its client id, then the sweeper finishes the signal.
        logger.error("signal %s: %s", signal.pk, unknown)
        publish("signals.outcome_unknown", signal, summary=str(unknown))
    except ClockSkew as error:
        _finish(signal, S.FAILED, f"not traded: {error}", actor=actor, topic="signals.failed")
        publish("alerts.clock_skew", None, account_id=account.pk, account=account.name, message=str(error))
    except (ExchangeError, execution.ExecutionFailed) as error:  # breaker open, unreachable, half-done close
        _finish(signal, S.FAILED, f"{error}", actor=actor, topic="signals.failed")
    else:
        _finish(signal, S.EXECUTED, summary, actor=actor, topic="orders.executed")


def _finish(signal: Signal, status: str, reason: str, *, actor: Actor, topic: str) -> None:
    signal_transition(signal=signal, to=status, actor=actor, reason=reason)
    publish(topic, signal, summary=reason)


def _execute_on_exchange(signal: Signal, account: TradingAccount, plan: Plan, *, actor: Actor) -> str:
    """The same steps as the dry run, each on BingX, in order: a reverse opens only after its close is confirmed."""
    return _execute_steps(signal, account, plan, actor=actor, executor=execution)


def _execute_dry_run(signal: Signal, account: TradingAccount, plan: Plan, *, actor: Actor) -> None:
    with transaction.atomic():  # the trade and the signal's final status commit together
        summary = _execute_steps(signal, account, plan, actor=actor, executor=dry_run)
        signal_transition(signal=signal, to=S.EXECUTED, actor=actor, reason=summary)
    publish("orders.executed", signal, summary=summary)


def _execute_steps(signal: Signal, account: TradingAccount, plan: Plan, *, actor: Actor, executor) -> str:
    """Close, cancel, update, then enter, with ``executor`` (``trading.dry_run`` or ``trading.execution``, which
    offer the same operations); returns what was done. Only the dry run needs the price to fill at."""
    summaries = []
    if plan.close_sides:
        fill_price = {"price": plan.price} if executor is dry_run else {}
        report = executor.close_execute(
            account=account,
            signal=signal,
            sides=plan.close_sides,
            actor=actor,
            fraction=_close_fraction(signal, account, plan),
            qty_step=plan.market.amount_step,
            reason=Position.CloseReason.REVERSE if signal.action == "reverse" else Position.CloseReason.SIGNAL,
            **fill_price,
        )
        summaries.append(report.summary)
    if signal.action == "cancel":
        summaries.append(
            executor.orders_cancel(account=account, signal=signal, actor=actor, include_protective=False).summary
        )
    if signal.action == "update":
        summaries.append(_update_protective(signal, account, plan, actor, executor=executor))
    if plan.entry is not None:
        summaries.append(executor.entry_execute(account=account, signal=signal, plan=plan.entry, actor=actor).summary)
    return "; ".join(summaries)


def _close_fraction(signal: Signal, account: TradingAccount, plan: Plan) -> Decimal:
    """How much of the open position(s) a close takes: all of it unless the alert sized the close."""
    if signal.action == "reverse" or not signal.size_value:
        return Decimal("1")
    if signal.size_mode == "pct_position":
        return min(signal.size_value / HUNDRED, Decimal("1"))
    open_qty = sum(
        Position.objects.filter(
            account=account, symbol=signal.symbol, side__in=plan.close_sides, status="open"
        ).values_list("qty", flat=True),
        Decimal("0"),
    )
    if not open_qty:
        return Decimal("1")
    wanted = {"qty": signal.size_value, "usdt": signal.size_value / plan.price}.get(signal.size_mode)
    if wanted is None:
        raise SignalRejected(f"a close is sized by qty, usdt or pct_position, not {signal.size_mode}")
    return min(wanted / open_qty, Decimal("1"))


def _update_protective(signal: Signal, account: TradingAccount, plan: Plan, actor: Actor, *, executor) -> str:
    positions = list(Position.objects.filter(account=account, symbol=signal.symbol, status="open"))
    if not positions:
        raise SignalRejected(f"no open position on {signal.symbol} to update")
    profile = SymbolProfile.objects.filter(account=account, symbol=signal.symbol).first()
    summaries = []
    for position in positions:
        legs = _protective_legs(
            signal, profile, side=position.side, entry=position.entry_price, qty=position.qty, market=plan.market
        )
        summaries.append(
            executor.protective_replace(
                account=account, signal=signal, side=position.side, legs=legs, actor=actor
            ).summary
        )
    return "; ".join(summaries)


# --- settings, breaches --------------------------------------------------------------------------


def _symbol_settings_apply(signal: Signal, account: TradingAccount) -> None:
    """Legacy TVTelegramBingX alerts carry per-symbol settings: keep them on the symbol's profile.

    A profile created this way starts disabled: an alert can tune a whitelisted symbol, never whitelist one.
    """
    overrides = signal.extras.get("symbol_settings")
    if not overrides:
        return
    actor = Actor.webhook(signal.source_ip)
    with transaction.atomic():
        profile, created = SymbolProfile.objects.get_or_create(
            account=account, symbol=signal.symbol, defaults={"enabled": False}
        )
        before = {
            "leverage": profile.leverage,
            "order_size_mode": profile.order_size_mode,
            "order_size_value": profile.order_size_value,
            "stop_loss_value": profile.stop_loss_value,
        }
        if "order_size_mode" in overrides:
            profile.order_size_mode = overrides["order_size_mode"]
            profile.order_size_value = Decimal(str(overrides["order_size_value"]))
        if "leverage" in overrides:
            profile.leverage = int(overrides["leverage"])
            profile.max_leverage = max(profile.max_leverage, profile.leverage) if created else profile.max_leverage
            if profile.leverage > profile.max_leverage:
                raise SignalRejected(
                    f"leverage {profile.leverage} is above {signal.symbol}'s maximum {profile.max_leverage}"
                )
        if "stop_loss_pct" in overrides:
            profile.stop_loss_mode = SymbolProfile.StopLossMode.PCT
            profile.stop_loss_value = Decimal(str(overrides["stop_loss_pct"]))
        if overrides.get("breakeven_after_tp"):
            profile.breakeven_enabled, profile.breakeven_after_tp = True, overrides["breakeven_after_tp"]
        elif "breakeven_after_tp" in overrides:
            profile.breakeven_enabled = False
        profile.save()
        if "take_profits" in overrides:
            profile.take_profit_levels.all().delete()
            for level in overrides["take_profits"]:
                TakeProfitLevel.objects.create(
                    profile=profile,
                    level=level["level"],
                    mode=TakeProfitLevel.Mode.PCT,
                    value=Decimal(level["pct"]),
                    size_pct=Decimal(level["size_pct"]),
                )
        audit_record(
            actor=actor,
            action="symbolprofile.settings_from_alert",
            instance=profile,
            before=before,
            after=overrides,
            reason=f"signal {signal.pk}",
        )


def _breach_handle(account: TradingAccount, decision: RiskDecision) -> None:
    """A loss limit is breached: auto-trade goes off (persisted), an alert is raised, and positions may be closed."""
    reason = next((r.message for r in decision.rejections if r.rule == decision.breach), decision.breach or "")
    if account_set_auto_trade(account=account, enabled=False, actor=PIPELINE, reason=f"risk breach: {reason}"):
        publish("risk.breach", None, account_id=account.pk, rule=decision.breach, reason=reason)
    limits = risk_limits_get(account=account)
    if not limits.auto_flatten_on_daily_loss:
        return
    for position in Position.objects.filter(account=account, status="open"):
        try:
            position_flatten(position=position, actor=PIPELINE)
        except (ExchangeError, execution.ExecutionFailed, execution.OutcomeUnknown) as error:
            logger.error("flatten after breach: %s %s not closed: %s", position.symbol, position.side, error)
            publish("alerts.flatten_failed", None, account_id=account.pk, symbol=position.symbol, reason=str(error))


class _FlattenOrigin:
    """What a platform-initiated close is keyed on instead of a signal: one flatten per position."""

    def __init__(self, position: Position):
        self.pk = f"flatten-{position.pk}"
        self.symbol = position.symbol


def position_flatten(*, position: Position, actor: Actor) -> dry_run.ExecutionReport:
    """Close one open position completely at market, outside any signal (a loss breach, a close by hand).

    Keyed on the position, so repeating it places no second order. Raises the executor's errors (ExchangeError,
    ExecutionFailed, OutcomeUnknown) for the caller to report.
    """
    account = position.account
    origin = _FlattenOrigin(position)
    if account.mode == TradingMode.DRY_RUN:
        price = last_known_price(symbol=position.symbol) or position.mark_price or position.entry_price
        return dry_run.close_execute(
            account=account,
            signal=origin,
            sides=(position.side,),
            price=price,
            actor=actor,
            reason=Position.CloseReason.MANUAL,
        )
    return execution.close_execute(
        account=account, signal=origin, sides=(position.side,), actor=actor, reason=Position.CloseReason.MANUAL
    )


# --- manual approval -----------------------------------------------------------------------------


def signal_approve(
    *,
    signal: Signal,
    actor: Actor,
    qty: Decimal | None = None,
    leverage: int | None = None,
    sl_price: Decimal | None = None,
    tp_levels: list[dict] | None = None,
) -> Signal:
    """Approve a waiting signal, optionally edited; the edit is risk-checked again before anything trades."""
    signal.refresh_from_db()
    if signal.status != S.AWAITING_CONFIRMATION:
        raise SignalRejected(f"signal {signal.pk} is {signal.status}, not awaiting confirmation")
    if signal.confirmation_expires_at and signal.confirmation_expires_at <= timezone.now():
        signals_expire_due()
        raise SignalRejected(f"signal {signal.pk} expired at {signal.confirmation_expires_at:%H:%M:%S}")
    edits = {}
    if sl_price is not None:
        edits.update(sl_price=sl_price, sl_pct=None)
    if tp_levels is not None:
        edits["tp_levels"] = tp_levels
    if leverage is not None:
        edits["leverage"] = leverage
    if qty is not None:
        edits.update(size_mode="qty", size_value=qty)
    for name, value in edits.items():
        setattr(signal, name, value)
    account = signal.account
    try:
        plan = plan_build(signal, account, qty_override=qty, leverage_override=leverage)
    except SignalRejected:
        signal.refresh_from_db()
        raise
    if not plan.risk.passed:
        raise SignalRejected(plan.risk.reason)
    signal_transition(
        signal=signal,
        to=S.APPROVED,
        actor=actor,
        changes={**edits, "extras": {**signal.extras, "plan": plan.describe()}},
        reason="approved" + (f" with edits: {', '.join(edits)}" if edits else ""),
    )
    signal_transition(signal=signal, to=S.EXECUTING, actor=actor)
    _execute(signal, account, plan, actor=actor)
    signal.refresh_from_db()
    if signal.status == S.REJECTED:  # found out while executing: the caller (e.g. the bot's card) must know
        raise SignalRejected(signal.rejection_reason)
    return signal


def signal_reject(*, signal: Signal, actor: Actor, reason: str = "rejected by hand") -> Signal:
    signal_transition(signal=signal, to=S.REJECTED, actor=actor, reason=reason)
    publish("signals.rejected", signal)
    return signal


def signals_expire_due() -> int:
    """Expire signals whose confirmation window has passed; returns how many."""
    expired = 0
    due = Signal.objects.filter(status=S.AWAITING_CONFIRMATION, confirmation_expires_at__lte=timezone.now())
    for signal in due:
        if signal_transition(signal=signal, to=S.EXPIRED, actor=PIPELINE, reason="not confirmed in time"):
            publish("signals.expired", signal)
            expired += 1
    return expired


def signals_executing_resolve() -> int:
    """Finish signals left ``executing`` longer than SIGNAL_SWEEP_AFTER_SECONDS; returns how many.

    Dry run: the trade and the final status commit together, so a signal still executing was interrupted
    and traded nothing. Live/demo: its orders are looked up on BingX (``orders_poll``); once none is
    unknown, the signal is executed if any order reached BingX, else failed.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.SIGNAL_SWEEP_AFTER_SECONDS)
    finished = 0
    polled: dict[int, ExchangeError | None] = {}  # one look at BingX per account per sweep, not per signal
    for signal in Signal.objects.filter(status=S.EXECUTING, executing_at__lte=cutoff).select_related("account"):
        account = signal.account
        if account.mode == TradingMode.DRY_RUN:
            _finish(
                signal,
                S.FAILED,
                "interrupted while executing; nothing was traded",
                actor=PIPELINE,
                topic="signals.failed",
            )
            finished += 1
            continue
        if account.pk not in polled:
            try:
                execution.orders_poll(account=account)
                polled[account.pk] = None
            except ExchangeError as error:
                polled[account.pk] = error
        if polled[account.pk] is not None:
            logger.warning("signal %s: orders not readable yet: %s", signal.pk, polled[account.pk])
            continue
        orders = list(signal.orders.all())
        if any(order.status in (Order.Status.UNKNOWN, Order.Status.NEW) for order in orders):
            continue  # not known yet; the next sweep looks again
        placed = [order for order in orders if order.status not in (Order.Status.REJECTED,)]
        summary = "; ".join(f"{order.purpose} {order.side} {order.qty} {order.status}" for order in orders)
        if placed:
            _finish(
                signal,
                S.EXECUTED,
                f"resolved on BingX after an unknown outcome: {summary}",
                actor=PIPELINE,
                topic="orders.executed",
            )
        else:
            _finish(
                signal,
                S.FAILED,
                f"never reached BingX: {summary or 'no order'}",
                actor=PIPELINE,
                topic="signals.failed",
            )
        finished += 1
    return finished


def signals_sweep() -> int:
    """Hand over lanes whose signals wait longer than SIGNAL_SWEEP_AFTER_SECONDS (lost hand-over, dead worker)."""
    worker_heartbeat_record()  # the dashboard's sign that a worker (or the embedded beat) is running
    signals_expire_due()
    signals_executing_resolve()
    cutoff = timezone.now() - timedelta(seconds=settings.SIGNAL_SWEEP_AFTER_SECONDS)
    lanes = set(Signal.objects.filter(status=S.RECEIVED, received_at__lte=cutoff).values_list("account_id", "symbol"))
    if lanes:
        logger.warning("sweeper: %s lane(s) with signals waiting since before %s", len(lanes), cutoff)
        lanes_dispatch(sorted(lanes))
    return len(lanes)
