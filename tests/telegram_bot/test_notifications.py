"""Notifications, from a committed change to the outbox: who is told what (roles, preferences), nothing
queued for a change that rolled back, nothing queued twice, and no audit row skipped by the cursor."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from signals_app.events import publish
from signals_app.models import Signal
from signals_app.services import signal_transition
from telegram_bot.models import Notification, NotificationCursor
from telegram_bot.notifications.fanout import notifications_fanout, pnl_swings_notify
from telegram_bot.notifications.outbox import notification_enqueue, notification_mark_retry, notifications_claim
from telegram_bot.notifications.texts import RESENT_NOTE
from tests.factories import (
    BalanceSnapshotFactory,
    OrderFactory,
    PositionFactory,
    SignalFactory,
    TelegramAdminFactory,
    TelegramTraderFactory,
    TelegramViewerFactory,
    TradingAccountFactory,
)
from trading.audit import Actor
from trading.execution import account_health_set
from trading.models import AuditEvent, Order
from trading.services import account_set_trading_enabled, order_transition, position_close
from trading.stream import stream_alert_down

pytestmark = pytest.mark.django_db
S = Signal.Status
K = Notification.Kind
NS = Notification.Status
ACTOR = Actor.system("test")


@pytest.fixture
def team():
    """An admin, a trader and a viewer, each accepting every kind; an inactive trader."""
    return {
        "admin": TelegramAdminFactory(),
        "trader": TelegramTraderFactory(),
        "viewer": TelegramViewerFactory(),
        "inactive": TelegramTraderFactory(is_active=False),
    }


def queued(kind: str | None = None) -> dict[int, list[Notification]]:
    """Outbox rows by chat id (of ``kind``)."""
    rows = Notification.objects.order_by("id")
    if kind:
        rows = rows.filter(kind=kind)
    by_chat: dict[int, list[Notification]] = {}
    for row in rows:
        by_chat.setdefault(row.chat_id, []).append(row)
    return by_chat


def awaiting(signal: Signal) -> Signal:
    signal_transition(signal=signal, to=S.VALIDATED, actor=ACTOR)
    signal_transition(signal=signal, to=S.AWAITING_CONFIRMATION, actor=ACTOR)
    return signal


def test_a_signal_awaiting_confirmation_sends_its_card_to_traders_and_admins_and_its_text_to_viewers(team):
    signal = awaiting(SignalFactory())

    notifications_fanout()

    cards = queued(K.SIGNAL_CARD)
    assert set(cards) == {team["admin"].telegram_id, team["trader"].telegram_id}
    card = cards[team["trader"].telegram_id][0]
    assert card.signal == signal
    assert f"sig:ok:{signal.pk}" in str(card.reply_markup)
    viewer_rows = queued()[team["viewer"].telegram_id]
    assert [(row.kind, row.reply_markup) for row in viewer_rows] == [(K.SIGNAL_RECEIVED, None)]
    assert "Awaiting" in viewer_rows[0].text


def test_an_inactive_user_and_a_user_who_turned_a_kind_off_get_nothing_of_it(team):
    muted = TelegramTraderFactory(notify_signals=False)
    awaiting(SignalFactory())

    notifications_fanout()

    assert team["inactive"].telegram_id not in queued()
    assert muted.telegram_id not in queued()


def test_an_automatic_signal_is_told_with_its_risk_decision(team):
    signal = SignalFactory(extras={"plan": {"checks": "passed", "side": "long", "qty": "0.01", "price": "65000"}})
    signal_transition(signal=signal, to=S.VALIDATED, actor=ACTOR)
    signal_transition(signal=signal, to=S.EXECUTING, actor=ACTOR)

    notifications_fanout()

    rows = queued(K.SIGNAL_RECEIVED)
    assert len(rows) == 3
    assert "Risk checks passed" in rows[team["viewer"].telegram_id][0].text


def test_a_rejection_is_told_with_its_reason(team):
    signal = SignalFactory()
    signal_transition(signal=signal, to=S.REJECTED, actor=ACTOR, reason="daily loss limit reached")

    notifications_fanout()

    rows = queued(K.SIGNAL_REJECTED)
    assert set(rows) == {team["admin"].telegram_id, team["trader"].telegram_id, team["viewer"].telegram_id}
    assert "daily loss limit reached" in rows[team["admin"].telegram_id][0].text


def test_orders_placed_filled_and_a_stop_loss_hit_go_to_who_wants_orders(team):
    TelegramTraderFactory(notify_orders=False)
    entry = OrderFactory(order_type=Order.Type.LIMIT, price=Decimal("64000"))
    stop = OrderFactory(order_type="stop_market", purpose="stop_loss", trigger_price=Decimal("60000"), side="sell")
    order_transition(order=entry, to=Order.Status.SUBMITTED, actor=ACTOR)
    order_transition(order=entry, to=Order.Status.FILLED, actor=ACTOR, changes={"filled_qty": entry.qty})
    order_transition(order=stop, to=Order.Status.SUBMITTED, actor=ACTOR)
    order_transition(order=stop, to=Order.Status.FILLED, actor=ACTOR, changes={"filled_qty": stop.qty})

    notifications_fanout()

    rows = queued()
    assert set(rows) == {team["admin"].telegram_id, team["trader"].telegram_id, team["viewer"].telegram_id}
    texts = [row.text for row in rows[team["trader"].telegram_id]]
    assert [row.kind for row in rows[team["trader"].telegram_id]] == [K.ORDER_PLACED, K.ORDER_FILLED] * 2
    assert "Entry filled" in texts[1]
    assert "Stop loss hit" in texts[3]


def test_a_market_order_is_told_once_filled_not_when_placed(team):
    order = OrderFactory(order_type=Order.Type.MARKET)
    order_transition(order=order, to=Order.Status.SUBMITTED, actor=ACTOR)
    order_transition(order=order, to=Order.Status.FILLED, actor=ACTOR, changes={"filled_qty": order.qty})

    notifications_fanout()

    assert [row.kind for row in queued()[team["trader"].telegram_id]] == [K.ORDER_FILLED]


def test_a_closed_position_is_told_with_its_realized_pnl(team):
    position = PositionFactory()
    position_close(position=position, reason="take_profit", actor=ACTOR, realized_pnl=Decimal("12.50"))

    notifications_fanout()

    [row] = queued(K.POSITION_CLOSED)[team["trader"].telegram_id]
    assert "+12.5 USDT" in row.text
    assert "Take profit" in row.text


def test_warnings_go_to_who_wants_risk_alerts(team):
    account = TradingAccountFactory(name="main")
    TelegramAdminFactory(notify_risk=False)
    stream_alert_down(account_id=account.pk, seconds=90, reason="connection reset")
    account_health_set(account_id=account.pk, degraded=True, reason="5 timeouts in a row")
    publish("alerts.clock_skew", None, account_id=account.pk, account=account.name, message="BingX is 3s ahead")
    publish("risk.breach", None, account_id=account.pk, rule="daily_loss", reason="today's loss 51 > 50")

    notifications_fanout()

    rows = queued(K.ALERT)
    assert set(rows) == {team["admin"].telegram_id, team["trader"].telegram_id, team["viewer"].telegram_id}
    texts = [row.text for row in rows[team["viewer"].telegram_id]]
    assert len(texts) == 4
    assert "Stream down" in texts[0] and "connection reset" in texts[0]
    assert "Circuit breaker OPEN" in texts[1]
    assert "Clock skew" in texts[2]
    assert "daily loss limit" in texts[3] and "today's loss 51 &gt; 50" in texts[3]


def test_a_change_that_rolls_back_notifies_nobody(team):
    signal = SignalFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        signal_transition(signal=signal, to=S.REJECTED, actor=ACTOR, reason="rolled back")
        publish("alerts.stream_down", None, account_id=signal.account_id, message="rolled back too")
        raise RuntimeError("the change fails after its audit rows")

    notifications_fanout()

    assert Notification.objects.count() == 0


def test_reading_the_same_events_again_queues_nothing_twice(team):
    signal = SignalFactory()
    signal_transition(signal=signal, to=S.REJECTED, actor=ACTOR, reason="no")
    notifications_fanout()
    NotificationCursor.objects.update(last_audit_id=0)  # as if the cursor had been lost

    notifications_fanout()

    assert Notification.objects.count() == 3


def test_an_audit_row_committed_after_a_later_one_was_read_is_still_told(team):
    """A transaction that took a lower id commits after one with a higher id: the cursor comes back for it."""
    signal = SignalFactory()
    notifications_fanout()
    gap = (AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    AuditEvent(pk=gap + 1, actor_type="system", action="test.committed_first").save(force_insert=True)
    notifications_fanout()  # reads gap + 1 while gap is not committed yet

    # The slower transaction commits: its signal rejected, with the audit row holding the lower id.
    Signal.objects.filter(pk=signal.pk).update(status=S.REJECTED, rejection_reason="late commit")
    AuditEvent(
        pk=gap,
        actor_type="system",
        action="signal.status",
        object_type="signals_app.signal",
        object_id=str(signal.pk),
        before={"status": "received"},
        after={"status": "rejected"},
        reason="late commit",
    ).save(force_insert=True)
    notifications_fanout()

    rows = queued(K.SIGNAL_REJECTED)
    assert set(rows) == {team["admin"].telegram_id, team["trader"].telegram_id, team["viewer"].telegram_id}
    assert "late commit" in rows[team["admin"].telegram_id][0].text
    assert NotificationCursor.objects.get().pending_gaps == {}


def test_a_service_can_queue_a_notification_in_its_own_transaction(team):
    with pytest.raises(RuntimeError), transaction.atomic():
        notification_enqueue(kind=K.REPORT, dedupe_key="report:2026-11-25", text="Daily report")
        raise RuntimeError("rolled back")
    notification_enqueue(kind=K.REPORT, dedupe_key="report:2026-11-24", text="Daily report")
    notification_enqueue(kind=K.REPORT, dedupe_key="report:2026-11-24", text="Daily report")

    assert sorted(queued(K.REPORT)) == sorted(
        [team["admin"].telegram_id, team["trader"].telegram_id, team["viewer"].telegram_id]
    )
    assert Notification.objects.count() == 3


def snapshots(account, *unrealized: str, equity: str = "1000", minutes_apart: int = 2) -> None:
    """Balance snapshots of ``account``, the last one now, each ``minutes_apart`` after the previous."""
    now = timezone.now()
    for index, pnl in enumerate(unrealized):
        taken_at = now - timedelta(minutes=minutes_apart * (len(unrealized) - 1 - index))
        BalanceSnapshotFactory(account=account, equity=Decimal(equity), unrealized_pnl=Decimal(pnl), taken_at=taken_at)


def test_an_unusual_pnl_swing_within_the_window_is_told_once(team, settings):
    settings.TELEGRAM_PNL_SWING_PCT, settings.TELEGRAM_PNL_SWING_MINUTES = Decimal("5"), 15
    account = TradingAccountFactory(name="main")
    snapshots(account, "10", "-5", "-45")  # 55 USDT down within 4 minutes: 5.5 % of 1000

    assert pnl_swings_notify() == 1
    pnl_swings_notify()

    [row] = queued(K.ALERT)[team["viewer"].telegram_id]
    assert "Unusual PnL swing" in row.text
    assert "10 → -45 USDT (-55, 5.5% of equity 1000) within 15 min" in row.text


def test_a_pnl_move_below_the_threshold_or_outside_the_window_is_not_told(team, settings):
    settings.TELEGRAM_PNL_SWING_PCT, settings.TELEGRAM_PNL_SWING_MINUTES = Decimal("5"), 15
    snapshots(TradingAccountFactory(), "10", "-30")  # 4 % of equity
    snapshots(TradingAccountFactory(), "100", "0", minutes_apart=20)  # 10 %, but over 20 minutes

    assert pnl_swings_notify() == 0
    assert Notification.objects.count() == 0


def test_an_idle_fanout_writes_nothing(team):
    notifications_fanout()
    cursor = NotificationCursor.objects.get()

    assert notifications_fanout() == 0
    assert NotificationCursor.objects.get().updated_at == cursor.updated_at


# --- what the sender takes from the outbox ----------------------------------------------------------


def test_the_sender_takes_a_chats_waiting_rows_as_one_message_but_a_card_alone(team):
    trader = team["trader"]
    for key in ("a", "b"):
        notification_enqueue(kind=K.ORDER_FILLED, dedupe_key=key, text=f"fill {key}", users=[trader])
    notification_enqueue(kind=K.SIGNAL_CARD, dedupe_key="card", text="card", users=[trader], reply_markup={"x": 1})
    notification_enqueue(kind=K.ORDER_FILLED, dedupe_key="c", text="fill c", users=[trader])

    [first] = notifications_claim(max_chats=30)
    [second] = notifications_claim(max_chats=30)

    assert first.text == "fill a\n\nfill b"
    assert (second.text, second.reply_markup) == ("card", {"x": 1})
    assert [row.status for row in Notification.objects.order_by("id")] == [NS.SENDING] * 3 + [NS.PENDING]


def test_a_row_waiting_for_its_retry_holds_back_the_later_rows_of_its_chat_only(team):
    trader, viewer = team["trader"], team["viewer"]
    notification_enqueue(kind=K.ALERT, dedupe_key="first", text="first", users=[trader])
    Notification.objects.update(next_attempt_at=timezone.now() + timedelta(seconds=30))
    notification_enqueue(kind=K.ALERT, dedupe_key="second", text="second", users=[trader, viewer])

    [delivery] = notifications_claim(max_chats=30)

    assert (delivery.chat_id, delivery.text) == (viewer.telegram_id, "second")


def test_a_user_deactivated_after_queuing_gets_nothing(team):
    trader = team["trader"]
    notification_enqueue(kind=K.ALERT, dedupe_key="x", text="Stream down", users=[trader])
    trader.is_active = False
    trader.save()

    assert notifications_claim(max_chats=30) == []
    row = Notification.objects.get()
    assert (row.status, row.last_error) == (NS.FAILED, "recipient deactivated")


def test_the_kill_switch_is_told_with_who_flipped_it(team):
    account = TradingAccountFactory(name="main")
    account_set_trading_enabled(account=account, enabled=False, actor=Actor.telegram(1, "alice"), reason="/botstop")
    account_set_trading_enabled(account=account, enabled=True, actor=Actor.telegram(1, "alice"), reason="/botstart")

    notifications_fanout()

    texts = [row.text for row in queued(K.ALERT)[team["viewer"].telegram_id]]
    assert "Kill switch ON" in texts[0] and "By alice" in texts[0]
    assert "Kill switch off" in texts[1]


def test_an_order_whose_outcome_is_unknown_is_told_as_an_error(team):
    signal = SignalFactory(symbol="BTC/USDT:USDT")
    publish("signals.outcome_unknown", signal, summary="entry tvabc: no answer from BingX, looking it up")

    notifications_fanout()

    [row] = queued(K.ALERT)[team["trader"].telegram_id]
    assert "Order outcome unknown" in row.text
    assert f"Signal #{signal.pk}" in row.text and "no answer from BingX" in row.text


def test_a_message_that_timed_out_is_retried_saying_it_may_be_a_repeat(team):
    notification_enqueue(kind=K.ALERT, dedupe_key="x", text="Stream down", users=[team["trader"]])
    [delivery] = notifications_claim(max_chats=30)

    notification_mark_retry(delivery=delivery, error="TimedOut", delay_seconds=0, maybe_delivered=True)
    [again] = notifications_claim(max_chats=30)

    assert again.text == f"{RESENT_NOTE}\nStream down"
