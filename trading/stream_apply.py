"""Applying a burst of user-data stream events to the database in a few statements (``trading.stream``).

A burst (the events the reader had queued, in BingX's order) is applied in one transaction, and its writes
are set-based: one query locks every order the burst names, one reads the account's open positions, and the
new fills, changed orders, audit rows and changed positions are written together at the end. The rules are
the ones the REST poller and the resync use (``order_advance`` is ``order_apply``'s rule; positions follow
what BingX reports), so the stream records the same fills and statuses they would.

Positions are kept in memory through the burst too. One opened is inserted with the burst's other writes
(after the rows the burst closed, so the one-open-position constraint sees the old one closed), however
often it changed. A close takes its cause and realized PnL from the fills the burst itself recorded; only a
position opened before the burst also reads its earlier fills (one query).

What stays row by row, because it is rare and needs the database as it is: an order placed outside the
platform (recorded on first sight), a gap in an order's trades (its state re-read over REST). The pending
writes are flushed before each.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from signals_app.events import publish
from trading.audit import Actor, audit_record
from trading.burst_sql import (
    burst_rows_locked,
    rows_insert,
    rows_update,
    writes_pipelined,
)
from trading.exchange.client import client_for
from trading.exchange.errors import ExchangeError
from trading.exchange.stream import AccountUpdate, OrderUpdate
from trading.execution import (
    LIQUIDATION_ORDER_TYPE,
    close_reason_for,
    closes_part_of,
    closing_fills_stored,
    order_advance,
    order_realized_recorded,
    position_closed_announce,
    realizes_for,
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


@dataclass(frozen=True)
class AccountWatermark:
    """The newest ACCOUNT_UPDATE applied (BingX's event time) and the digests of the last few: an update
    older than it, or one of them again, is not applied (``StreamState`` keeps it across restarts)."""

    event_ms: int
    digests: tuple[str, ...]

    def admits(self, event_ms: int, digest: str) -> bool:
        return event_ms >= self.event_ms and digest not in self.digests

    def after(self, event_ms: int, digest: str) -> AccountWatermark:
        return AccountWatermark(event_ms, (*self.digests, digest)[-RECENT_DIGESTS:])


@dataclass
class BurstOutcome:
    """What a burst leaves to do after its commit: the follow-ups of orders it filled (in order), what it
    announces (positions changed, the wallet of its balance snapshot), and the account watermark it left."""

    follow_ups: list[tuple[Order, str | None]] = field(default_factory=list)
    positions_changed: bool = False
    wallet: AccountUpdate | None = None
    watermark: AccountWatermark | None = None


class BurstWriter:
    """One burst's pending writes. Use inside the burst's transaction: ``order_event`` / ``account_event``
    per event in order, then ``finish``.

    - ``watermark``: the account watermark as the caller (``StreamMemory``) holds it. The caller then keeps
      and writes it (``outcome.watermark``); without one it is read from ``StreamState`` (locked) and saved
      with the burst.
    - ``leverages``: where the symbol profiles' leverages are read (a cache); ``symbol_leverages`` without.
    - ``careful``: check that each new fill is not stored yet. Fills are derived under their order's lock
      from its recorded quantity, so a stored one cannot come again; a burst that fails on one anyway is
      applied again carefully (``stream_events_apply``).
    """

    def __init__(
        self,
        account: TradingAccount,
        outcome: BurstOutcome,
        *,
        watermark: AccountWatermark | None = None,
        leverages: Callable[[TradingAccount], dict[str, int]] | None = None,
        careful: bool = True,
    ) -> None:
        self.account = account
        self.outcome = outcome
        self.watermark = watermark
        self.watermark_kept = watermark is not None  # by the caller: not saved here
        self.careful = careful
        self.orders: dict[str, Order] = {}  # exchange id and client id -> our locked row
        self.fills: list[tuple[Fill, dict[str, Any]]] = []  # new fills and their orders.executed payloads
        self.burst_fills: list[tuple[Fill, Order]] = []  # every fill of this burst, in order (flushed or not)
        self.fills_stored_before: set[int] = set()  # ids of burst_fills found stored already (not this burst's)
        self.dirty_orders: dict[int, tuple[Order, set[str]]] = {}
        self.events: list[AuditEvent] = []
        self._positions: dict[tuple[str, str], Position] | None = None
        self.dirty_positions: dict[int, tuple[Position, set[str]]] = {}
        self.new_positions: list[Position] = []  # opened in this burst, not inserted yet
        self.unsaved_events: list[tuple[AuditEvent, Position]] = []  # audit rows of positions not inserted yet
        self.closes: list[tuple[Position, str, Decimal]] = []  # announced once written (their ids known)
        self.closing: list[tuple[Position, int]] = []  # opened before the burst, closed in it: (row, fills seen)
        self._leverages_read = leverages or symbol_leverages
        self._leverages: dict[str, int] | None = None
        self._stream_state: StreamState | None = None

    # --- orders ----------------------------------------------------------------------------------------

    def rows_lock(self, updates: list[OrderUpdate]) -> None:
        """Lock the account, every order of ours the burst's order events name, and the account's open
        positions, in that order and in one round trip (``burst_rows_locked``)."""
        exchange_ids = {u.order.exchange_order_id for u in updates if u.order.exchange_order_id}
        client_ids = {u.order.client_order_id for u in updates if u.order.client_order_id}
        orders, positions = burst_rows_locked(self.account.pk, exchange_ids, client_ids)
        for order in orders:
            self._know(order)
        self._positions_know(positions)

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
        created = order_external_record(account=self.account, update=update, open_positions=self._open_positions())
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
            self.burst_fills.append((fill, order))
        if order.status == OS.FILLED and before != OS.FILLED:
            close_reason = Position.CloseReason.LIQUIDATION if update.is_liquidation else None
            self.outcome.follow_ups.append((order, close_reason))
        if order.exchange_order_id and f"x:{order.exchange_order_id}" not in self.orders:
            self._know(order)

    def _realized_recorded(self, order: Order) -> Decimal:
        self.flush_fills()
        return order_realized_recorded(order)

    # --- account updates -------------------------------------------------------------------------------

    def account_event(self, update: AccountUpdate, digest: str | None = None) -> bool:
        """An ACCOUNT_UPDATE: positions follow it (one reported at 0 is closed with its cause); its wallet is
        kept for the burst's one balance snapshot. False for an event older than, or the same as, the last.
        ``digest``: its ``account_update_digest``, when the caller has it already."""
        mark = self._watermark()
        digest = digest or account_update_digest(update)
        if not mark.admits(update.event_ms, digest):
            return False
        self.watermark = mark.after(update.event_ms, digest)
        for reported in update.positions:
            if self._position_follow(reported):
                self.outcome.positions_changed = True
        if any(balance.asset == SETTLE for balance in update.balances):
            self.outcome.wallet = update
        return True

    def _watermark(self) -> AccountWatermark:
        if self.watermark is None:
            self._stream_state, _ = StreamState.objects.select_for_update().get_or_create(account=self.account)
            state = self._stream_state
            self.watermark = AccountWatermark(state.account_event_ms, tuple(state.account_event_digests))
        return self.watermark

    def _open_positions(self) -> dict[tuple[str, str], Position]:
        if self._positions is None:
            raise RuntimeError("BurstWriter.rows_lock must come first: it reads the open positions")
        return self._positions

    def _positions_know(self, positions: list[Position]) -> None:
        self._positions = {}
        for position in positions:
            position.account = self.account  # their audit rows name it (``str``): no query each
            self._positions[(position.symbol, position.side)] = position

    def _position_follow(self, reported) -> bool:
        positions = self._open_positions()
        key = (reported.symbol, reported.side)
        position = positions.get(key)
        if reported.qty == 0:
            if position is None:
                return False
            del positions[key]
            return self._position_close(position)
        fields = {
            "qty": reported.qty,
            "entry_price": reported.entry_price,
            "unrealized_pnl": reported.unrealized_pnl,
            "margin_mode": reported.margin_mode,
        }
        if position is None:
            position = Position(
                account=self.account,
                symbol=reported.symbol,
                side=reported.side,
                opened_at=timezone.now(),
                leverage=self._leverage(reported.symbol),
                **fields,
            )
            positions[key] = position
            self.new_positions.append(position)
            return True
        if all(getattr(position, name) == value for name, value in fields.items()):
            return False
        for name, value in fields.items():
            setattr(position, name, value)
        self._position_dirty(position, POSITION_FIELDS)
        return True

    def _leverage(self, symbol: str) -> int:
        """A new position's leverage until BingX's is read back: its symbol profile's, else the account's."""
        if self._leverages is None:
            self._leverages = self._leverages_read(self.account)
        return self._leverages.get(symbol) or self.account.default_leverage

    def _position_dirty(self, position: Position, fields) -> None:
        position.updated_at = timezone.now()
        if position.pk is None:  # inserted with the burst's writes, as it is by then
            return
        _, dirty = self.dirty_positions.setdefault(position.pk, (position, set()))
        dirty.update(fields)
        dirty.add("updated_at")

    def _position_close(self, position: Position) -> bool:
        """Closed on BingX, with the cause and realized PnL its closing fills tell (``close_facts``). One
        opened in this burst is closed now; one opened before it at the flush, together with the others (one
        read of their earlier fills)."""
        if position.pk is None:
            reason, realized = self.close_facts(position, len(self.burst_fills), earlier=())
            self._close_stage(position, reason, realized)
        else:
            self.closing.append((position, len(self.burst_fills)))
        return True

    def _closes_stage(self) -> None:
        """Close the positions opened before this burst that it saw closed."""
        if not self.closing:
            return
        earlier = closing_fills_stored(self.account, [position for position, _ in self.closing])
        for position, seen in self.closing:
            reason, realized = self.close_facts(position, seen, earlier=earlier)
            self._close_stage(position, reason, realized)
        self.closing = []

    def _close_stage(self, position: Position, reason: str, realized: Decimal) -> None:
        staged = transition_stage(
            position,
            to=Position.Status.CLOSED,
            table=POSITION_TRANSITIONS,
            actor=STREAM,
            reason=reason,
            changes=position_close_changes(reason=reason, realized_pnl=realized),
        )
        if staged is None:
            return
        self._position_dirty(position, staged.fields)
        self.events.append(staged.event)
        if position.pk is None:
            self.unsaved_events.append((staged.event, position))
        self.closes.append((position, reason, realized))

    def close_facts(self, position: Position, seen: int, *, earlier) -> tuple[str, Decimal]:
        """Why ``position`` closed and its realized PnL, by the rules of ``position_realized_pnl`` and the
        resync: from the fills on its closing side since it opened. The PnL counts those on its position side
        (or both); the order of the last reduce-only one tells the cause (none: reconciliation).

        Those fills are the burst's first ``seen`` (the ones before it closed), and for a position opened
        before the burst the ones stored before (``earlier``: ``closing_fills_stored``; the burst's own, once
        flushed, skipped by trade id)."""
        burst = [
            (fill, order)
            for fill, order in self.burst_fills[:seen]
            if id(fill) not in self.fills_stored_before
            and closes_part_of(position, order.symbol, order.side, fill.executed_at)
        ]
        in_burst = {fill.exchange_trade_id for fill, _ in burst}
        realized, reason = ZERO, Position.CloseReason.RECONCILIATION
        for row in earlier:
            if row.trade_id in in_burst or not row.closes_part_of(position):
                continue
            if row.realizes_for(position):
                realized += row.realized_pnl
            if row.reduce_only:
                reason = row.close_reason
        for fill, order in burst:
            if realizes_for(position, order.position_side):
                realized += fill.realized_pnl
            if order.reduce_only:
                reason = close_reason_for(order)
        return reason, realized

    # --- writing -----------------------------------------------------------------------------------------

    def flush_fills(self) -> None:
        """Write the new fills (before a gap's REST check, which reads the order's recorded fills)."""
        if not self.fills:
            return
        stored = set()
        if self.careful:
            keys = [fill.exchange_trade_id for fill, _ in self.fills]
            stored = set(Fill.objects.filter(exchange_trade_id__in=keys).values_list("exchange_trade_id", flat=True))
        new, known = [], set()
        for fill, payload in self.fills:
            if fill.exchange_trade_id in stored:
                known.add(id(fill))
                continue
            stored.add(fill.exchange_trade_id)
            new.append(fill)
            publish("orders.executed", payload.pop("signal"), **payload)
        rows_insert(Fill, new)
        self.fills = []
        self.fills_stored_before |= known  # not this burst's: a close counts them from the database, once

    def flush(self) -> None:
        """Write what is pending: new fills, changed orders, changed positions (closes first), new positions,
        then the audit rows; then announce the closes (after commit)."""
        self._closes_stage()
        self.flush_fills()
        rows_update(Order, self.dirty_orders.values())
        self.dirty_orders = {}
        rows_update(Position, self.dirty_positions.values())
        self.dirty_positions = {}
        if self.new_positions:
            positions_insert(self.new_positions, careful=self.careful)
            self.new_positions = []
        for event, position in self.unsaved_events:
            event.object_id, event.object_repr = str(position.pk), str(position)[:200]
        self.unsaved_events = []
        if self.events:
            rows_insert(AuditEvent, self.events)
            self.events = []
        for position, reason, realized in self.closes:
            position_closed_announce(position=position, reason=reason, realized_pnl=realized)
        self.closes = []

    def finish(self) -> BalanceSnapshot | None:
        """Flush and take the burst's balance snapshot (the last wallet pushed), their writes sent together
        (``writes_pipelined``; not when careful: that path reads and uses savepoints), then save the stream
        state when this burst read it."""
        self._closes_stage()  # reads: before the writes are sent together
        with writes_pipelined(enabled=not self.careful):
            self.flush()
            wallet = self.outcome.wallet
            snapshot = balance_from_wallet(self.account, wallet, self._open_positions().values()) if wallet else None
        self.outcome.watermark = self.watermark
        if self._stream_state is not None and not self.watermark_kept:
            self._stream_state.account_event_ms = self.watermark.event_ms
            self._stream_state.account_event_digests = list(self.watermark.digests)
            self._stream_state.save(update_fields=["account_event_ms", "account_event_digests", "updated_at"])
        return snapshot


def positions_insert(positions: list[Position], *, careful: bool = True) -> None:
    """Insert the positions a burst opened, as they are at its end (some closed already).

    Every writer of an account's positions holds its lock (``account_positions_lock``), so none can have
    recorded one of these meanwhile: a burst inserts them as they are. ``careful`` (a burst applied again
    after a failure): an insert refused all the same brings the row another writer recorded to what BingX
    reported instead."""
    if not careful:
        rows_insert(Position, positions, returning=True)
        return
    try:
        with transaction.atomic():  # a savepoint: a refused insert must not spoil the burst
            rows_insert(Position, positions, returning=True)
        return
    except IntegrityError:
        logger.warning("stream: an open position was recorded by another writer meanwhile; updating it")
    for position in positions:
        position.pk = None
        try:
            with transaction.atomic():
                position.save(force_insert=True)
        except IntegrityError:
            existing = Position.objects.select_for_update().get(
                account=position.account, symbol=position.symbol, side=position.side, status=Position.Status.OPEN
            )
            position.pk, position.opened_at = existing.pk, existing.opened_at
            position._state.adding = False
            position.save()


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


def symbol_leverages(account: TradingAccount) -> dict[str, int]:
    """The leverage of each of the account's symbol profiles, by symbol."""
    return dict(SymbolProfile.objects.filter(account=account).values_list("symbol", "leverage"))


def account_update_digest(update: AccountUpdate) -> str:
    seen = repr((update.event_ms, update.reason, update.balances, update.positions))
    return hashlib.sha256(seen.encode()).hexdigest()


def order_external_record(
    *, account: TradingAccount, update: OrderUpdate, open_positions: dict[tuple[str, str], Position] | None = None
) -> Order | None:
    """Our row for an order placed outside the platform (BingX's app, a liquidation), created on first sight
    so its fills are never lost; None when the event carries no quantity to record. ``open_positions``: the
    account's open positions by (symbol, side) as the caller holds them (a burst's, written or not); read
    from the database when not given."""
    state = update.order
    existing = Order.objects.filter(account=account, exchange_order_id=state.exchange_order_id).first()
    if existing is not None:
        return existing
    qty = max(state.qty or ZERO, state.filled_qty)
    if qty <= 0:
        logger.warning("stream: order %s has no quantity; not recorded", state.exchange_order_id)
        return None
    reduce_only = state.reduce_only or _reduces(account, state, open_positions)
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


def _reduces(account: TradingAccount, state, open_positions) -> bool:
    """Whether an order that does not say so reduces a position: in hedge mode its position side tells
    (a sell on LONG closes it); in one-way mode, whether it is against the position we hold."""
    if state.position_side in ("long", "short"):
        return (state.side == "sell") == (state.position_side == "long")
    held = "long" if state.side == "sell" else "short"
    if open_positions is not None:
        return (state.symbol, held) in open_positions
    return Position.objects.filter(
        account=account, symbol=state.symbol, side=held, status=Position.Status.OPEN
    ).exists()


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
    snapshot = BalanceSnapshot(
        account=account,
        asset=SETTLE,
        equity=equity,
        available=max(min(row.cross_wallet_balance, equity - used), ZERO).quantize(Decimal("0.00000001")),
        wallet_balance=row.wallet_balance,
        unrealized_pnl=unrealized,
        used_margin=used.quantize(Decimal("0.00000001")),
        taken_at=timezone.now(),
    )
    rows_insert(BalanceSnapshot, [snapshot])
    return snapshot
