"""Notifications, from the outbox to Telegram: the bot's sender against the fake Bot API. Every queued
message arrives once (through 429s, 5xx and restarts), within Telegram's limits; a blocked chat or a
refused message fails alone; an approval card's message is remembered for later edits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from signals_app.models import Signal
from signals_app.services import signal_transition
from telegram_bot.db import db
from telegram_bot.models import Notification, SignalCard
from telegram_bot.notifications.outbox import notification_enqueue
from tests.factories import (
    SignalFactory,
    TelegramAdminFactory,
    TelegramTraderFactory,
    TelegramUserFactory,
    TelegramViewerFactory,
)
from trading.audit import Actor

# The bot writes from its own thread. On the in-memory SQLite test database one connection's write locks
# the table for the others, so the tests read and write through the bot's own database thread (``on_bot``).
pytestmark = pytest.mark.django_db(transaction=True)
K = Notification.Kind
NS = Notification.Status
ACTOR = Actor.system("test")
RESENT_TEXT = "Sent again after an interruption"


def on_bot(bot, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the thread the bot uses for the database (``telegram_bot.db.db``)."""
    return bot.running.run(db(fn)(*args, **kwargs))


def wait_until(bot, condition, *, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not on_bot(bot, condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def all_settled() -> bool:
    return not Notification.objects.filter(status__in=[NS.PENDING, NS.SENDING]).exists()


def rows(**filters) -> list[Notification]:
    return list(Notification.objects.filter(**filters).order_by("id"))


def delivered(tg, chat_id: int | None = None) -> list[dict]:
    """sendMessage calls Telegram accepted (to ``chat_id``), in arrival order."""
    calls = [call for call in tg.calls("sendMessage") if call["status"] == 200]
    if chat_id is not None:
        calls = [call for call in calls if int(call["params"]["chat_id"]) == chat_id]
    return sorted(calls, key=lambda call: call["time"])


def refused(tg, status: int) -> list[dict]:
    return [call for call in tg.calls("sendMessage") if call["status"] == status]


def enqueue_each(users, count: int, *, prefix: str = "note") -> list[str]:
    """``count`` distinct notifications for each of ``users``; returns their texts."""
    texts = [f"{prefix} {number}" for number in range(count)]
    for text in texts:
        notification_enqueue(kind=K.ALERT, dedupe_key=f"test:{text}", text=text, users=users)
    return texts


def occurrences(tg, chat_id: int, text: str) -> int:
    return sum(call["params"]["text"].split("\n").count(text) for call in delivered(tg, chat_id))


def awaiting_signal() -> Signal:
    signal = SignalFactory()
    signal_transition(signal=signal, to=Signal.Status.VALIDATED, actor=ACTOR)
    signal_transition(signal=signal, to=Signal.Status.AWAITING_CONFIRMATION, actor=ACTOR)
    return signal


def test_a_card_reaches_traders_and_admins_with_its_buttons_and_is_remembered_where_it_was_sent(bot):
    def setup():
        users = TelegramAdminFactory(), TelegramTraderFactory(), TelegramViewerFactory()
        TelegramTraderFactory(is_active=False, telegram_id=424242)
        return users, awaiting_signal()

    (admin, trader, viewer), signal = on_bot(bot, setup)

    wait_until(bot, lambda: Notification.objects.filter(status=NS.SENT).count() == 3, what="three sent")

    cards = {card.chat_id: card for card in on_bot(bot, lambda: list(SignalCard.objects.filter(signal=signal)))}
    assert set(cards) == {admin.telegram_id, trader.telegram_id}
    for user in (admin, trader):
        [call] = delivered(bot.tg, user.telegram_id)
        keyboard = call["params"]["reply_markup"]["inline_keyboard"]
        assert f"sig:ok:{signal.pk}" in [button["callback_data"] for row in keyboard for button in row]
        card = cards[user.telegram_id]
        assert (card.message_id, card.telegram_user_id, card.state) == (
            call["result"]["message_id"],
            user.pk,
            SignalCard.State.OPEN,
        )
    [viewer_call] = delivered(bot.tg, viewer.telegram_id)
    assert "reply_markup" not in viewer_call["params"]
    chats = {int(call["params"]["chat_id"]) for call in bot.tg.calls("sendMessage")}
    assert chats == {admin.telegram_id, trader.telegram_id, viewer.telegram_id}  # not the inactive 424242


def test_every_notification_arrives_exactly_once_through_429_answers(bot):
    users = on_bot(bot, lambda: [TelegramTraderFactory() for _ in range(3)])
    bot.tg.fail_next("sendMessage", status=429, retry_after=1, times=4)
    texts = on_bot(bot, enqueue_each, users, 4)

    wait_until(bot, all_settled, timeout=30, what="the outbox to drain")

    assert len(refused(bot.tg, 429)) == 4
    assert {row.status for row in on_bot(bot, rows)} == {NS.SENT}
    for user in users:
        assert [occurrences(bot.tg, user.telegram_id, text) for text in texts] == [1, 1, 1, 1]


def test_a_429_holds_back_its_chat_for_retry_after(bot):
    user = on_bot(bot, TelegramTraderFactory)
    bot.tg.fail_next("sendMessage", status=429, retry_after=3, times=1)
    on_bot(bot, enqueue_each, [user], 1)

    wait_until(bot, all_settled, what="the notification to be sent")

    [refusal] = refused(bot.tg, 429)
    [accepted] = delivered(bot.tg, user.telegram_id)
    assert accepted["time"] - refusal["time"] >= 3


def test_forty_notifications_to_two_chats_arrive_once_each_at_most_one_message_per_second_per_chat(bot):
    bot.tg.set_rate_limit(per_chat_per_second=1, overall_per_second=30)
    users = on_bot(bot, lambda: [TelegramTraderFactory(), TelegramTraderFactory()])
    first = on_bot(bot, enqueue_each, users, 10, prefix="first")
    bot.tg.wait_for_call("sendMessage")
    later = on_bot(bot, enqueue_each, users, 10, prefix="later")  # a second burst while the first is sent

    wait_until(bot, all_settled, timeout=30, what="the outbox to drain")

    assert refused(bot.tg, 429) == []
    for user in users:
        assert [occurrences(bot.tg, user.telegram_id, text) for text in first + later] == [1] * 20
        times = [call["time"] for call in delivered(bot.tg, user.telegram_id)]
        assert len(times) < 20  # a burst to one chat goes out as few messages
        assert all(later_time - earlier >= 1.0 for earlier, later_time in zip(times, times[1:], strict=False))


def test_cards_to_one_chat_go_one_per_second(bot):
    bot.tg.set_rate_limit(per_chat_per_second=1, overall_per_second=30)

    def setup():
        trader = TelegramTraderFactory()
        for _ in range(3):
            awaiting_signal()
        return trader

    trader = on_bot(bot, setup)

    wait_until(bot, lambda: len(rows(kind=K.SIGNAL_CARD, status=NS.SENT)) == 3, timeout=20, what="three cards")

    times = [call["time"] for call in delivered(bot.tg, trader.telegram_id)]
    assert len(times) == 3  # a card is never merged with another message
    assert refused(bot.tg, 429) == []
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[1:], strict=False))


def test_forty_five_chats_get_their_messages_at_most_thirty_per_second_overall(bot):
    bot.tg.set_rate_limit(per_chat_per_second=1, overall_per_second=30)
    users = on_bot(bot, lambda: [TelegramUserFactory() for _ in range(45)])
    on_bot(bot, enqueue_each, users, 1)

    wait_until(bot, all_settled, timeout=20, what="the outbox to drain")

    times = [call["time"] for call in delivered(bot.tg)]
    assert len(times) == 45
    assert refused(bot.tg, 429) == []
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 30


def test_a_chat_that_blocked_the_bot_fails_alone(bot):
    users = on_bot(bot, lambda: [TelegramTraderFactory() for _ in range(3)])
    bot.tg.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user", times=1)
    on_bot(bot, enqueue_each, users, 1)

    wait_until(bot, all_settled, what="the outbox to settle")

    [blocked] = on_bot(bot, rows, status=NS.FAILED)
    assert blocked.last_error == "403: Forbidden: bot was blocked by the user"
    assert len(on_bot(bot, rows, status=NS.SENT)) == 2
    assert delivered(bot.tg, blocked.chat_id) == []
    time.sleep(2.5)  # later ticks leave it failed
    assert on_bot(bot, rows, pk=blocked.pk)[0].status == NS.FAILED
    assert len(bot.tg.calls("sendMessage")) == 3


def test_a_message_telegram_refuses_as_bad_fails_with_the_reason(bot):
    user = on_bot(bot, TelegramTraderFactory)
    bot.tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found", times=1)
    on_bot(bot, enqueue_each, [user], 1)

    wait_until(bot, all_settled, what="the outbox to settle")

    [row] = on_bot(bot, rows)
    assert (row.status, row.last_error) == (NS.FAILED, "400: Chat not found")


def test_a_server_error_is_retried_and_the_message_arrives_once(bot):
    user = on_bot(bot, TelegramTraderFactory)
    bot.tg.fail_next("sendMessage", status=502, description="Bad Gateway", times=1)
    [text] = on_bot(bot, enqueue_each, [user], 1)

    wait_until(bot, all_settled, timeout=20, what="the retry")

    [row] = on_bot(bot, rows)
    assert (row.status, row.attempts) == (NS.SENT, 2)
    assert occurrences(bot.tg, user.telegram_id, text) == 1


def test_a_message_longer_than_telegram_allows_goes_in_parts_in_order(bot):
    user = on_bot(bot, TelegramTraderFactory)
    lines = [f"line {number:04d} " + "x" * 90 for number in range(60)]  # about 6000 characters
    on_bot(bot, notification_enqueue, kind=K.REPORT, dedupe_key="report:long", text="\n".join(lines), users=[user])

    wait_until(bot, all_settled, timeout=20, what="both parts")

    calls = delivered(bot.tg, user.telegram_id)
    assert len(calls) == 2
    assert all(len(call["params"]["text"]) <= 4096 for call in calls)
    assert "\n".join(call["params"]["text"] for call in calls) == "\n".join(lines)
    assert on_bot(bot, rows)[0].message_id == calls[0]["result"]["message_id"]


def test_a_message_left_sending_longer_than_the_lease_is_sent_again_marked_as_a_possible_repeat(bot):
    """The crash between Telegram's answer and our "sent": delivery unknown, so at-least-once, and said."""

    def setup():
        user = TelegramTraderFactory()
        [text] = enqueue_each([user], 1, prefix="position closed")
        Notification.objects.update(status=NS.SENDING, sending_at=timezone.now() - timedelta(minutes=3), attempts=1)
        return user, text

    user, text = on_bot(bot, setup)

    wait_until(bot, all_settled, what="the orphaned notification")

    [call] = delivered(bot.tg, user.telegram_id)
    assert RESENT_TEXT in call["params"]["text"] and text in call["params"]["text"]
    assert on_bot(bot, rows)[0].status == NS.SENT


def test_a_message_being_sent_is_not_taken_again(bot):
    """A row "sending" (by this or another bot process, its answer not recorded yet) is not sent twice."""

    def setup():
        user = TelegramTraderFactory()
        enqueue_each([user], 1)
        Notification.objects.update(status=NS.SENDING, sending_at=timezone.now(), attempts=1)
        return user

    user = on_bot(bot, setup)

    time.sleep(3)  # three ticks

    assert delivered(bot.tg, user.telegram_id) == []
    assert on_bot(bot, rows)[0].status == NS.SENDING
