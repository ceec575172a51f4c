"""Reconciliation: compare one live/demo account's database rows with BingX, and make them agree.

BingX is the truth. ``resync_account`` reads it once (positions, open orders, the order history since the
last resync, the balance: four requests, plus one lookup per open row of ours BingX listed nowhere), lists
every difference, and with ``apply`` corrects each through the audited paths that already exist
(``order_apply``, ``order_transition``, ``position_close``), adding one ``resync.<kind>`` audit event per
correction with the before and after. What it cannot put right safely (an order final in our books but not
on BingX's) is listed for a person and left alone.

Kinds of difference:
- ``order``: status or exchange id of one of our orders differs (moved forward by ``order_apply``);
- ``fill``: BingX executed more of an order than our fills record (recorded by ``order_apply``);
- ``order_absent``: our open/unknown order is nowhere on BingX (rejected if it never got there, else canceled);
- ``order_missing``: an order on BingX we never saw, e.g. placed by hand in BingX's app (recorded as
  "x<exchange id>", no signal; orders that ended without any fill are not recorded);
- ``position``: qty, entry price, leverage or margin mode of an open position differ;
- ``position_gone``: open in our books, gone on BingX (closed, reason reconciliation, with its realized PnL);
- ``position_missing``: open on BingX, not in our books (created);
- ``balance``: equity or available margin differ from the last snapshot (a new snapshot).

Rows touched by someone else while the resync ran (an entry in flight, the poller) are left to the next run,
so a resync never undoes newer work with its older reading. One resync per account runs at a time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from trading.audit import Actor, audit_record
from trading.exchange.client import BingXClient, client_for
from trading.exchange.errors import ExchangeError, NotConfigured, OrderNotFound
from trading.exchange.types import ExchangeBalance, ExchangeOrder, ExchangePosition
from trading.execution import (
    OPEN_STATUSES,
    STALE_NEW_SECONDS,
    balance_record,
    exchange_accounts,
    order_apply,
    order_filled_follow_up,
    position_fields,
    position_realized_pnl,
)
from trading.models import BalanceSnapshot, Fill, Order, Position, TradingAccount, TradingMode
from trading.precision import decimal_text
from trading.rules import ORDER_TRANSITIONS
from trading.services import account_positions_lock, order_transition, position_close

logger = logging.getLogger(__name__)

OS = Order.Status
ZERO = Decimal("0")
PLACES = Decimal("0.00000001")  # what the database keeps (8 decimals)
FINAL_STATUSES = (OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED)
# How far back the order history is read on the first resync (no open rows, no earlier resync known) and at
# most (BingX keeps a week of history); and how much each later read overlaps the one before.
FIRST_LOOKBACK = timedelta(days=1)
MAX_LOOKBACK = timedelta(days=7)
OVERLAP = timedelta(minutes=10)
# A balance change smaller than this (USDT) is not worth a snapshot.
BALANCE_TOLERANCE = Decimal("0.01")
LOCK_SECONDS = 300
LOCK_WAIT_SECONDS = 10

Progress = Callable[[str, int, int], None]


class ResyncBusy(Exception):
    """Another resync of the same account is running."""


@dataclass(frozen=True)
class Difference:
    kind: str
    object: str
    field: str
    database: object
    exchange: object
    action: str


@dataclass
class ResyncReport:
    account: str
    applied: bool
    differences: list[Difference] = field(default_factory=list)
    corrections: int = 0
    seconds: float = 0.0


@dataclass
class _Correction:
    """The differences of one object, and how to put them right; ``fix`` returns False when it found
    nothing left to do (someone else corrected it meanwhile)."""

    differences: list[Difference]
    fix: Callable[[], bool] | None


@dataclass(frozen=True)
class _Exchange:
    positions: dict[tuple[str, str], ExchangePosition]
    orders: dict[str, ExchangeOrder]  # by exchange order id: open ones and the recent history
    open_ids: frozenset[str]
    balance: ExchangeBalance


def resync_account(
    *, account: TradingAccount, apply: bool, actor: Actor, progress: Progress | None = None
) -> ResyncReport:
    """Compare ``account`` with BingX; with ``apply``, make the database match. Raises ``ExchangeError``
    when BingX cannot be read (nothing is changed then), ``ResyncBusy`` when a resync of it is running."""
    if account.mode not in (TradingMode.LIVE, TradingMode.DEMO):
        raise NotConfigured(f"account {account.name} is in {account.mode} mode: nothing on BingX to compare")
    tick = progress or (lambda stage, done, total: None)
    begun = time.monotonic()
    with _account_lock(account):
        client = client_for(account)
        started = timezone.now()
        exchange = _exchange_read(account, client, tick)
        context = _Context(account=account, client=client, actor=actor, started=started, apply=apply)
        plan = _orders_compare(context, exchange, tick)
        plan += _positions_compare(context, exchange)
        plan += _balance_compare(context, exchange.balance)
        report = ResyncReport(account=account.name, applied=apply)
        for number, correction in enumerate(plan, start=1):
            done = None
            if apply and correction.fix is not None:
                done = correction.fix()
                report.corrections += bool(done)
            for difference in correction.differences:
                if done is False:
                    difference = replace(difference, action=f"{difference.action}: already done, skipped")
                report.differences.append(difference)
            tick("correcting" if apply else "comparing", number, len(plan))
        if apply:
            cache.set(_last_key(account), started.timestamp(), timeout=None)
    report.seconds = time.monotonic() - begun
    return report


def resync_all(*, actor: Actor | None = None) -> int:
    """``resync_account`` with ``apply`` for every active live/demo account with keys (Celery beat).
    Returns the number of corrections; an account BingX cannot be reached for is logged and skipped."""
    actor = actor or Actor.system("resync")
    corrections = 0
    for account in exchange_accounts():
        if not account.has_api_credentials:
            continue
        try:
            report = resync_account(account=account, apply=True, actor=actor)
        except (ExchangeError, ResyncBusy) as error:
            logger.warning("resync of %s skipped: %s", account.name, error)
            continue
        corrections += report.corrections
        if report.differences:
            logger.info("resync of %s: %s correction(s)", account.name, report.corrections)
    return corrections


# --- plumbing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    account: TradingAccount
    client: BingXClient
    actor: Actor
    started: datetime
    apply: bool


def _last_key(account: TradingAccount) -> str:
    return f"trading:resync:last:{account.pk}"


class _account_lock:  # noqa: N801 - used as a context manager
    def __init__(self, account: TradingAccount) -> None:
        self.key = f"trading:resync:lock:{account.pk}"
        self.name = account.name

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not cache.add(self.key, 1, timeout=LOCK_SECONDS):
            if time.monotonic() >= deadline:
                raise ResyncBusy(f"a resync of {self.name} is already running")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        cache.delete(self.key)


def _history_since(account: TradingAccount) -> datetime:
    now = timezone.now()
    last = cache.get(_last_key(account))
    if last is not None:
        since = datetime.fromtimestamp(last, tz=now.tzinfo) - OVERLAP
    else:
        oldest = (
            Order.objects.filter(account=account, status__in=OPEN_STATUSES)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        since = min(oldest - OVERLAP, now - FIRST_LOOKBACK) if oldest else now - FIRST_LOOKBACK
    return max(since, now - MAX_LOOKBACK)


def _exchange_read(account: TradingAccount, client: BingXClient, tick: Progress) -> _Exchange:
    tick("reading BingX", 0, 4)
    positions = {(p.symbol, p.side): p for p in client.positions()}
    tick("reading BingX", 1, 4)
    open_orders = client.open_orders()
    tick("reading BingX", 2, 4)
    history = client.recent_orders(since_ms=int(_history_since(account).timestamp() * 1000))
    tick("reading BingX", 3, 4)
    balance = client.balance()
    tick("reading BingX", 4, 4)
    orders: dict[str, ExchangeOrder] = {}
    for state in [*history, *open_orders]:
        seen = orders.get(state.exchange_order_id)
        if seen is None or (state.updated_ms or 0) >= (seen.updated_ms or 0):
            orders[state.exchange_order_id] = state
    return _Exchange(
        positions=positions,
        orders=orders,
        open_ids=frozenset(state.exchange_order_id for state in open_orders),
        balance=balance,
    )


def _text(value) -> object:
    """Decimals as plain text without trailing zeros (for the table and the audit trail)."""
    if isinstance(value, Decimal):
        return decimal_text(value) if value else "0"
    return value


def _q(value: Decimal | None) -> Decimal | None:
    return value.quantize(PLACES) if value is not None else None


# --- orders and fills ------------------------------------------------------------------------------------


def _in_flight(order: Order, context: _Context) -> bool:
    """A row its sender may still be working on: leave it to the sender (and the poller)."""
    young = context.started - timedelta(seconds=STALE_NEW_SECONDS)
    return order.status in (OS.NEW, OS.UNKNOWN) and order.updated_at > young


def _orders_compare(context: _Context, exchange: _Exchange, tick: Progress) -> list[_Correction]:
    account = context.account
    states = exchange.orders
    client_ids = {state.client_order_id for state in states.values() if state.client_order_id}
    ours = (
        Order.objects.filter(account=account)
        .filter(Q(exchange_order_id__in=list(states)) | Q(client_order_id__in=client_ids) | Q(status__in=OPEN_STATUSES))
        .annotate(fills_qty=Sum("fills__qty"))
    )
    by_exchange_id = {order.exchange_order_id: order for order in ours if order.exchange_order_id}
    by_client_id = {order.client_order_id: order for order in ours}
    plan: list[_Correction] = []
    matched: set[int] = set()
    for state in states.values():
        order = by_exchange_id.get(state.exchange_order_id) or by_client_id.get(state.client_order_id or "-")
        if order is None:
            order = by_client_id.get(_manual_client_id(state))
        if order is None:
            if state.filled_qty > 0 or not state.is_final:
                plan.append(_order_missing(context, state))
            continue
        matched.add(order.pk)
        if _in_flight(order, context):
            continue
        correction = _order_compare(context, order, state)
        if correction:
            plan.append(correction)
    unseen = [o for o in ours if o.status in OPEN_STATUSES and o.pk not in matched and not _in_flight(o, context)]
    for number, order in enumerate(unseen, start=1):
        tick("looking up orders", number - 1, len(unseen))
        state = _look_up(order, context.client)
        if state is None:
            plan.append(_order_absent(context, order))
            continue
        correction = _order_compare(context, order, state)
        if correction:
            plan.append(correction)
    if unseen:
        tick("looking up orders", len(unseen), len(unseen))
    return plan


def _look_up(order: Order, client: BingXClient) -> ExchangeOrder | None:
    if order.exchange_order_id:
        try:
            return client.order(order.symbol, order.exchange_order_id)
        except OrderNotFound:
            return None
    return client.order_by_client_id(order.symbol, order.client_order_id)


def _manual_client_id(state: ExchangeOrder) -> str:
    return f"x{state.exchange_order_id}".lower()


def _order_view(order: Order) -> dict[str, object]:
    fills = order.fills.aggregate(qty=Sum("qty"))["qty"] or ZERO
    return {
        "status": order.status,
        "exchange_order_id": order.exchange_order_id,
        "filled_qty": _text(order.filled_qty),
        "average_price": _text(order.average_price),
        "fees": _text(order.fees),
        "fills_qty": _text(fills),
    }


def _status_reachable(current: str, target: str) -> bool:
    """Whether ``order_apply`` can move ``current`` forward to ``target``."""
    if current == OS.NEW:
        return target == OS.SUBMITTED or target in ORDER_TRANSITIONS[OS.SUBMITTED]
    return target in ORDER_TRANSITIONS.get(current, frozenset())


def _order_compare(context: _Context, order: Order, state: ExchangeOrder) -> _Correction | None:
    label = order.client_order_id
    executed = min(state.filled_qty, order.qty)
    fills_qty = getattr(order, "fills_qty", None)
    if fills_qty is None:
        fills_qty = order.fills.aggregate(qty=Sum("qty"))["qty"] or ZERO
    differences: list[Difference] = []
    fixable = False
    kind = "order"
    if state.exchange_order_id and order.exchange_order_id != state.exchange_order_id:
        differences.append(
            Difference("order", label, "exchange_order_id", order.exchange_order_id, state.exchange_order_id, "record")
        )
        fixable = True
    if executed > order.filled_qty:
        kind = "fill"
        differences.append(
            Difference("fill", label, "filled_qty", _text(order.filled_qty), _text(executed), "record the fill")
        )
        fixable = True
    elif executed < order.filled_qty:
        differences.append(
            Difference("fill", label, "filled_qty", _text(order.filled_qty), _text(executed), "none: check by hand")
        )
    elif fills_qty < executed:
        kind = "fill"
        differences.append(
            Difference("fill", label, "fills", _text(fills_qty), _text(executed), "record the missing fill")
        )
        fixable = True
    if state.status != order.status and state.status != OS.SUBMITTED:
        if _status_reachable(order.status, state.status):
            differences.append(Difference("order", label, "status", order.status, state.status, "move forward"))
            fixable = True
        else:
            differences.append(Difference("order", label, "status", order.status, state.status, "none: check by hand"))
    if not differences:
        return None
    fix = (lambda: _order_fix(context, order.pk, state, kind)) if fixable else None
    return _Correction(differences, fix)


def _order_fix(context: _Context, order_pk: int, state: ExchangeOrder, kind: str) -> bool:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_pk)
        if order.updated_at > context.started:
            return False  # changed while we read BingX: the next run compares it afresh
        before = _order_view(order)
        if Decimal(before["fills_qty"]) < order.filled_qty:
            _fills_rewind(order)  # so that order_apply records what the lost fill rows held
        order_apply(order=order, state=state, actor=context.actor)
        order.refresh_from_db()
        short = min(state.filled_qty, order.qty) - (order.fills.aggregate(qty=Sum("qty"))["qty"] or ZERO)
        if short > 0:  # a lost fill in the middle: its "<id>:<cumulative>" key cannot be told any more
            Fill.objects.create(
                order=order,
                exchange_trade_id=f"{state.exchange_order_id or order.client_order_id}:resync:{uuid.uuid4().hex[:12]}",
                qty=short,
                price=order.average_price or ZERO,
                executed_at=timezone.now(),
            )
        after = _order_view(order)
        if after == before:
            return False
        audit_record(
            actor=context.actor,
            action=f"resync.{kind}",
            instance=order,
            before=before,
            after=after,
            reason="differed from BingX",
        )
    if before["status"] != OS.FILLED and order.status == OS.FILLED and not order.client_order_id.startswith("x"):
        order_filled_follow_up(order, context.client, context.actor)
    return True


def _fills_rewind(order: Order) -> None:
    """Set the order's filled quantity, average and fees back to what its fill rows hold."""
    fills = list(order.fills.all())
    qty = sum((fill.qty for fill in fills), ZERO)
    order.filled_qty = qty
    order.average_price = _q(sum((fill.qty * fill.price for fill in fills), ZERO) / qty) if qty else None
    order.fees = sum((fill.fee for fill in fills), ZERO)
    order.save(update_fields=["filled_qty", "average_price", "fees", "updated_at"])


def _order_absent(context: _Context, order: Order) -> _Correction:
    never_sent = order.status in (OS.NEW, OS.UNKNOWN)
    target = OS.REJECTED if never_sent else OS.CANCELED
    reason = "never reached BingX (resync)" if never_sent else "not on BingX any more (resync)"
    difference = Difference("order_absent", order.client_order_id, "status", order.status, "(none)", target)

    def fix() -> bool:
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            if locked.updated_at > context.started or locked.status != order.status:
                return False
            order_transition(order=locked, to=target, actor=context.actor, reason=reason)
            audit_record(
                actor=context.actor,
                action="resync.order_absent",
                instance=locked,
                before={"status": order.status},
                after={"status": target},
                reason=reason,
            )
        return True

    return _Correction([difference], fix)


def _order_missing(context: _Context, state: ExchangeOrder) -> _Correction:
    client_order_id = _manual_client_id(state)
    described = f"{state.side} {_text(state.qty or state.filled_qty)} {state.symbol} {state.order_type}"
    difference = Difference(
        "order_missing", client_order_id, "order", "(none)", f"{described} {state.status}", "record"
    )

    def fix() -> bool:
        reduce_only = state.reduce_only
        position_side = state.position_side if state.position_side in Order.PositionSideChoice.values else "both"
        try:
            with transaction.atomic():
                known = Q(client_order_id=client_order_id) | Q(
                    account=context.account, exchange_order_id=state.exchange_order_id
                )
                if Order.objects.filter(known).exists():
                    return False
                order = Order.objects.create(
                    account=context.account,
                    signal=None,
                    client_order_id=client_order_id,
                    exchange_order_id=state.exchange_order_id,
                    symbol=state.symbol,
                    side=state.side,
                    position_side=position_side,
                    order_type=state.order_type[:24],
                    purpose=_purpose_of(state),
                    qty=state.qty or state.filled_qty,
                    price=state.price if state.order_type == Order.Type.LIMIT else None,
                    trigger_price=state.trigger_price,
                    reduce_only=reduce_only,
                )
                order_apply(order=order, state=state, actor=context.actor)
                order.refresh_from_db()
                audit_record(
                    actor=context.actor,
                    action="resync.order_missing",
                    instance=order,
                    after=_order_view(order),
                    reason="on BingX, never seen here (placed by hand?)",
                )
        except IntegrityError:  # recorded meanwhile by a concurrent reader
            return False
        return True

    return _Correction([difference], fix if (state.qty or state.filled_qty) else None)


def _purpose_of(state: ExchangeOrder) -> str:
    if not state.reduce_only:
        return Order.Purpose.ENTRY
    return {
        Order.Type.STOP_MARKET: Order.Purpose.STOP_LOSS,
        Order.Type.TAKE_PROFIT_MARKET: Order.Purpose.TAKE_PROFIT_1,
        Order.Type.TRAILING_STOP_MARKET: Order.Purpose.TRAILING,
    }.get(state.order_type, Order.Purpose.CLOSE)


# --- positions -----------------------------------------------------------------------------------------


COMPARED_POSITION_FIELDS = ("qty", "entry_price", "leverage", "margin_mode")


def _positions_compare(context: _Context, exchange: _Exchange) -> list[_Correction]:
    account = context.account
    plan: list[_Correction] = []
    ours = {(p.symbol, p.side): p for p in Position.objects.filter(account=account, status=Position.Status.OPEN)}
    for key, position in ours.items():
        label = f"{position.symbol} {position.side}"
        state = exchange.positions.get(key)
        if state is None:
            difference = Difference("position_gone", label, "qty", _text(position.qty), "0", "close (reconciliation)")
            plan.append(_Correction([difference], _position_close_fix(context, position.pk)))
            continue
        wanted = position_fields(account, state)
        differences = [
            Difference("position", label, name, _text(getattr(position, name)), _text(wanted[name]), "update")
            for name in COMPARED_POSITION_FIELDS
            if _comparable(getattr(position, name)) != _comparable(wanted[name])
        ]
        if differences:
            plan.append(_Correction(differences, _position_update_fix(context, position.pk, state)))
    for key, state in exchange.positions.items():
        if key not in ours:
            label = f"{state.symbol} {state.side}"
            difference = Difference(
                "position_missing", label, "qty", "(none)", f"{_text(state.qty)} @ {_text(state.entry_price)}", "create"
            )
            plan.append(_Correction([difference], _position_create_fix(context, state)))
    return plan


def _comparable(value):
    return _q(value) if isinstance(value, Decimal) else value


def _position_view(position: Position) -> dict[str, object]:
    return {name: _text(getattr(position, name)) for name in ("status", *COMPARED_POSITION_FIELDS, "realized_pnl")}


def _position_update_fix(context: _Context, position_pk: int, state: ExchangePosition) -> Callable[[], bool]:
    def change(position: Position) -> None:
        fields = position_fields(context.account, state)
        for name, value in fields.items():
            setattr(position, name, value)
        position.save(update_fields=[*fields, "updated_at"])

    return _position_fix(context, position_pk, change, action="resync.position", reason="differed from BingX")


def _position_close_fix(context: _Context, position_pk: int) -> Callable[[], bool]:
    def change(position: Position) -> None:
        position_close(
            position=position,
            reason=Position.CloseReason.RECONCILIATION,
            actor=context.actor,
            realized_pnl=position_realized_pnl(position),
        )
        position.refresh_from_db()

    return _position_fix(context, position_pk, change, action="resync.position_gone", reason="no longer open on BingX")


def _position_fix(
    context: _Context, position_pk: int, change: Callable[[Position], None], *, action: str, reason: str
) -> Callable[[], bool]:
    """A correction of an open position, made under its lock and audited; skipped (False) when the position
    closed or changed since the resync read it."""

    def fix() -> bool:
        with transaction.atomic():
            position = Position.objects.select_for_update().get(pk=position_pk)
            if position.status != Position.Status.OPEN or position.updated_at > context.started:
                return False
            before = _position_view(position)
            change(position)
            audit_record(
                actor=context.actor,
                action=action,
                instance=position,
                before=before,
                after=_position_view(position),
                reason=reason,
            )
        return True

    return fix


def _position_create_fix(context: _Context, state: ExchangePosition) -> Callable[[], bool]:
    def fix() -> bool:
        try:
            with transaction.atomic():
                account_positions_lock(context.account)  # as every writer of its positions: the stream's bursts
                exists = Position.objects.filter(
                    account=context.account, symbol=state.symbol, side=state.side, status=Position.Status.OPEN
                ).exists()
                if exists:
                    return False
                position = Position.objects.create(
                    account=context.account,
                    symbol=state.symbol,
                    side=state.side,
                    opened_at=timezone.now(),
                    **position_fields(context.account, state),
                )
                audit_record(
                    actor=context.actor,
                    action="resync.position_missing",
                    instance=position,
                    after=_position_view(position),
                    reason="open on BingX, not here",
                )
        except IntegrityError:  # opened meanwhile by the executor
            return False
        return True

    return fix


# --- balance -------------------------------------------------------------------------------------------


def _balance_compare(context: _Context, balance: ExchangeBalance) -> list[_Correction]:
    latest = BalanceSnapshot.objects.filter(account=context.account, asset=balance.asset).order_by("-taken_at").first()
    differences = []
    for name in ("equity", "available"):
        ours = getattr(latest, name) if latest else None
        theirs = getattr(balance, name)
        if ours is None or abs(ours - theirs) >= BALANCE_TOLERANCE:
            differences.append(Difference("balance", balance.asset, name, _text(ours), _text(theirs), "new snapshot"))
    if not differences:
        return []

    def fix() -> bool:
        with transaction.atomic():
            snapshot = balance_record(account=context.account, balance=balance)
            if latest is not None and abs(latest.wallet_balance - balance.wallet_balance) < BALANCE_TOLERANCE:
                # Only the price moved (unrealized PnL): a fresh snapshot, not a correction worth an audit row
                # every minute. Money that moved without us seeing it (the wallet balance) is audited.
                return True
            audit_record(
                actor=context.actor,
                action="resync.balance",
                instance=snapshot,
                before={"equity": _text(latest.equity), "available": _text(latest.available)} if latest else {},
                after={"equity": _text(balance.equity), "available": _text(balance.available)},
                reason="differed from BingX",
            )
        return True

    return [_Correction(differences, fix)]
