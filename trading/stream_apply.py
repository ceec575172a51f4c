"""Applying a burst of user-data stream events to the database in a few statements (``trading.stream``).

A burst (the events the reader had queued, in BingX's order) is applied in one transaction, and its writes
are set-based: one query locks every order the burst names, one reads the account's open positions, and the
new fills, changed orders, audit rows and changed positions are written together at the end. The rules are
the ones the REST poller and the resync use (``order_advance`` is ``order_apply``'s rule; positions follow
what BingX reports), so the stream records the same fills and statuses they would.

What stays row by row, because it is rare and needs the database as it is: an order placed outside the
platform (recorded on first sight), a gap in an order's trades (its state re-read over REST), a position
opened or closed (closing reads the fills that closed it). The pending writes are flushed before each.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from signals_app.events import publish
from trading.audit import Actor, audit_record
from trading.exchange.client import client_for
from trading.exchange.errors import ExchangeError
from trading.exchange.stream import AccountUpdate, OrderUpdate
from trading.execution import (
    LIQUIDATION_ORDER_TYPE,
    close_reason_for,
    order_advance,
    order_realized_recorded,
    position_closed_announce,
    position_open_or_update,
    position_realized_pnl,
)
from trading.models import (
    AuditEvent,
    BalanceSnapshot,
    Fill,
    Order,
    Position,
    StreamState,
    SymbolProfile,
    TradingAccount,
)
from trading.rules import POSITION_TRANSITIONS
from trading.services import position_close_changes
from trading.transitions import transition_stage

logger = logging.getLogger(__name__)

STREAM = Actor.system("bingx-stream")
OS = Order.Status
ZERO = Decimal("0")
SETTLE = "USDT"
RECENT_DIGESTS = 50
POSITION_FIELDS = ("qty", "entry_price", "unrealized_pnl", "margin_mode")


@dataclass
class BurstOutcome:
    """What a burst leaves to do after its commit: the follow-ups of orders it filled (in order), and what
    it announces (positions changed, the wallet of its balance snapshot)."""

    follow_ups: list[tuple[Order, str | None]] = field(default_factory=list)
    positions_changed: bool = False
    wallet: AccountUpdate | None = None


class BurstWriter:
    """One burst's pending writes. Use inside the burst's transaction: ``order_event`` / ``account_event``
    per event in order, then ``finish``."""

    def __init__(self, account: TradingAccount, outcome: BurstOutcome) -> None:
        self.account = account
        self.outcome = outcome
        self.orders: dict[str, Order] = {}  # exchange id and client id -> our locked row
        self.fills: list[tuple[Fill, dict[str, Any]]] = []  # new fills and their orders.executed payloads
        self.dirty_orders: dict[int, tuple[Order, set[str]]] = {}
        self.events: list[AuditEvent] = []
        self._positions: dict[tuple[str, str], Position] | None = None
        self.dirty_positions: dict[int, tuple[Position, set[str]]] = {}
        self.closed_unwritten: set[tuple[str, str]] = set()  # positions closed in memory, not written yet
        self._stream_state: StreamState | None = None

    # --- orders ----------------------------------------------------------------------------------------

    def orders_lock(self, updates: list[OrderUpdate]) -> None:
        """Lock, in one query, every order of ours the burst's order events name."""
        exchange_ids = {u.order.exchange_order_id for u in updates if u.order.exchange_order_id}
        client_ids = {u.order.client_order_id for u in updates if u.order.client_order_id}
        if not exchange_ids and not client_ids:
            return
        rows = (
            Order.objects.select_for_update(of=("self",))
            .select_related("signal")
            .filter(account=self.account)
            .filter(Q(exchange_order_id__in=exchange_ids) | Q(client_order_id__in=client_ids))
            .order_by("pk")  # one lock order for every writer
        )
        for order in rows:
            self._know(order)

    def _know(self, order: Order) -> None:
        if order.exchange_order_id:
            self.orders[f"x:{order.exchange_order_id}"] = order
        self.orders[f"c:{order.client_order_id}"] = order

    def _order_of(self, update: OrderUpdate) -> Order | None:
        state = update.order
        order = self.orders.get(f"x:{state.exchange_order_id}") if state.exchange_order_id else None
        if order is None and state.client_order_id:
            order = self.orders.get(f"c:{state.client_order_id}")
        if order is not None or not state.exchange_order_id:
            return order
        created = order_external_record(account=self.account, update=update)
        if created is None:
            return None
        order = Order.objects.select_for_update(of=("self",)).select_related("signal").get(pk=created.pk)
        self._know(order)
        return order

    def order_event(self, update: OrderUpdate) -> None:
        """An ORDER_TRADE_UPDATE: the order moves forward (status, fills), as ``order_apply`` would move it."""
        order = self._order_of(update)
        if order is None:
            return
        state = update.order
        increase = state.filled_qty - order.filled_qty
        if increase > 0 and update.last_qty and increase != update.last_qty:
            # Trades were missed (a gap): this event's rp covers only its own, REST has the order's total.
            self.flush_fills()
            state = _rest_state(order) or state
        before = order.status
        advance = order_advance(
            order,
            state,
            actor=STREAM,
            trade_qty=update.last_qty if state is update.order else None,
            trade_realized_pnl=update.trade_realized_pnl,
            realized_recorded=self._realized_recorded,
        )
        if advance.fields:
            _, fields = self.dirty_orders.setdefault(order.pk, (order, set()))
            fields.update(advance.fields)
        self.events.extend(advance.events)
        if advance.fill is not None:
            fill = advance.fill
            self.fills.append((fill, _executed_payload(self.account, order, fill)))
        if order.status == OS.FILLED and before != OS.FILLED:
            close_reason = Position.CloseReason.LIQUIDATION if update.is_liquidation else None
            self.outcome.follow_ups.append((order, close_reason))
        if order.exchange_order_id and f"x:{order.exchange_order_id}" not in self.orders:
            self._know(order)

    def _realized_recorded(self, order: Order) -> Decimal:
        self.flush_fills()
        return order_realized_recorded(order)

    # --- account updates -------------------------------------------------------------------------------

    def account_event(self, update: AccountUpdate) -> bool:
        """An ACCOUNT_UPDATE: positions follow it (one reported at 0 is closed with its cause); its wallet is
        kept for the burst's one balance snapshot. False for an event older than, or the same as, the last."""
        state = self._state()
        digest = account_update_digest(update)
        if update.event_ms < state.account_event_ms or digest in state.account_event_digests:
            return False
        state.account_event_ms = update.event_ms
        state.account_event_digests = [*state.account_event_digests, digest][-RECENT_DIGESTS:]
        for reported in update.positions:
            if self._position_follow(reported):
                self.outcome.positions_changed = True
        if any(balance.asset == SETTLE for balance in update.balances):
            self.outcome.wallet = update
        return True

    def _state(self) -> StreamState:
        if self._stream_state is None:
            self._stream_state, _ = StreamState.objects.select_for_update().get_or_create(account=self.account)
        return self._stream_state

    def _open_positions(self) -> dict[tuple[str, str], Position]:
        if self._positions is None:
            rows = Position.objects.select_for_update().filter(account=self.account, status=Position.Status.OPEN)
            self._positions = {(p.symbol, p.side): p for p in rows.order_by("pk")}
        return self._positions

    def _position_follow(self, reported) -> bool:
        positions = self._open_positions()
        key = (reported.symbol, reported.side)
        position = positions.get(key)
        if reported.qty == 0:
            if position is None:
                return False
            del positions[key]
            self.closed_unwritten.add(key)
            return self._position_close(position)
        fields = {
            "qty": reported.qty,
            "entry_price": reported.entry_price,
            "unrealized_pnl": reported.unrealized_pnl,
            "margin_mode": reported.margin_mode,
        }
        if position is None:
            if key in self.closed_unwritten:
                self.flush()  # the one-open-position constraint must see the old one closed first
            profile = SymbolProfile.objects.filter(account=self.account, symbol=reported.symbol).first()
            positions[key] = position_open_or_update(
                account=self.account,
                symbol=reported.symbol,
                side=reported.side,
                fields=fields,
                opened_at=timezone.now(),
                create_only={"leverage": profile.leverage if profile else self.account.default_leverage},
            )
            return True
        if all(getattr(position, name) == value for name, value in fields.items()):
            return False
        for name, value in fields.items():
            setattr(position, name, value)
        self._position_dirty(position, POSITION_FIELDS)
        return True

    def _position_dirty(self, position: Position, fields) -> None:
        position.updated_at = timezone.now()
        _, dirty = self.dirty_positions.setdefault(position.pk, (position, set()))
        dirty.update(fields)
        dirty.add("updated_at")

    def _position_close(self, position: Position) -> bool:
        """Closed on BingX: its cause and realized PnL come from the fills that closed it (written first)."""
        self.flush_fills()
        reason = close_cause(position)
        realized = position_realized_pnl(position)
        staged = transition_stage(
            position,
            to=Position.Status.CLOSED,
            table=POSITION_TRANSITIONS,
            actor=STREAM,
            reason=reason,
            changes=position_close_changes(reason=reason, realized_pnl=realized),
        )
        if staged is None:
            return False
        self._position_dirty(position, staged.fields)
        self.events.append(staged.event)
        position_closed_announce(position=position, reason=reason, realized_pnl=realized)
        return True

    # --- writing -----------------------------------------------------------------------------------------

    def flush_fills(self) -> None:
        """Write the new fills (what a close's cause and realized PnL, and a gap's REST check, are read from)."""
        if not self.fills:
            return
        keys = [fill.exchange_trade_id for fill, _ in self.fills]
        stored = set(Fill.objects.filter(exchange_trade_id__in=keys).values_list("exchange_trade_id", flat=True))
        new = []
        for fill, payload in self.fills:
            if fill.exchange_trade_id in stored:
                continue
            stored.add(fill.exchange_trade_id)
            new.append(fill)
            publish("orders.executed", payload.pop("signal"), **payload)
        Fill.objects.bulk_create(new)
        self.fills = []

    def flush(self) -> None:
        """Write what is pending: new fills, changed orders, their audit rows, changed positions."""
        self.flush_fills()
        for order, fields in self.dirty_orders.values():
            _row_update(Order, order, fields)
        self.dirty_orders = {}
        for position, fields in self.dirty_positions.values():
            _row_update(Position, position, fields)
        self.dirty_positions = {}
        self.closed_unwritten.clear()
        if self.events:
            AuditEvent.objects.bulk_create(self.events)
            self.events = []

    def finish(self) -> BalanceSnapshot | None:
        """Flush, save the stream state, and take the burst's balance snapshot (the last wallet pushed)."""
        self.flush()
        if self._stream_state is not None:
            self._stream_state.save(update_fields=["account_event_ms", "account_event_digests", "updated_at"])
        if self.outcome.wallet is None:
            return None
        return balance_from_wallet(self.account, self.outcome.wallet, self._open_positions().values())


def _row_update(model, row, fields) -> None:
    """One UPDATE of the changed fields of a row the burst holds locked. (``bulk_update``'s CASE expressions
    cost more Python than the few rows of a burst save in round trips.)"""
    model.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in fields})


def _executed_payload(account: TradingAccount, order: Order, fill: Fill) -> dict[str, Any]:
    """``orders.executed`` as it stands at this event (published once the fill is known to be new)."""
    return {
        "signal": order.signal,
        "account_id": account.pk,
        "order_id": order.pk,
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "purpose": order.purpose,
        "symbol": order.symbol,
        "side": order.side,
        "fill_qty": str(fill.qty),
        "fill_price": str(fill.price),
        "filled_qty": str(order.filled_qty),
        "order_status": order.status,
        "realized_pnl": str(fill.realized_pnl),
        "source": "stream",
    }


def _rest_state(order: Order):
    try:
        return client_for(order.account).order(order.symbol, order.exchange_order_id)
    except ExchangeError as error:
        logger.warning("stream: %s not readable over REST: %s", order.client_order_id, error)
        return None


def account_update_digest(update: AccountUpdate) -> str:
    seen = repr((update.event_ms, update.reason, update.balances, update.positions))
    return hashlib.sha256(seen.encode()).hexdigest()


def order_external_record(*, account: TradingAccount, update: OrderUpdate) -> Order | None:
    """Our row for an order placed outside the platform (BingX's app, a liquidation), created on first sight
    so its fills are never lost; None when the event carries no quantity to record."""
    state = update.order
    existing = Order.objects.filter(account=account, exchange_order_id=state.exchange_order_id).first()
    if existing is not None:
        return existing
    qty = max(state.qty or ZERO, state.filled_qty)
    if qty <= 0:
        logger.warning("stream: order %s has no quantity; not recorded", state.exchange_order_id)
        return None
    reduce_only = state.reduce_only or _reduces(account, state)
    with transaction.atomic():
        order, created = Order.objects.get_or_create(
            client_order_id=external_client_order_id(state.exchange_order_id),
            defaults={
                "account": account,
                "signal": None,
                "exchange_order_id": state.exchange_order_id,
                "symbol": state.symbol,
                "side": state.side,
                "position_side": state.position_side if state.position_side in ("long", "short") else "both",
                "order_type": LIQUIDATION_ORDER_TYPE if update.is_liquidation else state.order_type,
                "purpose": Order.Purpose.CLOSE if reduce_only else Order.Purpose.ENTRY,
                "qty": qty,
                "price": state.price,
                "trigger_price": state.trigger_price,
                "reduce_only": reduce_only,
            },
        )
        if created:
            audit_record(
                actor=STREAM,
                action="order.external_recorded",
                instance=order,
                after={"exchange_order_id": state.exchange_order_id, "client_order_id": state.client_order_id},
                reason="placed outside TVBingX (BingX app, liquidation); seen on the user-data stream",
            )
    return order


def external_client_order_id(exchange_order_id: str) -> str:
    """The client id we give an order placed outside the platform: "x" + BingX's id (lowercase, <= 40)."""
    return f"x{exchange_order_id}".lower()[:40]


def _reduces(account: TradingAccount, state) -> bool:
    """Whether an order that does not say so reduces a position: in hedge mode its position side tells
    (a sell on LONG closes it); in one-way mode, whether it is against the position we hold."""
    if state.position_side in ("long", "short"):
        return (state.side == "sell") == (state.position_side == "long")
    held = "long" if state.side == "sell" else "short"
    return Position.objects.filter(
        account=account, symbol=state.symbol, side=held, status=Position.Status.OPEN
    ).exists()


def close_cause(position: Position) -> str:
    """The cause of a close we learn from the stream: the last reduce-only fill on the position tells."""
    closing_side = "sell" if position.side == "long" else "buy"
    last = (
        Order.objects.filter(
            account=position.account,
            symbol=position.symbol,
            side=closing_side,
            reduce_only=True,
            fills__executed_at__gte=position.opened_at,
        )
        .select_related("signal")
        .order_by("-fills__executed_at")
        .first()
    )
    return close_reason_for(last) if last is not None else Position.CloseReason.RECONCILIATION


def balance_from_wallet(account: TradingAccount, update: AccountUpdate, open_positions) -> BalanceSnapshot | None:
    """A snapshot from the pushed wallet. BingX pushes the wallet (wb) and cross wallet (cw) only; equity,
    margin in use and available margin are derived from our open positions (the REST snapshot after each
    trade and reconcile gives BingX's exact figures)."""
    row = next((balance for balance in update.balances if balance.asset == SETTLE), None)
    if row is None:
        return None
    unrealized, used = ZERO, ZERO
    for position in open_positions:
        unrealized += position.unrealized_pnl
        used += position.qty * position.entry_price / max(position.leverage, 1)
    equity = row.wallet_balance + unrealized
    return BalanceSnapshot.objects.create(
        account=account,
        asset=SETTLE,
        equity=equity,
        available=max(min(row.cross_wallet_balance, equity - used), ZERO).quantize(Decimal("0.00000001")),
        wallet_balance=row.wallet_balance,
        unrealized_pnl=unrealized,
        used_margin=used.quantize(Decimal("0.00000001")),
        taken_at=timezone.now(),
    )
