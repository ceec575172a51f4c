"""Live and demo execution on BingX: the operations of ``trading.dry_run``, done on the exchange.

The database row of an order is written (status ``new``, with its deterministic client order id) and
committed *before* the order is sent, so a crash at any point leaves something to look up. Sending is
``order_submit``: once, and again only when it is proven safe (see there). What the exchange reports is
applied by ``order_apply``, the one place that moves an order's status forward and records its fills,
for the entry path, the poller and (later) the stream alike. The exchange is the truth for positions
and balances: they are re-read after each trade (``positions_sync``, ``balance_sync``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from signals_app.events import publish
from trading.audit import Actor, audit_record
from trading.burst_sql import closing_fills, open_protection_sides
from trading.dry_run import EntryPlan, ExecutionReport, ProtectiveLeg
from trading.exchange.breaker import breaker_listen
from trading.exchange.client import BingXClient, client_for
from trading.exchange.errors import (
    DuplicateClientOrderId,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotFound,
    RateLimited,
)
from trading.exchange.types import ExchangeBalance, ExchangeOrder, ExchangePosition, OrderRequest
from trading.markets import markets_catalog
from trading.models import BalanceSnapshot, Fill, Order, Position, PositionMode, TradingAccount, TradingMode
from trading.precision import decimal_text, round_amount_down
from trading.rules import ORDER_TRANSITIONS
from trading.services import account_positions_lock, order_for_leg, order_transition, position_close, signal_of
from trading.symbol_settings import symbol_settings_ensure
from trading.transitions import transition_stage

logger = logging.getLogger(__name__)

OS = Order.Status
ZERO = Decimal("0")
EXCHANGE = Actor.system("bingx")
OPEN_STATUSES = (OS.NEW, OS.SUBMITTED, OS.OPEN, OS.PARTIALLY_FILLED, OS.UNKNOWN)
PROTECTIVE_PURPOSES = tuple(p for p in Order.Purpose.values if p.startswith(("stop_loss", "take_profit", "trailing")))
# How often an entry asks whether its market order has filled, while it waits.
FILL_POLL_SECONDS = 0.05
# How an order BingX placed to liquidate a position is recorded (not one of ours, so not in Order.Type).
LIQUIDATION_ORDER_TYPE = "liquidation"
# A `new` order row older than this is looked up by the poller: its sender may have died after sending.
STALE_NEW_SECONDS = 60


class OutcomeUnknown(Exception):
    """An order's fate could not be learned (BingX unreachable even for the lookup). It stays ``unknown``
    and the poller resolves it by its client id; nothing may be sent in its place meanwhile."""

    def __init__(self, order: Order, cause: ExchangeError) -> None:
        self.order = order
        super().__init__(f"order {order.client_order_id} sent, outcome unknown ({cause}); being looked up")


class ExecutionFailed(Exception):
    """The trade could not be done, and nothing was left half-done on the exchange; the reason says why."""


def is_hedged(account: TradingAccount) -> bool:
    return account.position_mode == PositionMode.HEDGE


# --- one order -------------------------------------------------------------------------------------


def order_request_for(order: Order, *, hedged: bool) -> OrderRequest:
    closing = order.reduce_only
    # The position an order acts on: an opening buy and a closing sell both concern the long.
    long_side = (order.side == "buy") != closing
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        order_type=order.order_type,
        qty=order.qty,
        client_order_id=order.client_order_id,
        position_side="long" if long_side else "short",
        hedged=hedged,
        reduce_only=closing,
        price=order.price,
        trigger_price=order.trigger_price,
    )


def order_submit(*, order: Order, client: BingXClient, hedged: bool, actor: Actor) -> ExchangeOrder:
    """Place ``order`` (a committed ``new`` row) on BingX at most once.

    - accepted: applied and returned;
    - refused (insufficient margin, invalid, auth): the order is ``rejected`` with BingX's reason and
      ``ExchangeRejected`` is raised; never sent again;
    - rate limited: refused unseen, so sent again after a pause;
    - no usable answer (timeout, 5xx, dropped): the order is ``unknown`` and looked up by its client id.
      Found: adopted. Proven absent: sent again, with the same client id, so that a late execution of the
      first attempt makes BingX refuse the second as a duplicate. Lookup impossible: ``OutcomeUnknown``.
    - duplicate client id: it was placed before; looked up and adopted.
    """
    attempts = max(1, settings.EXCHANGE_RETRY_ATTEMPTS)
    last_error: ExchangeError | None = None
    for attempt in range(1, attempts + 1):
        try:
            placed = client.create_order(order_request_for(order, hedged=hedged))
        except DuplicateClientOrderId as error:
            placed = _look_up(order, client, cause=error)
            if placed is None:  # BingX says both "used before" and "not found": do not guess
                raise OutcomeUnknown(order, error) from error
        except RateLimited as error:
            last_error = error
            _pause(attempt)
            continue
        except ExchangeUnavailable as error:
            last_error = error
            order_transition(order=order, to=OS.UNKNOWN, actor=actor, reason=str(error))
            placed = _look_up(order, client, cause=error)
            if placed is None:
                order_transition(order=order, to=OS.NEW, actor=actor, reason="not on BingX (looked up); sending again")
                _pause(attempt)
                continue
        except ExchangeRejected as error:
            order_transition(order=order, to=OS.REJECTED, actor=actor, reason=str(error))
            raise
        order_apply(order=order, state=placed, actor=actor)
        return placed
    reason = f"not placed after {attempts} attempts: {last_error}"
    order_transition(order=order, to=OS.REJECTED, actor=actor, reason=reason)
    raise ExchangeRejected(reason)


def _look_up(order: Order, client: BingXClient, *, cause: ExchangeError) -> ExchangeOrder | None:
    try:
        return client.order_by_client_id(order.symbol, order.client_order_id)
    except ExchangeError as error:
        logger.error("order %s: lookup after %s failed too: %s", order.client_order_id, cause, error)
        raise OutcomeUnknown(order, error) from error


def _pause(attempt: int) -> None:
    time.sleep(float(settings.EXCHANGE_RETRY_BACKOFF_SECONDS) * 2 ** (attempt - 1))


def order_apply(
    *,
    order: Order,
    state: ExchangeOrder,
    actor: Actor = EXCHANGE,
    trade_qty: Decimal | None = None,
    trade_realized_pnl: Decimal = ZERO,
) -> list[Fill]:
    """Bring ``order`` up to what BingX reports: status (forward only), fills, average price, fees.

    Idempotent: a report seen twice, or an older one after a newer, changes nothing. Fills are recorded
    per increase of the executed quantity, keyed "<exchange order id>:<cumulative qty>", so the REST poller
    and the stream record the same fill once.

    ``state.realized_pnl`` is the order's cumulative realized PnL (REST). A stream event reports only its
    trade's (``trade_realized_pnl`` for ``trade_qty``), used when the increase is exactly that trade.
    """
    new_fills: list[Fill] = []
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        advance = order_advance(
            locked,
            state,
            actor=actor,
            trade_qty=trade_qty,
            trade_realized_pnl=trade_realized_pnl,
            realized_recorded=order_realized_recorded,
        )
        if advance.fill is not None:
            fill = advance.fill
            stored, created = Fill.objects.get_or_create(
                exchange_trade_id=fill.exchange_trade_id,
                defaults={name: getattr(fill, name) for name in FILL_FIELDS},
            )
            if created:
                new_fills.append(stored)
        if advance.fields:
            locked.save(update_fields=advance.fields)
        for event in advance.events:
            event.save(force_insert=True)
    _copy_row(locked, order)
    return new_fills


FILL_FIELDS = ("order", "qty", "price", "fee", "realized_pnl", "executed_at")


@dataclass
class OrderAdvance:
    """What ``order_advance`` changed on an order row in memory, for the caller to write."""

    fields: list[str] = field(default_factory=list)  # the row's fields to save
    fill: Fill | None = None  # the new fill (unsaved), keyed by exchange_trade_id
    events: list = field(default_factory=list)  # the status moves' audit rows (unsaved), in order


def order_advance(
    locked: Order,
    state: ExchangeOrder,
    *,
    actor: Actor,
    trade_qty: Decimal | None = None,
    trade_realized_pnl: Decimal = ZERO,
    realized_recorded: Callable[[Order], Decimal],
) -> OrderAdvance:
    """The rule of ``order_apply``, in memory: bring ``locked`` (a row the caller holds locked) up to ``state``
    and say what to write. ``realized_recorded(order)`` is the realized PnL of the fills already recorded.
    ``order_apply`` writes one order; the stream writes a burst of them in a few statements."""
    advance = OrderAdvance()
    changed: set[str] = set()
    if state.exchange_order_id and locked.exchange_order_id != state.exchange_order_id:
        locked.exchange_order_id = state.exchange_order_id
        changed.add("exchange_order_id")
    filled = min(state.filled_qty, locked.qty)
    if filled > locked.filled_qty:
        increment = filled - locked.filled_qty
        average = state.average_price or locked.price or ZERO
        # The increment's price: what makes the running average come out as BingX reports it.
        price = average
        if locked.filled_qty and locked.average_price and state.average_price:
            price = ((state.average_price * filled) - (locked.average_price * locked.filled_qty)) / increment
            price = price.quantize(Decimal("0.00000001"))
        if trade_qty is not None and increment == trade_qty:
            realized = trade_realized_pnl
        else:
            realized = state.realized_pnl - realized_recorded(locked)
        order_key = state.exchange_order_id or locked.client_order_id
        advance.fill = Fill(
            exchange_trade_id=f"{order_key}:{format(filled.normalize(), 'f')}",
            order=locked,
            qty=increment,
            price=price if price > 0 else average,
            fee=max(state.fee - locked.fees, ZERO),
            realized_pnl=realized,
            executed_at=timezone.now(),
        )
        locked.filled_qty, locked.average_price, locked.fees = filled, state.average_price, max(state.fee, locked.fees)
        changed.update(("filled_qty", "average_price", "fees"))
    for target in order_status_path(locked.status, state.status):
        staged = transition_stage(locked, to=target, table=ORDER_TRANSITIONS, actor=actor)
        if staged is not None:
            changed.update(staged.fields)
            advance.events.append(staged.event)
    if changed:
        locked.updated_at = timezone.now()
        changed.add("updated_at")
    advance.fields = sorted(changed)
    return advance


def order_status_path(current: str, target: str) -> list[str]:
    """The moves that bring an order from ``current`` towards what BingX reports (``target``), along the
    allowed path; a report behind the current status gives none (status only moves forward)."""
    path: list[str] = []
    if target == current:
        return path
    if current == OS.NEW and target != OS.SUBMITTED:
        path.append(OS.SUBMITTED)
        current = OS.SUBMITTED
    if target == OS.SUBMITTED:
        if current in (OS.NEW, OS.UNKNOWN):
            path.append(OS.OPEN if current == OS.UNKNOWN else OS.SUBMITTED)
        return path
    if target in ORDER_TRANSITIONS.get(current, frozenset()):
        path.append(target)
    return path


def _copy_row(source: Order, target: Order) -> None:
    """``target`` as ``source`` (the same row, read under lock and saved): ``refresh_from_db`` without the
    query. A relation whose key changed is dropped from the cache, as ``refresh_from_db`` would."""
    for column in Order._meta.concrete_fields:
        value = getattr(source, column.attname)
        if column.is_relation and getattr(target, column.attname) != value and column.is_cached(target):
            column.delete_cached_value(target)
        setattr(target, column.attname, value)
    target.__dict__.pop("_prefetched_objects_cache", None)


def order_realized_recorded(order: Order) -> Decimal:
    """The realized PnL of the order's fills recorded so far."""
    return sum(order.fills.values_list("realized_pnl", flat=True), ZERO)


def _await_final(order: Order, client: BingXClient) -> None:
    """Wait (briefly) until a market order reports filled; what is still open is left to the poller."""
    deadline = time.monotonic() + float(settings.EXCHANGE_FILL_WAIT_SECONDS)
    while order.status not in (OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED):
        state = client.order(order.symbol, order.exchange_order_id)
        order_apply(order=order, state=state)
        if order.status in (OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED) or time.monotonic() >= deadline:
            return
        time.sleep(FILL_POLL_SECONDS)


# --- entries and their protection ------------------------------------------------------------------


def entry_execute(*, account: TradingAccount, signal, plan: EntryPlan, actor: Actor) -> ExecutionReport:
    """Open or add to a position. Margin mode and leverage are set first (``symbol_settings_ensure``)."""
    client = client_for(account)
    client.clock_check()
    hedged = is_hedged(account)
    symbol_settings_ensure(
        account=account,
        symbol=plan.symbol,
        margin_mode=plan.margin_mode,
        leverage=plan.leverage,
        client=client,
        actor=actor,
    )
    side = "buy" if plan.side == "long" else "sell"
    entry = order_for_leg(
        account=account,
        origin_pk=signal.pk,
        leg="entry",
        signal=signal_of(signal),
        symbol=plan.symbol,
        side=side,
        position_side=plan.side if hedged else Order.PositionSideChoice.BOTH,
        order_type=plan.order_type,
        purpose=Order.Purpose.ENTRY,
        qty=plan.qty,
        price=plan.price if plan.order_type == "limit" else None,
        protective_plan=[
            {"purpose": leg.purpose, "trigger_price": str(leg.trigger_price), "qty": str(leg.qty)}
            for leg in plan.protective
        ],
    )
    report = ExecutionReport(orders=[entry])
    if entry.status == OS.NEW:
        order_submit(order=entry, client=client, hedged=hedged, actor=actor)
    if plan.order_type == "market":
        _await_final(entry, client)
    elif entry.status == OS.SUBMITTED:
        _read_back([entry], client)  # resting, or already filled if the price was through it
    if entry.status == OS.FILLED:
        report.orders += entry_filled(entry=entry, client=client, actor=actor)
        report.filled_qty = entry.filled_qty
        report.summary = (
            f"{side} {decimal_text(entry.filled_qty)} {plan.symbol} @ {decimal_text(entry.average_price)} "
            "filled on BingX"
        )
    elif entry.status in (OS.REJECTED, OS.CANCELED, OS.EXPIRED):
        raise ExecutionFailed(f"BingX {entry.status} the entry: {entry.error_text or 'no reason given'}")
    else:
        where = f"@ {decimal_text(plan.price)} " if plan.order_type == "limit" else ""
        report.summary = (
            f"{plan.order_type} {side} {decimal_text(plan.qty)} {plan.symbol} {where}{entry.status} on BingX"
        )
    return report


def entry_filled(*, entry: Order, client: BingXClient | None = None, actor: Actor = EXCHANGE) -> list[Order]:
    """An entry filled: place its stop loss and take profits (once), then re-read the position.

    Protection goes first: a position must not stay unprotected because a read of BingX failed.
    """
    account = entry.account
    client = client or client_for(account)
    placed = entry_protect(entry=entry, client=client, actor=actor)
    try:
        positions_sync(account=account, symbol=entry.symbol, client=client)
    except ExchangeError as error:  # the poller, the stream and the resync read it again
        logger.warning("position of %s %s not read after the entry: %s", account.name, entry.symbol, error)
    if placed:
        _read_back(placed, client)
    try:
        balance_sync(account=account, client=client)
    except ExchangeError as error:  # a missed snapshot is retaken on the next trade or resync
        logger.warning("balance of %s not read after the entry: %s", account.name, error)
    return placed


def entry_protect(*, entry: Order, client: BingXClient, actor: Actor) -> list[Order]:
    """The filled entry's stop loss and take profits, each placed once (a leg already placed is kept)."""
    side = "long" if entry.side == "buy" else "short"
    return [
        protective_place(
            account=entry.account, origin=entry, symbol=entry.symbol, side=side, leg=leg, actor=actor, client=client
        )
        for leg in _protective_legs(entry)
    ]


def _read_back(orders: list[Order], client: BingXClient) -> None:
    """BingX's answer to a create carries no status: one read of the open orders tells which now rest."""
    try:
        resting = {state.exchange_order_id: state for state in client.open_orders(orders[0].symbol)}
    except ExchangeError as error:  # the poller will read them; nothing depends on it now
        logger.warning("open orders of %s not read back: %s", orders[0].symbol, error)
        return
    for order in orders:
        state = resting.get(order.exchange_order_id)
        if state is not None:
            order_apply(order=order, state=state)


def _protective_legs(entry: Order) -> list[ProtectiveLeg]:
    """The entry's planned legs, scaled down to what actually filled."""
    legs = [
        ProtectiveLeg(purpose=leg["purpose"], trigger_price=Decimal(leg["trigger_price"]), qty=Decimal(leg["qty"]))
        for leg in entry.protective_plan or []
    ]
    if not legs or entry.filled_qty >= entry.qty:
        return legs
    step = markets_catalog().resolve(entry.symbol).rules.amount_step
    share = entry.filled_qty / entry.qty
    scaled = [ProtectiveLeg(leg.purpose, leg.trigger_price, round_amount_down(leg.qty * share, step)) for leg in legs]
    return [leg for leg in scaled if leg.qty > 0]


def protective_place(
    *,
    account: TradingAccount,
    origin,
    symbol: str,
    side: str,
    leg: ProtectiveLeg,
    actor: Actor,
    client: BingXClient | None = None,
    key: str | None = None,
) -> Order:
    """A reduce-only stop-loss or take-profit trigger order protecting the ``side`` position.

    A refusal does not undo the entry: the position stands unprotected, which is said loudly (error log,
    ``alerts.protection_missing`` event) and left on the order as its rejection reason.
    """
    client = client or client_for(account)
    hedged = is_hedged(account)
    order = order_for_leg(
        account=account,
        origin_pk=origin.pk if not isinstance(origin, Order) else f"order-{origin.pk}",
        leg=key or leg.purpose,
        signal=origin.signal if isinstance(origin, Order) else signal_of(origin),
        symbol=symbol,
        side="sell" if side == "long" else "buy",
        position_side=side if hedged else Order.PositionSideChoice.BOTH,
        order_type=Order.Type.STOP_MARKET if leg.purpose == "stop_loss" else Order.Type.TAKE_PROFIT_MARKET,
        purpose=leg.purpose,
        qty=leg.qty,
        trigger_price=leg.trigger_price,
        reduce_only=True,
    )
    if order.status != OS.NEW:
        return order
    try:
        order_submit(order=order, client=client, hedged=hedged, actor=actor)
    except (ExchangeError, OutcomeUnknown) as error:  # refused, unknown, breaker open, clock: never silent
        logger.error("%s %s for %s %s NOT placed: %s", leg.purpose, leg.trigger_price, symbol, side, error)
        _alert("alerts.protection_missing", account, f"{leg.purpose} for {symbol} {side} not placed: {error}")
    return order


def _alert(topic: str, account: TradingAccount, message: str) -> None:
    publish(topic, None, account_id=account.pk, account=account.name, message=message)


# --- closing, cancelling, updating -----------------------------------------------------------------


@dataclass
class CloseOutcome:
    report: ExecutionReport = field(default_factory=ExecutionReport)
    confirmed: bool = True


def close_execute(
    *,
    account: TradingAccount,
    signal,
    sides: tuple[str, ...],
    actor: Actor,
    fraction: Decimal = Decimal("1"),
    qty_step: Decimal | None = None,
    reason: str = Position.CloseReason.SIGNAL,
) -> ExecutionReport:
    """Close (or reduce by ``fraction``) the exchange's positions on ``sides`` with reduce-only market orders,
    and confirm on the exchange that they are gone before returning (a reverse opens only after that)."""
    client = client_for(account)
    client.clock_check()
    hedged = is_hedged(account)
    report = ExecutionReport()
    open_positions = [p for p in client.positions(signal.symbol) if p.side in sides]
    for position in open_positions:
        qty = position.qty if fraction >= 1 else position.qty * fraction
        if fraction < 1 and qty_step is not None:
            qty = round_amount_down(qty, qty_step)
        if qty <= 0:
            continue
        order = order_for_leg(
            account=account,
            origin_pk=signal.pk,
            leg=f"close_{position.side}",
            signal=signal_of(signal),
            symbol=position.symbol,
            side="sell" if position.side == "long" else "buy",
            position_side=position.side if hedged else Order.PositionSideChoice.BOTH,
            order_type=Order.Type.MARKET,
            purpose=Order.Purpose.CLOSE,
            qty=qty,
            reduce_only=True,
        )
        if order.status == OS.NEW:
            order_submit(order=order, client=client, hedged=hedged, actor=actor)
        _await_final(order, client)
        if order.status != OS.FILLED:
            raise ExecutionFailed(f"close of {position.side} {position.symbol} is {order.status} on BingX, not filled")
        report.orders.append(order)
        report.filled_qty += order.filled_qty
        report.realized_pnl += order_realized_recorded(order)
        if qty >= position.qty:
            _protective_cancel(account=account, symbol=position.symbol, side=position.side, client=client, actor=actor)
    positions_sync(account=account, symbol=signal.symbol, client=client, reason=reason, actor=actor)
    still_open = [p for p in client.positions(signal.symbol) if p.side in sides] if fraction >= 1 else []
    if report.orders and still_open:
        raise ExecutionFailed(
            f"BingX still shows {', '.join(f'{p.side} {p.qty}' for p in still_open)} {signal.symbol} after the close"
        )
    balance_sync(account=account, client=client)
    report.summary = (
        f"closed {decimal_text(report.filled_qty)} {signal.symbol} on BingX, "
        f"realized {decimal_text(report.realized_pnl)} USDT"
        if report.orders
        else f"no open {'/'.join(sides)} position on {signal.symbol} to close"
    )
    return report


def _protective_cancel(*, account: TradingAccount, symbol: str, side: str, client: BingXClient, actor: Actor) -> int:
    closing_side = "sell" if side == "long" else "buy"
    orders = Order.objects.filter(
        account=account, symbol=symbol, reduce_only=True, side=closing_side, status__in=OPEN_STATUSES
    ).exclude(purpose=Order.Purpose.CLOSE)
    for order in orders:
        order_cancel(order=order, client=client, actor=actor, reason="position closed")
    return len(orders)


def order_cancel(*, order: Order, client: BingXClient, actor: Actor, reason: str) -> None:
    """Cancel on BingX, then record what BingX says the order is (it may have filled meanwhile)."""
    if order.status == OS.NEW:  # never sent
        order_transition(order=order, to=OS.CANCELED, actor=actor, reason=reason)
        return
    try:
        state = client.cancel_order(
            order.symbol, exchange_order_id=order.exchange_order_id or None, client_order_id=order.client_order_id
        )
    except ExchangeRejected as error:  # gone already (filled, cancelled by BingX with the position, unknown)
        logger.info("cancel %s: %s; reading its state", order.client_order_id, error)
        state = _state_of(order, client)
        if state is None:
            order_transition(order=order, to=OS.CANCELED, actor=actor, reason=f"{reason}; not on BingX")
            return
    order_apply(order=order, state=state, actor=actor)
    if order.status == OS.CANCELED and reason:
        audit_record(actor=actor, action="order.cancel_reason", instance=order, reason=reason)


def _state_of(order: Order, client: BingXClient) -> ExchangeOrder | None:
    if order.exchange_order_id:
        try:
            return client.order(order.symbol, order.exchange_order_id)
        except OrderNotFound:
            return None
    return client.order_by_client_id(order.symbol, order.client_order_id)


def orders_cancel(*, account: TradingAccount, signal, actor: Actor, include_protective: bool) -> ExecutionReport:
    """Cancel resting orders on the signal's symbol; protective SL/TP stay unless asked."""
    client = client_for(account)
    report = ExecutionReport()
    for order in Order.objects.filter(account=account, symbol=signal.symbol, status__in=OPEN_STATUSES):
        if order.reduce_only and not include_protective:
            continue
        order_cancel(order=order, client=client, actor=actor, reason=f"signal {signal.pk}")
        report.orders.append(order)
    report.summary = f"canceled {sum(o.status == OS.CANCELED for o in report.orders)} open order(s) on {signal.symbol}"
    return report


def protective_replace(
    *, account: TradingAccount, signal, side: str, legs: tuple[ProtectiveLeg, ...], actor: Actor
) -> ExecutionReport:
    """Replace the stop-loss / take-profit orders of the ``side`` position with ``legs``."""
    client = client_for(account)
    client.clock_check()
    _protective_cancel(account=account, symbol=signal.symbol, side=side, client=client, actor=actor)
    report = ExecutionReport()
    for leg in legs:
        report.orders.append(
            protective_place(
                account=account,
                origin=signal,
                symbol=signal.symbol,
                side=side,
                leg=leg,
                actor=actor,
                client=client,
                key=f"update_{leg.purpose}",
            )
        )
    placed = sum(order.status not in (OS.REJECTED, OS.NEW) for order in report.orders)
    report.summary = f"{placed} of {len(legs)} stop-loss/take-profit order(s) set on BingX for {signal.symbol} {side}"
    return report


def order_place_manual(
    *,
    account: TradingAccount,
    symbol: str,
    side: str,
    qty: Decimal,
    order_type: str,
    actor: Actor,
    price: Decimal | None = None,
    reduce_only: bool = False,
    reference: str,
) -> Order:
    """One order placed by hand (``manage.py place_order``), through the same idempotent path as signals.

    ``reference`` makes the client order id: the same reference never places twice.
    """
    client = client_for(account)
    client.clock_check()
    hedged = is_hedged(account)
    position = ("long" if side == "sell" else "short") if reduce_only else ("long" if side == "buy" else "short")
    order = order_for_leg(
        account=account,
        origin_pk=f"manual-{reference}",
        leg="order",
        symbol=symbol,
        side=side,
        position_side=position if hedged else Order.PositionSideChoice.BOTH,
        order_type=order_type,
        purpose=Order.Purpose.CLOSE if reduce_only else Order.Purpose.ENTRY,
        qty=qty,
        price=price if order_type == "limit" else None,
        reduce_only=reduce_only,
    )
    if order.status == OS.NEW:
        order_submit(order=order, client=client, hedged=hedged, actor=actor)
    if order_type == "market":
        _await_final(order, client)
    positions_sync(account=account, symbol=symbol, client=client, actor=actor)
    return order


# --- the exchange as the truth ---------------------------------------------------------------------


def positions_sync(
    *,
    account: TradingAccount,
    symbol: str | None = None,
    client: BingXClient | None = None,
    reason: str = Position.CloseReason.RECONCILIATION,
    actor: Actor = EXCHANGE,
) -> list[Position]:
    """Make the open positions in the database (of ``symbol``, or all) match BingX's.

    A position BingX no longer has is closed with ``reason`` and the realized PnL of its closing fills.
    """
    client = client or client_for(account)
    result = _positions_match(
        account=account,
        on_exchange=client.positions(symbol),
        symbols=None if symbol is None else {symbol},
        reason_of=lambda _: reason,
        actor=actor,
    )
    publish("positions.updated", None, account_id=account.pk, account=account.name, symbol=symbol or "")
    return list(result.values())


def positions_sync_symbols(
    *, account: TradingAccount, reasons: dict[str, str], client: BingXClient, actor: Actor = EXCHANGE
) -> dict[tuple[str, str], Position]:
    """``positions_sync`` for several symbols with one read of BingX: each symbol's position that is gone
    is closed with that symbol's reason. Returns the open positions of those symbols by (symbol, side)."""
    symbols = set(reasons)
    on_exchange = [state for state in client.positions(None) if state.symbol in symbols]
    result = _positions_match(
        account=account, on_exchange=on_exchange, symbols=symbols, reason_of=reasons.__getitem__, actor=actor
    )
    publish("positions.updated", None, account_id=account.pk, account=account.name, symbol=",".join(sorted(symbols)))
    return result


def _positions_match(
    *, account: TradingAccount, on_exchange, symbols: set[str] | None, reason_of, actor: Actor
) -> dict[tuple[str, str], Position]:
    on_exchange = {(p.symbol, p.side): p for p in on_exchange}
    now = timezone.now()
    result = {}
    with transaction.atomic():
        account_positions_lock(account)
        ours = Position.objects.select_for_update().filter(account=account, status=Position.Status.OPEN)
        if symbols is not None:
            ours = ours.filter(symbol__in=symbols)
        known = {}
        for position in ours:
            known[(position.symbol, position.side)] = position
            if (position.symbol, position.side) not in on_exchange:
                position_close_recorded(position=position, reason=reason_of(position.symbol), actor=actor)
        held = [position for key, position in known.items() if key in on_exchange]
        realized = positions_realized_pnl(account, held)
        for key, state in on_exchange.items():
            fields = position_fields(account, state)
            position = known.get(key)
            if position is None:
                position = position_open_or_update(
                    account=account, symbol=state.symbol, side=state.side, fields=fields, opened_at=now
                )
            else:
                fields["realized_pnl"] = realized[position.pk]
                changed = [name for name, value in fields.items() if getattr(position, name) != value]
                for name in changed:  # unchanged rows are not written: the stream reads back every 2 s
                    setattr(position, name, fields[name])
                if changed:
                    position.save(update_fields=[*changed, "updated_at"])
            result[key] = position
    return result


def position_open_or_update(
    *, account: TradingAccount, symbol: str, side: str, fields: dict, opened_at, create_only: dict | None = None
) -> Position:
    """Record the open position BingX reports, creating it unless another writer just did.

    The stream and the poller/resync can both learn of a new position at the same moment; the unique
    constraint on open positions lets one create it, and the other then updates that row.
    """
    try:
        with transaction.atomic():  # a savepoint: the losing insert must not spoil the caller's transaction
            return Position.objects.create(
                account=account, symbol=symbol, side=side, opened_at=opened_at, **(create_only or {}), **fields
            )
    except IntegrityError:
        position = Position.objects.select_for_update().get(
            account=account, symbol=symbol, side=side, status=Position.Status.OPEN
        )
        for name, value in fields.items():
            setattr(position, name, value)
        position.save(update_fields=[*fields, "updated_at"])
        return position


def position_close_recorded(*, position: Position, reason: str, actor: Actor = EXCHANGE) -> bool:
    """Close ``position`` (gone on BingX) with ``reason`` and the realized PnL of its closing fills, and
    announce it (``positions.closed``, after commit). Closing a closed position does nothing."""
    realized = position_realized_pnl(position)
    if not position_close(position=position, reason=reason, actor=actor, realized_pnl=realized):
        return False
    position_closed_announce(position=position, reason=reason, realized_pnl=realized)
    return True


def position_closed_announce(*, position: Position, reason: str, realized_pnl: Decimal) -> None:
    """``positions.closed`` (after commit) for a position closed on BingX, with its cause and realized PnL."""
    publish(
        "positions.closed",
        None,
        account_id=position.account_id,
        position_id=position.pk,
        symbol=position.symbol,
        side=position.side,
        cause=reason,
        realized_pnl=str(realized_pnl),
    )


def position_fields(account: TradingAccount, state: ExchangePosition) -> dict[str, object]:
    """A Position's fields as BingX reports them (entry price kept to the database's 8 decimals)."""
    return {
        "qty": state.qty,
        "entry_price": state.entry_price.quantize(Decimal("0.00000001")),
        "mark_price": state.mark_price,
        "unrealized_pnl": state.unrealized_pnl,
        "leverage": state.leverage or account.default_leverage,
        "margin_mode": state.margin_mode,
        "liquidation_price": state.liquidation_price,
    }


def position_realized_pnl(position: Position) -> Decimal:
    """Realized PnL of the fills on the closing side of this position since it opened (fees not deducted):
    our reduce-only closes, its stop loss and take profits, and orders placed by hand on BingX alike (the
    rule is ``realizes_for``'s, which the stream's bursts use too)."""
    return positions_realized_pnl(position.account, [position])[position.pk]


def positions_realized_pnl(account: TradingAccount, positions: list[Position]) -> dict[int, Decimal]:
    """``position_realized_pnl`` of several open positions of an account, by pk, with one query."""
    if not positions:
        return {}
    stored = closing_fills_stored(account, positions)
    return {
        position.pk: sum((row.realized_pnl for row in stored if row.realizes_for(position)), ZERO)
        for position in positions
    }


def closes_part_of(position: Position, symbol: str, side: str, executed_at) -> bool:
    """Whether a fill (its order's symbol and side, its time) is on ``position``'s closing side since it
    opened: what its close cause is told by (``position_realized_pnl`` also wants its position side)."""
    closing_side = "sell" if position.side == "long" else "buy"
    return symbol == position.symbol and side == closing_side and executed_at >= position.opened_at


def realizes_for(position: Position, position_side: str) -> bool:
    """Whether a fill that closes part of ``position`` counts in its realized PnL (its order's position side
    is the position's, or both in one-way mode): the rule of ``position_realized_pnl``."""
    return position_side in (position.side, Order.PositionSideChoice.BOTH)


@dataclass(frozen=True)
class StoredFill:
    """A stored fill as a close reads it, with what its order tells."""

    trade_id: str
    realized_pnl: Decimal
    executed_at: datetime
    symbol: str
    side: str
    position_side: str
    reduce_only: bool
    close_reason: str  # what its order tells of a close it made (``close_reason_for``)

    def closes_part_of(self, position: Position) -> bool:
        return closes_part_of(position, self.symbol, self.side, self.executed_at)

    def realizes_for(self, position: Position) -> bool:
        return self.closes_part_of(position) and realizes_for(position, self.position_side)


def closing_fills_stored(account: TradingAccount, positions: list[Position]) -> list[StoredFill]:
    """The stored fills that may have closed part of ``positions`` (their symbols, since the first opened),
    oldest first, with what their orders tell of a close: one query for all of them."""
    rows = closing_fills(
        account.pk,
        {position.symbol for position in positions},
        min(position.opened_at for position in positions),
    )
    stored = []
    for *columns, purpose, order_type, signal_id, action in rows:
        action = (action or "") if signal_id is not None else None
        reason = close_reason_of(purpose=purpose, order_type=order_type, signal_action=action)
        stored.append(StoredFill(*columns, close_reason=reason))
    return stored


def balance_record(*, account: TradingAccount, balance: ExchangeBalance) -> BalanceSnapshot:
    """A BalanceSnapshot of what BingX reported."""
    return BalanceSnapshot.objects.create(
        account=account,
        asset=balance.asset,
        equity=balance.equity,
        available=balance.available,
        wallet_balance=balance.wallet_balance,
        unrealized_pnl=balance.unrealized_pnl,
        used_margin=balance.used_margin,
        taken_at=timezone.now(),
    )


def balance_sync(*, account: TradingAccount, client: BingXClient | None = None) -> BalanceSnapshot:
    client = client or client_for(account)
    snapshot = balance_record(account=account, balance=client.balance())
    publish("balances.updated", None, account_id=account.pk, account=account.name)
    return snapshot


# --- watching resting orders (until the stream does it) -------------------------------------------


def orders_poll(*, account: TradingAccount, actor: Actor = EXCHANGE) -> int:
    """Check the account's resting and unknown orders on BingX; act on what changed. Returns how many changed.

    A filled entry gets its protection; a filled stop loss or take profit closes the position with that
    cause; an ``unknown`` order is looked up by client id (absent: it never reached BingX, ``rejected``).
    """
    client = client_for(account)
    changed = 0
    stale = timezone.now() - timedelta(seconds=STALE_NEW_SECONDS)
    pending = Order.objects.filter(account=account, status__in=OPEN_STATUSES).exclude(
        status=OS.NEW, created_at__gt=stale
    )
    for order in pending:
        before = (order.status, order.filled_qty)
        try:
            state = _state_of(order, client)
        except ExchangeError as error:
            logger.warning("poll: %s not readable now: %s", order.client_order_id, error)
            continue
        if state is None:
            if order.status in (OS.UNKNOWN, OS.NEW):
                order_transition(
                    order=order, to=OS.REJECTED, actor=actor, reason="never reached BingX (not found by client id)"
                )
                changed += 1
            continue
        order_apply(order=order, state=state, actor=actor)
        if (order.status, order.filled_qty) == before:
            continue
        changed += 1
        if order.status == OS.FILLED:
            order_filled_follow_up(order, client, actor)
    return changed


def order_filled_follow_up(order: Order, client: BingXClient, actor: Actor, *, close_reason: str | None = None) -> None:
    """What a newly filled order of ours sets off (whoever saw the fill: the poller, the resync or the stream):
    an entry gets its protection; a stop loss or take profit closes the position with that cause; any other
    reduce-only order (a close, one placed by hand on BingX, a liquidation) closes it with ``close_reason``
    or the cause read from the order (``close_reason_for``)."""
    orders_filled_follow_up(account=order.account, filled=[(order, close_reason)], client=client, actor=actor)


def orders_filled_follow_up(
    *, account: TradingAccount, filled: list[tuple[Order, str | None]], client: BingXClient, actor: Actor
) -> None:
    """``order_filled_follow_up`` for several fills of one account at once: each entry's protection first,
    in fill order (``orders_filled_protect``); then one read of BingX for all of them (``follow_up_read_back``).
    """
    read_back = orders_filled_protect(filled=filled, client=client, actor=actor)
    follow_up_read_back(account=account, read_back=read_back, client=client, actor=actor)


@dataclass
class FollowUpReadBack:
    """What fills leave to read back from BingX once their entries are protected. Several fills' needs
    merge into one read (``merge``): the stream's follow-up thread reads back at most every so often."""

    placed: list[Order] = field(default_factory=list)  # protective orders placed (their status read back)
    reasons: dict[str, str] = field(default_factory=dict)  # symbol -> why its position closed, if it did
    closed_sides: dict[str, set[str]] = field(default_factory=dict)  # symbol -> sides closing fills reduced
    protective_hits: list[tuple[Order, str, str]] = field(default_factory=list)  # (order, side, reason)

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def merge(self, later: FollowUpReadBack) -> FollowUpReadBack:
        self.placed += later.placed
        self.reasons.update(later.reasons)  # a later close's cause wins, as it would in one call
        for symbol, sides in later.closed_sides.items():
            self.closed_sides.setdefault(symbol, set()).update(sides)
        self.protective_hits += later.protective_hits
        return self


def orders_filled_protect(
    *, filled: list[tuple[Order, str | None]], client: BingXClient, actor: Actor
) -> FollowUpReadBack:
    """Each filled entry's protection, placed now, in fill order; returns what to read back for them all."""
    read_back = FollowUpReadBack()
    for order, close_reason in filled:
        if order.purpose == Order.Purpose.ENTRY and not order.reduce_only and close_reason is None:
            read_back.placed += entry_protect(entry=order, client=client, actor=actor)
            read_back.reasons.setdefault(order.symbol, Position.CloseReason.RECONCILIATION)
        elif order.purpose in PROTECTIVE_PURPOSES or order.reduce_only or close_reason:
            side = "long" if order.side == "sell" else "short"
            reason = close_reason or close_reason_for(order)
            read_back.reasons[order.symbol] = reason
            read_back.closed_sides.setdefault(order.symbol, set()).add(side)
            if order.purpose in PROTECTIVE_PURPOSES:
                read_back.protective_hits.append((order, side, reason))
    return read_back


def protection_cancel_where_closed(
    *, account: TradingAccount, read_back: FollowUpReadBack, client: BingXClient, actor: Actor
) -> None:
    """Cancel the remaining stop loss and take profits of the positions the fills closed, where our record
    (the stream's) already has them closed: at once, without waiting for the read-back, which does it for
    the others once BingX's positions say so."""
    closed = {(symbol, side) for symbol, sides in read_back.closed_sides.items() for side in sides}
    # One query: mostly, the fills left no protection to cancel.
    protected = open_protection_sides(account.pk, read_back.closed_sides, OPEN_STATUSES)
    sides_of = {(symbol, "long" if closing_side == "sell" else "short") for symbol, closing_side in protected}
    for symbol, side in sorted(closed & sides_of):
        still_open = Position.objects.filter(account=account, symbol=symbol, side=side, status=Position.Status.OPEN)
        if not still_open.exists():
            _protective_cancel(account=account, symbol=symbol, side=side, client=client, actor=actor)


def follow_up_read_back(
    *, account: TradingAccount, read_back: FollowUpReadBack, client: BingXClient, actor: Actor
) -> None:
    """One read of BingX's positions for the symbols concerned (a position gone is closed with the cause of
    the last close seen on it, its remaining stop loss and take profits are cancelled), one read-back of the
    new protective orders per symbol, and one balance snapshot."""
    if not read_back:
        return
    reasons, closed_sides = read_back.reasons, read_back.closed_sides
    try:
        held = positions_sync_symbols(account=account, reasons=reasons, client=client, actor=actor)
    except ExchangeError as error:
        if closed_sides:  # a close's cause and the cancel of its siblings need the read: the caller handles it
            raise
        held = None  # after entries only: the poller, the stream and the resync read the positions again
        logger.warning("positions of %s not read after the entries: %s", account.name, error)
    for symbol, sides in closed_sides.items():  # with closes, ``held`` was read (or we raised above)
        for side in sides:
            if (symbol, side) not in held:
                _protective_cancel(account=account, symbol=symbol, side=side, client=client, actor=actor)
    by_symbol: dict[str, list[Order]] = {}
    for order in read_back.placed:
        by_symbol.setdefault(order.symbol, []).append(order)
    for orders in by_symbol.values():
        _read_back(orders, client)
    try:
        balance_sync(account=account, client=client)
    except ExchangeError as error:
        if closed_sides:
            raise
        logger.warning("balance of %s not read after the entries: %s", account.name, error)
    protective_hits_announce(account=account, read_back=read_back)


def protective_hits_announce(*, account: TradingAccount, read_back: FollowUpReadBack) -> None:
    """``positions.stop_loss`` / ``positions.take_profit`` / ... for the protective orders that filled (once:
    they are taken off ``read_back``)."""
    hits, read_back.protective_hits = read_back.protective_hits, []
    for order, side, reason in hits:
        _alert(f"positions.{reason}", account, f"{order.purpose} filled on {order.symbol} {side}")


def close_reason_for(order: Order) -> str:
    """Why a position closed when ``order`` (reduce-only) closed it."""
    action = (getattr(order.signal, "action", "") or "") if order.signal_id is not None else None
    return close_reason_of(purpose=order.purpose, order_type=order.order_type, signal_action=action)


def close_reason_of(*, purpose: str, order_type: str, signal_action: str | None) -> str:
    """``close_reason_for`` from the order's columns (``signal_action``: None when it has no signal)."""
    reasons = Position.CloseReason
    if purpose == Order.Purpose.STOP_LOSS:
        return reasons.STOP_LOSS
    if purpose.startswith("take_profit"):
        return reasons.TAKE_PROFIT
    if purpose == Order.Purpose.TRAILING:
        return reasons.TRAILING
    if order_type == LIQUIDATION_ORDER_TYPE:
        return reasons.LIQUIDATION
    if purpose == Order.Purpose.CLOSE and signal_action is not None:
        return reasons.REVERSE if signal_action == "reverse" else reasons.SIGNAL
    return reasons.MANUAL


def exchange_accounts():
    return TradingAccount.objects.filter(is_active=True, mode__in=(TradingMode.LIVE, TradingMode.DEMO))


def orders_poll_all() -> int:
    """``orders_poll`` for every live/demo account with something resting or unknown (Celery beat)."""
    changed = 0
    for account in exchange_accounts().filter(orders__status__in=OPEN_STATUSES).distinct():
        try:
            changed += orders_poll(account=account)
        except ExchangeError as error:
            logger.warning("poll of %s skipped: %s", account.name, error)
    return changed


def clock_sync_all() -> int:
    """Measure the offset to BingX's clock for each endpoint in use; alert when it cannot be read."""
    measured = {}
    for account in exchange_accounts():
        try:
            client = client_for(account)
        except ExchangeError:  # no keys: nothing to trade with, nothing to stamp
            continue
        root = client.endpoints.rest_root
        if root in measured:
            continue
        try:
            measured[root] = client.clock_measure()
        except ExchangeError as error:
            logger.error("clock: BingX's time unreadable at %s: %s", root, error)
            _alert("alerts.clock_skew", account, f"cannot read BingX's clock: {error}")
    return len(measured)


# --- account health ------------------------------------------------------------------------------


def account_health_set(*, account_id: int, degraded: bool, reason: str) -> None:
    """The breaker's listener: mark the account degraded (or healthy again), audited, with an alert."""
    status = "degraded" if degraded else "ok"
    with transaction.atomic():
        account = TradingAccount.objects.select_for_update().filter(pk=account_id).first()
        if account is None or account.exchange_health == status:
            return
        before = {"exchange_health": account.exchange_health}
        account.exchange_health, account.exchange_health_reason = status, reason
        account.exchange_health_changed_at = timezone.now()
        account.save(update_fields=["exchange_health", "exchange_health_reason", "exchange_health_changed_at"])
        audit_record(
            actor=EXCHANGE,
            action="tradingaccount.exchange_health",
            instance=account,
            before=before,
            after={"exchange_health": status},
            reason=reason,
        )
    topic = "alerts.circuit_open" if degraded else "alerts.circuit_closed"
    transaction.on_commit(lambda: _alert(topic, account, reason))


breaker_listen(
    lambda account_id, opened, reason: account_health_set(account_id=account_id, degraded=opened, reason=reason)
)
