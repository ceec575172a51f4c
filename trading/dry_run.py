"""Dry-run execution: no exchange call, but orders, fills, positions and the wallet recorded as in live trading.

Market orders fill at once at the given price moved against the order by DRY_RUN_SLIPPAGE_PCT, plus the
configured fee. Limit entries
rest as open orders, and stop-loss / take-profit orders rest as open reduce-only trigger orders; filling
those needs a price feed, which arrives with the exchange and stream issues. Each call runs in one
transaction, so a failure leaves no half-recorded trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trading.audit import Actor
from trading.models import BalanceSnapshot, Fill, Order, Position, TradingAccount
from trading.precision import decimal_text, round_amount_down
from trading.selectors import balance_latest, dry_run_wallet_opening, position_list_open
from trading.services import order_for_leg, order_transition, position_close, signal_of

ZERO = Decimal("0")


@dataclass(frozen=True)
class ProtectiveLeg:
    purpose: str  # stop_loss | take_profit_N
    trigger_price: Decimal
    qty: Decimal


@dataclass(frozen=True)
class EntryPlan:
    symbol: str
    side: str  # long | short
    qty: Decimal
    price: Decimal
    order_type: str  # market | limit
    leverage: int
    margin_mode: str
    protective: tuple[ProtectiveLeg, ...] = ()


@dataclass
class ExecutionReport:
    orders: list[Order] = field(default_factory=list)
    filled_qty: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    summary: str = ""


def wallet_ensure(*, account: TradingAccount) -> BalanceSnapshot:
    """The dry-run wallet's latest state; the first call opens it with DRY_RUN_STARTING_EQUITY."""
    latest = balance_latest(account=account)
    if latest is not None:
        return latest
    opening = dry_run_wallet_opening(account=account)
    opening.save(force_insert=True)
    return opening


def _wallet_update(*, account: TradingAccount, fee: Decimal, realized: Decimal, margin_change: Decimal) -> None:
    latest = wallet_ensure(account=account)
    wallet = latest.wallet_balance - fee + realized
    used = max(latest.used_margin + margin_change, ZERO)
    unrealized = sum((p.unrealized_pnl for p in position_list_open(account=account)), ZERO)
    BalanceSnapshot.objects.create(
        account=account,
        equity=wallet + unrealized,
        available=wallet - used,
        wallet_balance=wallet,
        unrealized_pnl=unrealized,
        used_margin=used,
        taken_at=timezone.now(),
    )


def slipped(price: Decimal, side: str) -> Decimal:
    """The simulated fill price of a market order: DRY_RUN_SLIPPAGE_PCT worse than ``price`` for its side."""
    slippage = settings.DRY_RUN_SLIPPAGE_PCT / Decimal("100")
    if not slippage:
        return price
    factor = Decimal("1") + slippage if side == "buy" else Decimal("1") - slippage
    return (price * factor).quantize(Decimal("0.00000001"))


def _order(*, account, signal, leg: str, **fields) -> Order:
    # Orders the platform places itself (e.g. flattening after a loss breach) belong to no signal.
    return order_for_leg(account=account, origin_pk=signal.pk, leg=leg, signal=signal_of(signal), **fields)


def _fill(*, order: Order, price: Decimal, qty: Decimal, actor: Actor, realized: Decimal = ZERO) -> Decimal:
    """Fill an order completely at ``price``; returns the fee charged."""
    fee = (qty * price * settings.DRY_RUN_FEE_RATE).quantize(Decimal("0.00000001"))
    Fill.objects.get_or_create(
        exchange_trade_id=f"dry-{order.client_order_id}",
        defaults={
            "order": order,
            "qty": qty,
            "price": price,
            "fee": fee,
            "realized_pnl": realized,
            "executed_at": timezone.now(),
        },
    )
    order_transition(order=order, to=Order.Status.SUBMITTED, actor=actor)
    order_transition(
        order=order,
        to=Order.Status.FILLED,
        actor=actor,
        changes={"filled_qty": qty, "average_price": price, "fees": fee},
    )
    return fee


def entry_execute(*, account: TradingAccount, signal, plan: EntryPlan, actor: Actor) -> ExecutionReport:
    report = ExecutionReport()
    order_side = "buy" if plan.side == "long" else "sell"
    with transaction.atomic():
        wallet_ensure(account=account)
        entry = _order(
            account=account,
            signal=signal,
            leg="entry",
            symbol=plan.symbol,
            side=order_side,
            order_type=plan.order_type,
            purpose=Order.Purpose.ENTRY,
            qty=plan.qty,
            price=plan.price if plan.order_type == "limit" else None,
        )
        report.orders.append(entry)
        if plan.order_type == "limit":
            order_transition(order=entry, to=Order.Status.SUBMITTED, actor=actor)
            order_transition(order=entry, to=Order.Status.OPEN, actor=actor)
            report.summary = (
                f"limit {order_side} {decimal_text(plan.qty)} {plan.symbol} @ {decimal_text(plan.price)} "
                "resting (dry run)"
            )
            return report
        fill_price = slipped(plan.price, order_side)
        fee = _fill(order=entry, price=fill_price, qty=plan.qty, actor=actor)
        position = (
            Position.objects.select_for_update()
            .filter(account=account, symbol=plan.symbol, side=plan.side, status=Position.Status.OPEN)
            .first()
        )
        if position is None:
            position = Position.objects.create(
                account=account,
                symbol=plan.symbol,
                side=plan.side,
                qty=plan.qty,
                entry_price=fill_price,
                mark_price=plan.price,
                leverage=plan.leverage,
                margin_mode=plan.margin_mode,
                opened_at=timezone.now(),
            )
        else:  # adding: the entry price becomes the quantity-weighted average
            total = position.qty + plan.qty
            position.entry_price = ((position.entry_price * position.qty + fill_price * plan.qty) / total).quantize(
                Decimal("0.00000001")
            )
            position.qty, position.mark_price = total, plan.price
            position.save(update_fields=["qty", "entry_price", "mark_price", "updated_at"])
        for leg in plan.protective:
            report.orders.append(
                _protective_place(
                    account=account,
                    signal=signal,
                    symbol=plan.symbol,
                    side=plan.side,
                    leg=leg,
                    key=leg.purpose,
                    actor=actor,
                )
            )
        _wallet_update(account=account, fee=fee, realized=ZERO, margin_change=plan.qty * plan.price / plan.leverage)
        report.filled_qty = plan.qty
        report.summary = (
            f"{order_side} {decimal_text(plan.qty)} {plan.symbol} @ {decimal_text(fill_price)} filled (dry run)"
        )
    return report


def _protective_place(
    *, account: TradingAccount, signal, symbol: str, side: str, leg: ProtectiveLeg, key: str, actor: Actor
) -> Order:
    """A reduce-only stop-loss or take-profit order resting on the position's ``side``."""
    order = _order(
        account=account,
        signal=signal,
        leg=key,
        symbol=symbol,
        side="sell" if side == "long" else "buy",
        position_side=Order.PositionSideChoice.BOTH,
        order_type=Order.Type.STOP_MARKET if leg.purpose == "stop_loss" else Order.Type.TAKE_PROFIT_MARKET,
        purpose=leg.purpose,
        qty=leg.qty,
        trigger_price=leg.trigger_price,
        reduce_only=True,
    )
    order_transition(order=order, to=Order.Status.SUBMITTED, actor=actor)
    order_transition(order=order, to=Order.Status.OPEN, actor=actor)
    return order


def _protective_orders(*, account: TradingAccount, symbol: str, side: str):
    closing_side = "sell" if side == "long" else "buy"
    return Order.objects.filter(
        account=account,
        symbol=symbol,
        reduce_only=True,
        side=closing_side,
        status__in=(Order.Status.NEW, Order.Status.SUBMITTED, Order.Status.OPEN),
    )


def close_execute(
    *,
    account: TradingAccount,
    signal,
    sides: tuple[str, ...],
    price: Decimal,
    actor: Actor,
    fraction: Decimal = Decimal("1"),
    qty_step: Decimal | None = None,
    reason: str = Position.CloseReason.SIGNAL,
) -> ExecutionReport:
    """Close (or reduce by ``fraction``) the open positions on ``sides``; reduce-only, never opens anything."""
    report = ExecutionReport()
    with transaction.atomic():
        positions = list(
            Position.objects.select_for_update().filter(
                account=account, symbol=signal.symbol, side__in=sides, status=Position.Status.OPEN
            )
        )
        for position in positions:
            qty = position.qty if fraction >= 1 else (position.qty * fraction)
            if qty_step is not None and fraction < 1:
                qty = round_amount_down(qty, qty_step)
            if qty <= 0:
                continue
            direction = Decimal("1") if position.side == "long" else Decimal("-1")
            fill_price = slipped(price, "sell" if position.side == "long" else "buy")
            realized = ((fill_price - position.entry_price) * qty * direction).quantize(Decimal("0.00000001"))
            order = _order(
                account=account,
                signal=signal,
                leg=f"close_{position.side}",
                symbol=position.symbol,
                side="sell" if position.side == "long" else "buy",
                order_type=Order.Type.MARKET,
                purpose=Order.Purpose.CLOSE,
                qty=qty,
                reduce_only=True,
            )
            fee = _fill(order=order, price=fill_price, qty=qty, actor=actor, realized=realized)
            report.orders.append(order)
            report.filled_qty += qty
            report.realized_pnl += realized
            margin_released = qty * position.entry_price / position.leverage
            if qty >= position.qty:
                for protective in _protective_orders(account=account, symbol=position.symbol, side=position.side):
                    order_transition(order=protective, to=Order.Status.CANCELED, actor=actor, reason="position closed")
                position_close(
                    position=position, reason=reason, actor=actor, realized_pnl=position.realized_pnl + realized
                )
            else:
                position.qty -= qty
                position.realized_pnl += realized
                position.save(update_fields=["qty", "realized_pnl", "updated_at"])
            _wallet_update(account=account, fee=fee, realized=realized, margin_change=-margin_released)
        report.summary = (
            f"closed {decimal_text(report.filled_qty)} {signal.symbol} @ {decimal_text(price)}, "
            f"realized {decimal_text(report.realized_pnl)} USDT (dry run)"
            if report.orders
            else f"no open {'/'.join(sides)} position on {signal.symbol} to close"
        )
    return report


def orders_cancel(*, account: TradingAccount, signal, actor: Actor, include_protective: bool) -> ExecutionReport:
    """Cancel resting orders on the signal's symbol; protective SL/TP stay unless asked."""
    report = ExecutionReport()
    with transaction.atomic():
        orders = Order.objects.select_for_update().filter(
            account=account,
            symbol=signal.symbol,
            status__in=(Order.Status.NEW, Order.Status.SUBMITTED, Order.Status.OPEN, Order.Status.PARTIALLY_FILLED),
        )
        if not include_protective:
            orders = orders.filter(reduce_only=False)
        for order in orders:
            order_transition(order=order, to=Order.Status.CANCELED, actor=actor, reason=f"signal {signal.pk}")
            report.orders.append(order)
    report.summary = f"canceled {len(report.orders)} open order(s) on {signal.symbol}"
    return report


def protective_replace(
    *, account: TradingAccount, signal, side: str, legs: tuple[ProtectiveLeg, ...], actor: Actor
) -> ExecutionReport:
    """Replace the SL/TP orders of the open position on ``side`` with ``legs``."""
    report = ExecutionReport()
    with transaction.atomic():
        for old in _protective_orders(account=account, symbol=signal.symbol, side=side).select_for_update():
            order_transition(order=old, to=Order.Status.CANCELED, actor=actor, reason=f"replaced by signal {signal.pk}")
        for leg in legs:
            report.orders.append(
                _protective_place(
                    account=account,
                    signal=signal,
                    symbol=signal.symbol,
                    side=side,
                    leg=leg,
                    key=f"update_{leg.purpose}",
                    actor=actor,
                )
            )
    report.summary = f"{len(legs)} stop-loss/take-profit order(s) set on {signal.symbol} {side}"
    return report
