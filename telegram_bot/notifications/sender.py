"""The notification sender: runs in the bot process, drains the outbox within Telegram's limits.

``register(application)`` adds a job every ``TICK_SECONDS``: fan out new audit rows to the outbox, then
send the next message of each chat that may receive one. There is one sender (the bot process; Telegram
lets only one process poll a token), so its in-memory pacing is all the pacing there is:
- overall at most ``OVERALL_PER_SPAN`` messages per ``OVERALL_SPAN`` seconds (Telegram: about 30/s),
  per chat one message per ``CHAT_INTERVAL`` (Telegram: 1/s), both counted from Telegram's answers so
  network delays cannot bunch arrivals up (``RateLimiter``);
- a 429 pauses that chat for its ``retry_after`` and the row waits as long; a 429 for a second chat
  while another's pause still runs means the bot as a whole is limited, so everything pauses
  (Telegram's reply does not say which limit it is; one chat flooded is the usual case for a few admins).
The delivery guarantees are in ``telegram_bot/notifications/__init__.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from datetime import timedelta

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ContextTypes

from telegram_bot.db import db
from telegram_bot.notifications.fanout import notifications_fanout, pnl_swings_notify
from telegram_bot.notifications.outbox import (
    Delivery,
    notification_mark_failed,
    notification_mark_retry,
    notification_mark_sent,
    notifications_claim,
    retry_delay,
)
from telegram_bot.notifications.texts import text_split

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
OVERALL_PER_SPAN = 30
OVERALL_SPAN = 1.05
CHAT_INTERVAL = 1.05
SENDER_KEY = "notification_sender"
INVALID_TOKEN_PAUSE_SECONDS = 60


class RateLimiter:
    """When the next message may start: overall window, per-chat interval, pauses after a 429.

    Telegram counts a message when it arrives, somewhere between our request's start and its answer. A
    message therefore holds its place in the window from its start until ``span`` after its answer (and
    a chat is free ``chat_interval`` after the answer): however the network delays requests, no two
    arrivals of one chat are closer than the interval, and no window of ``span`` holds more than
    ``overall`` arrivals.
    """

    def __init__(
        self,
        *,
        overall: int = OVERALL_PER_SPAN,
        span: float = OVERALL_SPAN,
        chat_interval: float = CHAT_INTERVAL,
        clock=time.monotonic,
    ) -> None:
        self.overall, self.span, self.chat_interval, self.clock = overall, span, chat_interval, clock
        self.slots: list[_Slot] = []  # messages in flight or answered within the last span
        self.chat_free_at: dict[int, float] = {}
        self.flooded_until: dict[int, float] = {}  # chats under a 429 pause
        self.paused_until = 0.0  # the whole bot, after 429s on several chats

    def wait_for(self, chat_id: int) -> float:
        now = self.clock()
        self.slots = [slot for slot in self.slots if slot.answered_at > now - self.span]
        waits = [self.paused_until - now, self.chat_free_at.get(chat_id, 0.0) - now]
        if len(self.slots) >= self.overall:
            answered = sorted(slot.answered_at for slot in self.slots if slot.answered_at != IN_FLIGHT)
            needed = len(self.slots) - self.overall  # this many more must leave the window
            waits.append(answered[needed] + self.span - now if needed < len(answered) else IN_FLIGHT_POLL)
        return max(waits)

    async def acquire(self, chat_id: int) -> _Slot:
        """Wait until a message to ``chat_id`` may start; the caller ``release``s the slot once answered."""
        while (wait := self.wait_for(chat_id)) > 0:
            await asyncio.sleep(wait)
        slot = _Slot(chat_id)  # no await since wait_for: nobody else took the place
        self.slots.append(slot)
        self.chat_free_at[chat_id] = IN_FLIGHT
        return slot

    def release(self, slot: _Slot) -> None:
        slot.answered_at = self.clock()
        free_at = slot.answered_at + self.chat_interval
        self.chat_free_at[slot.chat_id] = max(free_at, self.flooded_until.get(slot.chat_id, 0.0))

    def hold(self, chat_id: int, seconds: float) -> None:
        """Nothing to ``chat_id`` for ``seconds`` (its oldest message waits for a retry)."""
        self.chat_free_at[chat_id] = max(self.chat_free_at.get(chat_id, 0.0), self.clock() + seconds)

    def busy_chats(self, within: float) -> set[int]:
        """Chats that may not receive anything for longer than ``within`` seconds (or are being sent to)."""
        horizon = self.clock() + within
        return {chat for chat, free_at in self.chat_free_at.items() if free_at > horizon}

    def paused_for(self) -> float:
        return self.paused_until - self.clock()

    def flooded(self, chat_id: int, seconds: float) -> bool:
        """Telegram answered 429 for ``chat_id``; returns True when the pause is taken as global."""
        now = self.clock()
        until = now + seconds
        others = [chat for chat, flood_end in self.flooded_until.items() if flood_end > now and chat != chat_id]
        self.flooded_until = {chat: end for chat, end in self.flooded_until.items() if end > now}
        self.flooded_until[chat_id] = until
        self.chat_free_at[chat_id] = max(self.chat_free_at.get(chat_id, 0.0), until)
        if others:
            self.paused_until = max(self.paused_until, until)
            return True
        return False


IN_FLIGHT = float("inf")
IN_FLIGHT_POLL = 0.05  # every place is taken by a message not answered yet: look again shortly


class _Slot:
    __slots__ = ("chat_id", "answered_at")

    def __init__(self, chat_id: int) -> None:
        self.chat_id, self.answered_at = chat_id, IN_FLIGHT


def _seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int will become a timedelta: accept both
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class NotificationSender:
    def __init__(self, bot: Bot, *, limiter: RateLimiter | None = None) -> None:
        self.bot = bot
        self.limiter = limiter or RateLimiter()
        self._busy = asyncio.Lock()

    async def tick(self) -> int:
        """Fan out, then send what is due; returns how many messages Telegram accepted. A tick that finds
        the previous one still sending (a long message, a slow Telegram) does nothing."""
        if self._busy.locked():
            return 0
        async with self._busy:
            try:
                await db(notifications_fanout)()
                await db(pnl_swings_notify)()
            except Exception:  # the database is down, say: the audit rows wait, the next tick tries again
                logger.exception("notification fan-out failed")
            try:
                return await self.drain()
            except Exception:
                logger.exception("notification sending failed")
                return 0

    async def drain(self) -> int:
        """Send the next message of each chat that may receive one now."""
        if self.limiter.paused_for() > TICK_SECONDS:
            return 0
        deliveries = await db(notifications_claim)(
            max_chats=OVERALL_PER_SPAN,
            skip_chats=self.limiter.busy_chats(TICK_SECONDS),
        )
        if not deliveries:
            return 0
        results = await asyncio.gather(*(self._deliver(delivery) for delivery in deliveries), return_exceptions=True)
        for delivery, result in zip(deliveries, results, strict=True):
            if isinstance(result, BaseException):  # e.g. the database gone after Telegram's answer: the row
                # stays "sending" and is sent again after SENDING_LEASE (at-least-once)
                logger.error("notification %s: outcome not recorded", delivery.ids, exc_info=result)
        return sum(result for result in results if isinstance(result, int))

    async def _deliver(self, delivery: Delivery) -> int:
        parts = text_split(delivery.text)
        markup = InlineKeyboardMarkup.de_json(delivery.reply_markup, self.bot) if delivery.reply_markup else None
        last_message_id = None
        try:
            for index, part in enumerate(parts):
                slot = await self.limiter.acquire(delivery.chat_id)
                try:
                    message = await self.bot.send_message(
                        delivery.chat_id,
                        part,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup if index == len(parts) - 1 else None,  # buttons under the last part
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
                finally:
                    self.limiter.release(slot)
                delivery.parts_sent.append(message.message_id)
                last_message_id = message.message_id
        except RetryAfter as error:
            seconds = _seconds(error)
            if self.limiter.flooded(delivery.chat_id, seconds):
                logger.warning("telegram: 429 on several chats, all sending paused %.0fs", seconds)
            await self._retry(delivery, parts, f"429: {error}", seconds)
            return 0
        except ChatMigrated as error:  # a group became a supergroup: same messages, new chat id
            await db(_chat_migrate)(delivery=delivery, new_chat_id=error.new_chat_id)
            return 0
        except Forbidden as error:  # the user blocked the bot: no retry helps
            logger.warning("telegram: chat %s refuses messages: %s", delivery.chat_id, error)
            await db(notification_mark_failed)(delivery=delivery, error=f"403: {error.message}")
            return 0
        except BadRequest as error:  # ours to fix (chat not found, bad markup): retrying would repeat it
            logger.error("telegram: message %s refused: %s", delivery.ids, error)
            await db(notification_mark_failed)(delivery=delivery, error=f"400: {error.message}")
            return 0
        except InvalidToken as error:
            logger.error("telegram: the bot token is refused: %s", error)
            await self._retry(delivery, parts, f"token refused: {error}", INVALID_TOKEN_PAUSE_SECONDS)
            return 0
        except TelegramError as error:  # network error, timeout, 5xx
            logger.warning("telegram: sending %s failed, retrying: %s", delivery.ids, error)
            # A timeout may come after Telegram took the message: the retry says it may be a repeat.
            await self._retry(
                delivery,
                parts,
                f"{type(error).__name__}: {error}",
                retry_delay(delivery.attempts),
                maybe_delivered=isinstance(error, TimedOut),
            )
            return 0
        except Exception as error:  # never lose the row to a bug: it waits, visible in the admin
            logger.exception("sending notification %s failed", delivery.ids)
            await self._retry(delivery, parts, f"{type(error).__name__}: {error}", retry_delay(delivery.attempts))
            return 0
        # A card's message is the one with the buttons (the last part); otherwise the first part.
        message_id = last_message_id if markup is not None else delivery.parts_sent[0]
        await db(notification_mark_sent)(delivery=delivery, message_id=message_id)
        return 1

    async def _retry(
        self, delivery: Delivery, parts: list[str], error: str, seconds: float, *, maybe_delivered: bool = False
    ) -> None:
        self.limiter.hold(delivery.chat_id, seconds)  # the chat's later rows wait behind this one
        remaining = "\n".join(parts[len(delivery.parts_sent) :]) if delivery.parts_sent else ""
        await db(notification_mark_retry)(
            delivery=delivery,
            error=error,
            delay_seconds=seconds,
            remaining_text=remaining,
            maybe_delivered=maybe_delivered,
        )


def _chat_migrate(*, delivery: Delivery, new_chat_id: int) -> None:
    from telegram_bot.models import Notification

    Notification.objects.filter(pk__in=delivery.ids, status=Notification.Status.SENDING).update(
        chat_id=new_chat_id, status=Notification.Status.PENDING, next_attempt_at=None
    )


def sender_of(application: Application) -> NotificationSender:
    sender = application.bot_data.get(SENDER_KEY)
    if sender is None:
        sender = application.bot_data[SENDER_KEY] = NotificationSender(application.bot)
    return sender


async def notifications_send(application: Application) -> int:
    """One run of the sender (fan-out, then what is due), as the job does it: for a test or a command."""
    return await sender_of(application).tick()


async def job_send(context: ContextTypes.DEFAULT_TYPE) -> None:
    await notifications_send(context.application)


def register(application: Application) -> None:
    if application.job_queue is None:
        raise RuntimeError("the notification sender needs PTB's job queue: install python-telegram-bot[job-queue]")
    sender_of(application)
    # More than one instance allowed: a tick finding the previous one busy returns at once (no APScheduler
    # "maximum number of running instances" warning for a long message).
    application.job_queue.run_repeating(
        job_send, interval=TICK_SECONDS, first=TICK_SECONDS, name="notifications", job_kwargs={"max_instances": 3}
    )
