"""From the audit trail to the outbox: each committed change worth telling becomes one Notification per
recipient, written in the same transaction as the cursor's move (see the package docstring).

What is told, from which audit action:
- ``signal.status`` -> awaiting_confirmation: the approval card (traders, admins; viewers get its text
  without buttons); -> executing straight from validated: the new signal with its risk decision (auto-trade);
  -> rejected: the reason; -> failed: the error.
- ``order.status`` -> submitted/open (not for market orders, which fill at once): placed; -> filled
  (entries, closes, stop loss and take profit hits); -> rejected: the reason.
- ``position.status`` -> closed: the cause and the realized PnL.
- ``tradingaccount.exchange_health``: the circuit breaker opened or closed.
- ``tradingaccount.kill_switch`` / ``.trading_enabled``: the kill switch, and who flipped it.
- ``alert.<topic>`` (``signals_app.events.alert_record``): stream down/back, clock skew, risk limit hit
  (daily loss, drawdown), protection not placed, flatten failed, fill follow-up failed, an order's
  outcome unknown.

And one warning not tied to a single change, from the balance snapshots every balance update writes
(``pnl_swings_notify``): an unusual PnL swing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from signals_app.models import Signal
from telegram_bot.cards import signal_card_view
from telegram_bot.models import Notification, NotificationCursor, TelegramUser
from telegram_bot.notifications import texts
from telegram_bot.notifications.outbox import APPROVER_ROLES, notification_recipients
from trading.models import AuditEvent, BalanceSnapshot, Order, Position, TradingAccount

logger = logging.getLogger(__name__)

K = Notification.Kind
CURSOR_NAME = "audit"
# How long an audit id skipped by the cursor is looked for again: longer than any transaction that writes
# audit rows runs. On a first start (no cursor yet) the fan-out also begins this far back.
GAP_WINDOW = timedelta(minutes=10)
MAX_GAPS = 10_000
BATCH = 500
ACTIONS = (
    "signal.status",
    "order.status",
    "position.status",
    "tradingaccount.exchange_health",
    "tradingaccount.kill_switch",
    "tradingaccount.trading_enabled",
)
ALERT_PREFIX = "alert."


class _Queue:
    """Writes the notifications of one fan-out run; recipients are read once per (kind, roles)."""

    def __init__(self) -> None:
        self.recipients: dict[tuple, list[TelegramUser]] = {}
        self.rows = 0

    def add(self, *, kind: str, key: str, text: str, roles=None, reply_markup=None, signal=None) -> None:
        cache_key = (kind, tuple(roles) if roles is not None else None)
        if cache_key not in self.recipients:
            self.recipients[cache_key] = notification_recipients(kind=kind, roles=roles)
        rows = [
            Notification(
                telegram_user=user,
                chat_id=user.telegram_id,
                kind=kind,
                dedupe_key=key,
                text=text,
                reply_markup=reply_markup,
                signal=signal,
            )
            for user in self.recipients[cache_key]
        ]
        if rows:
            Notification.objects.bulk_create(rows, ignore_conflicts=True)  # a re-read event adds nothing
            self.rows += len(rows)


def notifications_fanout(*, batch: int = BATCH) -> int:
    """Queue the notifications of audit rows committed since the last run; returns how many rows were read."""
    now = timezone.now()
    idle = NotificationCursor.objects.filter(name=CURSOR_NAME, pending_gaps={}).values_list("last_audit_id").first()
    if idle is not None and not AuditEvent.objects.filter(pk__gt=idle[0]).exists():
        return 0  # nothing new and nothing to look for again: no transaction, no lock
    with transaction.atomic():
        cursor = _cursor_locked(now)
        gaps: dict[int, str] = {int(pk): seen for pk, seen in (cursor.pending_gaps or {}).items()}
        new_ids = list(
            AuditEvent.objects.filter(pk__gt=cursor.last_audit_id).order_by("pk").values_list("pk", flat=True)[:batch]
        )
        late_ids = list(AuditEvent.objects.filter(pk__in=list(gaps)).values_list("pk", flat=True)) if gaps else []
        expected = cursor.last_audit_id + 1
        for pk in new_ids:
            for missing in range(max(expected, pk - MAX_GAPS), pk):  # not committed yet, or rolled back
                gaps[missing] = now.isoformat()
            expected = pk + 1
        for pk in late_ids:
            gaps.pop(pk, None)
        horizon = (now - GAP_WINDOW).isoformat()
        gaps = {pk: seen for pk, seen in gaps.items() if seen > horizon}
        if len(gaps) > MAX_GAPS:
            gaps = dict(sorted(gaps.items())[-MAX_GAPS:])
        read = sorted(set(new_ids) | set(late_ids))
        _events_notify(read)
        stored_gaps = {str(pk): seen for pk, seen in gaps.items()}
        if new_ids or stored_gaps != cursor.pending_gaps:  # an idle run writes nothing
            cursor.last_audit_id = new_ids[-1] if new_ids else cursor.last_audit_id
            cursor.pending_gaps = stored_gaps
            cursor.save(update_fields=["last_audit_id", "pending_gaps", "updated_at"])
    return len(read)


def _cursor_locked(now: datetime) -> NotificationCursor:
    cursor = NotificationCursor.objects.select_for_update().filter(name=CURSOR_NAME).first()
    if cursor is not None:
        return cursor
    # First run: begin with what happened in the last GAP_WINDOW, not with the whole history.
    older = AuditEvent.objects.filter(created_at__lt=now - GAP_WINDOW).aggregate(last=Max("pk"))["last"] or 0
    NotificationCursor.objects.get_or_create(name=CURSOR_NAME, defaults={"last_audit_id": older})
    return NotificationCursor.objects.select_for_update().get(name=CURSOR_NAME)


def _events_notify(pks: list[int]) -> None:
    if not pks:
        return
    events = AuditEvent.objects.filter(Q(action__in=ACTIONS) | Q(action__startswith=ALERT_PREFIX), pk__in=pks)
    queue = _Queue()
    for event in events.order_by("pk"):
        handler = _handler_of(event.action)
        try:
            with transaction.atomic():  # a savepoint: one event that cannot be told never blocks the others
                handler(event, queue)
        except Exception:
            logger.exception("notification for audit event %s (%s) not queued", event.pk, event.action)


def _handler_of(action: str) -> Callable[[AuditEvent, _Queue], None]:
    if action.startswith(ALERT_PREFIX):
        return _alert
    return {
        "signal.status": _signal_status,
        "order.status": _order_status,
        "position.status": _position_status,
        "tradingaccount.exchange_health": _exchange_health,
        "tradingaccount.kill_switch": _kill_switch,
        "tradingaccount.trading_enabled": _kill_switch,
    }[action]


def _signal_status(event: AuditEvent, queue: _Queue) -> None:
    status, before = event.after.get("status"), event.before.get("status")
    signal = Signal.objects.select_related("account").filter(pk=event.object_id).first()
    if signal is None:
        return
    key = f"signal:{signal.pk}"
    if status == Signal.Status.AWAITING_CONFIRMATION:
        if signal.status != Signal.Status.AWAITING_CONFIRMATION:
            return  # approved, rejected or expired before it could be shown: its outcome is told instead
        view = signal_card_view(signal)
        queue.add(
            kind=K.SIGNAL_CARD,
            key=f"{key}:card",
            text=view.text,
            reply_markup=view.reply_markup(),
            signal=signal,
            roles=APPROVER_ROLES,
        )
        queue.add(
            kind=K.SIGNAL_RECEIVED,
            key=f"{key}:received",
            text=texts.signal_waiting_text(signal),
            signal=signal,
            roles=[TelegramUser.Role.VIEWER],
        )
    elif status == Signal.Status.EXECUTING and before == Signal.Status.VALIDATED:
        queue.add(kind=K.SIGNAL_RECEIVED, key=f"{key}:received", text=texts.signal_auto_text(signal), signal=signal)
    elif status == Signal.Status.REJECTED:
        text = texts.signal_rejected_text(signal, event.reason)
        queue.add(kind=K.SIGNAL_REJECTED, key=f"{key}:rejected", text=text, signal=signal)
    elif status == Signal.Status.FAILED:
        text = texts.signal_failed_text(signal, event.reason)
        queue.add(kind=K.SIGNAL_FAILED, key=f"{key}:failed", text=text, signal=signal)


def _order_status(event: AuditEvent, queue: _Queue) -> None:
    status = event.after.get("status")
    if status not in (Order.Status.SUBMITTED, Order.Status.OPEN, Order.Status.FILLED, Order.Status.REJECTED):
        return
    order = Order.objects.select_related("account", "signal").filter(pk=event.object_id).first()
    if order is None:
        return
    key = f"order:{order.pk}"
    signal = order.signal
    if status in (Order.Status.SUBMITTED, Order.Status.OPEN):
        if order.order_type != Order.Type.MARKET:  # a market order's fill follows at once: told then
            queue.add(kind=K.ORDER_PLACED, key=f"{key}:placed", text=texts.order_placed_text(order), signal=signal)
    elif status == Order.Status.FILLED:
        queue.add(kind=K.ORDER_FILLED, key=f"{key}:filled", text=texts.order_filled_text(order), signal=signal)
    else:
        text = texts.order_failed_text(order, event.reason)
        queue.add(kind=K.ORDER_FAILED, key=f"{key}:rejected", text=text, signal=signal)


def _position_status(event: AuditEvent, queue: _Queue) -> None:
    if event.after.get("status") != Position.Status.CLOSED:
        return
    position = Position.objects.select_related("account").filter(pk=event.object_id).first()
    if position is not None:
        text = texts.position_closed_text(position)
        queue.add(kind=K.POSITION_CLOSED, key=f"position:{position.pk}:closed", text=text)


def _exchange_health(event: AuditEvent, queue: _Queue) -> None:
    status = str(event.after.get("exchange_health") or "")
    account = TradingAccount.objects.filter(pk=event.object_id).first()
    text = texts.circuit_text(status, event.reason, account, event.object_id)
    queue.add(kind=K.ALERT, key=f"audit:{event.pk}", text=text)


def _kill_switch(event: AuditEvent, queue: _Queue) -> None:
    account = TradingAccount.objects.filter(pk=event.object_id).first()
    by = event.actor_label or event.actor_id
    text = texts.kill_switch_text(event.action, account, event.object_id, by=by, reason=event.reason)
    queue.add(kind=K.ALERT, key=f"audit:{event.pk}", text=text)


def _alert(event: AuditEvent, queue: _Queue) -> None:
    topic = event.action[len(ALERT_PREFIX) :]
    details = dict(event.after or {})
    account_id = details.get("account_id")
    account = TradingAccount.objects.filter(pk=account_id).first() if account_id else None
    queue.add(kind=K.ALERT, key=f"audit:{event.pk}", text=texts.alert_text(topic, details, account))


def pnl_swings_notify(*, now: datetime | None = None) -> int:
    """Warn (notify_risk) when an account's unrealized PnL moved by TELEGRAM_PNL_SWING_PCT % of its equity or
    more within the last TELEGRAM_PNL_SWING_MINUTES: the newest balance snapshot against the highest and the
    lowest unrealized PnL of the window. At most one warning per account per window (its dedupe key names
    the window), so a swing that lasts is told once. Returns how many accounts swung.

    Derived from BalanceSnapshot rows (committed with each balance update), so a crash loses nothing that
    is still in the window; a swing that happened entirely while the bot was down longer is not told.
    """
    percent = settings.TELEGRAM_PNL_SWING_PCT
    if not percent:
        return 0
    now = now or timezone.now()
    window = timedelta(minutes=settings.TELEGRAM_PNL_SWING_MINUTES)
    recent = BalanceSnapshot.objects.filter(taken_at__gte=now - window, taken_at__lte=now)
    extremes = recent.order_by().values("account_id").annotate(high=Max("unrealized_pnl"), low=Min("unrealized_pnl"))
    swung = 0
    queue = _Queue()
    for row in extremes:
        latest = recent.filter(account_id=row["account_id"]).select_related("account").order_by("-taken_at").first()
        if latest is None or latest.equity <= 0:
            continue
        start = (
            row["high"]
            if abs(latest.unrealized_pnl - row["high"]) >= abs(latest.unrealized_pnl - row["low"])
            else row["low"]
        )
        move = latest.unrealized_pnl - start
        if abs(move) * 100 < percent * latest.equity:
            continue
        bucket = int(latest.taken_at.timestamp() // window.total_seconds())
        text = texts.pnl_swing_text(latest, start=start, move=move, minutes=settings.TELEGRAM_PNL_SWING_MINUTES)
        with transaction.atomic():
            queue.add(kind=K.ALERT, key=f"pnl_swing:{latest.account_id}:{bucket}", text=text)
        swung += 1
    return swung
