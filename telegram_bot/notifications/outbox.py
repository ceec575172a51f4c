"""The outbox: who gets a notification, queuing it, and the sender's bookkeeping (claim, sent, retry, failed).

Plain sync functions: the fan-out and any service call ``notification_enqueue`` inside their own
transaction; the sender calls the rest through ``db(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from telegram_bot.models import Notification, SignalCard, TelegramUser
from telegram_bot.notifications.texts import RESENT_NOTE, TEXT_LIMIT

K = Notification.Kind
NS = Notification.Status
# Which TelegramUser preference lets each kind through.
PREFERENCE_OF_KIND = {
    K.SIGNAL_CARD: "notify_signals",
    K.SIGNAL_RECEIVED: "notify_signals",
    K.SIGNAL_REJECTED: "notify_signals",
    K.SIGNAL_FAILED: "notify_signals",
    K.ORDER_PLACED: "notify_orders",
    K.ORDER_FILLED: "notify_orders",
    K.ORDER_FAILED: "notify_orders",
    K.POSITION_CLOSED: "notify_orders",
    K.ALERT: "notify_risk",
    K.REPORT: "notify_reports",
}
APPROVER_ROLES = (TelegramUser.Role.ADMIN, TelegramUser.Role.TRADER)
# A row "sending" for longer than this had its sender die (or lose its database) mid-request: it is sent
# again. Far longer than one request can take (PTB's timeouts: 5 s each), so a second bot process that
# overlaps the first (a deploy) never takes over a message the first is still sending.
SENDING_LEASE = timedelta(seconds=120)
# Rows of one chat that wait together go out as one message (several fills, a placed SL and TPs), up to
# Telegram's length limit. A card, or anything with buttons, always goes alone.
COALESCE_SEPARATOR = "\n\n"
RETRY_BACKOFF_CAP_SECONDS = 300
MAX_ATTEMPTS = 30  # with the backoff cap, about two hours of Telegram being unreachable before "failed"


def notification_recipients(*, kind: str, roles: Iterable[str] | None = None) -> list[TelegramUser]:
    """Active whitelisted users whose preferences accept ``kind`` (and, if given, with one of ``roles``)."""
    users = TelegramUser.objects.filter(is_active=True, **{PREFERENCE_OF_KIND[kind]: True})
    if roles is not None:
        users = users.filter(role__in=list(roles))
    return list(users.order_by("pk"))


def notification_enqueue(
    *,
    kind: str,
    dedupe_key: str,
    text: str,
    users: Iterable[TelegramUser] | None = None,
    roles: Iterable[str] | None = None,
    reply_markup: dict | None = None,
    signal=None,
) -> int:
    """Queue one message per recipient, in the caller's transaction; returns how many recipients there were.

    ``users`` defaults to ``notification_recipients(kind, roles)``. Queuing the same ``dedupe_key`` for a
    user again does nothing (unique constraint), so a retried caller never doubles a message.
    """
    if users is None:
        users = notification_recipients(kind=kind, roles=roles)
    rows = [
        Notification(
            telegram_user=user,
            chat_id=user.telegram_id,
            kind=kind,
            dedupe_key=dedupe_key[:200],
            text=text,
            reply_markup=reply_markup,
            signal=signal,
        )
        for user in users
    ]
    if rows:
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- the sender's bookkeeping ----------------------------------------------------------------------------


@dataclass
class Delivery:
    """One message to one chat: one row, or several coalesced rows sent as one text."""

    chat_id: int
    ids: list[int]
    kind: str
    text: str
    reply_markup: dict | None = None
    signal_id: int | None = None
    telegram_user_id: int | None = None
    resent: bool = False
    attempts: int = 1  # of the first row, this one included
    parts_sent: list[int] = field(default_factory=list)  # message ids of the parts Telegram accepted


def _queued(now: datetime) -> Q:
    """Pending rows (due or not: a row waiting for its retry holds back the later ones of its chat), and
    rows left ``sending`` longer than SENDING_LEASE (their sender died, or lost its database)."""
    return Q(status=NS.PENDING) | Q(status=NS.SENDING, sending_at__lt=now - SENDING_LEASE)


def notifications_claim(
    *,
    max_chats: int,
    skip_chats: Iterable[int] = (),
    scan_limit: int = 500,
) -> list[Delivery]:
    """Take the next message of up to ``max_chats`` chats (oldest first) and mark its rows ``sending``.

    ``skip_chats``: chats the sender may not write to yet (per-chat pace, retry_after). Rows left
    ``sending`` longer than ``SENDING_LEASE`` are taken again and marked as possibly repeated.
    """
    now = timezone.now()
    deliveries: dict[int, Delivery] = {}
    with transaction.atomic():
        candidates = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(_queued(now))
            .exclude(chat_id__in=list(skip_chats))
            .order_by("id")[:scan_limit]
        )
        # A user switched off (or removed from the whitelist's active users) after the row was queued gets
        # nothing more: the bot answers only active users, and its messages follow the same rule.
        inactive = set(TelegramUser.objects.filter(is_active=False).values_list("pk", flat=True))
        dropped: list[int] = []
        closed_chats: set[int] = set()  # chats whose message is complete (buttons, length, or order)
        for row in candidates:
            chat = row.chat_id
            if row.telegram_user_id in inactive:
                dropped.append(row.pk)
                continue
            if chat in closed_chats:
                continue
            if row.status == NS.PENDING and row.next_attempt_at is not None and row.next_attempt_at > now:
                closed_chats.add(chat)  # waiting for its retry: the chat's later rows wait behind it
                continue
            resent = row.status == NS.SENDING and not row.text.startswith(RESENT_NOTE)
            text = f"{RESENT_NOTE}\n{row.text}" if resent else row.text
            delivery = deliveries.get(chat)
            if delivery is None:
                if len(deliveries) >= max_chats:
                    continue
                deliveries[chat] = Delivery(
                    chat_id=chat,
                    ids=[row.pk],
                    kind=row.kind,
                    text=text,
                    reply_markup=row.reply_markup,
                    signal_id=row.signal_id,
                    telegram_user_id=row.telegram_user_id,
                    resent=row.status == NS.SENDING,
                    attempts=row.attempts + 1,
                )
                if row.reply_markup or row.kind == K.SIGNAL_CARD:
                    closed_chats.add(chat)
                continue
            combined = delivery.text + COALESCE_SEPARATOR + text
            if row.reply_markup or row.kind == K.SIGNAL_CARD or len(combined) > TEXT_LIMIT:
                closed_chats.add(chat)  # it waits for the next message, keeping the chat's order
                continue
            delivery.ids.append(row.pk)
            delivery.text = combined
            delivery.resent = delivery.resent or row.status == NS.SENDING
        if dropped:
            Notification.objects.filter(pk__in=dropped).update(
                status=NS.FAILED, failed_at=now, next_attempt_at=None, last_error="recipient deactivated"
            )
        claimed = [pk for delivery in deliveries.values() for pk in delivery.ids]
        if claimed:
            Notification.objects.filter(pk__in=claimed).update(
                status=NS.SENDING, sending_at=now, attempts=F("attempts") + 1
            )
    return list(deliveries.values())


def notification_mark_sent(*, delivery: Delivery, message_id: int) -> None:
    """Telegram accepted the message. A card's message is remembered (SignalCard) to be edited later."""
    now = timezone.now()
    with transaction.atomic():
        Notification.objects.filter(pk__in=delivery.ids, status=NS.SENDING).update(
            status=NS.SENT, sent_at=now, message_id=message_id, last_error="", next_attempt_at=None
        )
        if delivery.kind == K.SIGNAL_CARD and delivery.signal_id is not None:
            signal_card_record(
                signal_id=delivery.signal_id,
                telegram_user_id=delivery.telegram_user_id,
                chat_id=delivery.chat_id,
                message_id=message_id,
            )


def signal_card_record(
    *, signal_id: int, telegram_user_id: int, chat_id: int, message_id: int, state: str = SignalCard.State.OPEN
) -> SignalCard:
    """Where the card of ``signal_id`` now is in ``chat_id``: the newest copy is the one edited later.

    The sender records it open, even if the signal was decided while the card was on its way: the message does
    show the buttons, and the refresh job (``approval.signal_cards_refresh_due``) turns an open card of a
    decided signal into its final text within seconds. A card re-sent already final (``approval``) is closed."""
    card, _ = SignalCard.objects.update_or_create(
        signal_id=signal_id,
        chat_id=chat_id,
        defaults={"telegram_user_id": telegram_user_id, "message_id": message_id, "state": state},
    )
    return card


def notification_mark_retry(
    *, delivery: Delivery, error: str, delay_seconds: float, remaining_text: str = "", maybe_delivered: bool = False
) -> None:
    """Back to pending, due after ``delay_seconds``. ``remaining_text``: the parts of a long message Telegram
    has not taken yet (the parts it took are not sent again). ``maybe_delivered`` (a timeout: Telegram may
    have the message): the retry says it may be a repeat."""
    now = timezone.now()
    if maybe_delivered:
        for row in Notification.objects.filter(pk__in=delivery.ids, status=NS.SENDING):
            if not row.text.startswith(RESENT_NOTE):
                row.text = f"{RESENT_NOTE}\n{row.text}"
                row.save(update_fields=["text"])
        if remaining_text and not remaining_text.startswith(RESENT_NOTE):
            remaining_text = f"{RESENT_NOTE}\n{remaining_text}"
    updates = {
        "status": NS.PENDING,
        "next_attempt_at": now + timedelta(seconds=delay_seconds),
        "last_error": error[:2000],
    }
    with transaction.atomic():
        rows = Notification.objects.filter(pk__in=delivery.ids, status=NS.SENDING)
        if remaining_text and len(delivery.ids) == 1:
            updates["text"] = remaining_text
            if delivery.parts_sent:
                updates["message_id"] = delivery.parts_sent[0]
        rows.update(**updates)
        # A row that has failed often enough stops: it stays visible in the admin, with "retry now".
        Notification.objects.filter(pk__in=delivery.ids, status=NS.PENDING, attempts__gte=MAX_ATTEMPTS).update(
            status=NS.FAILED, failed_at=now, next_attempt_at=None
        )


def notification_mark_failed(*, delivery: Delivery, error: str) -> None:
    Notification.objects.filter(pk__in=delivery.ids, status=NS.SENDING).update(
        status=NS.FAILED, failed_at=timezone.now(), last_error=error[:2000], next_attempt_at=None
    )


def retry_delay(attempts: int) -> float:
    """Backoff for a network error or a 5xx: 2, 4, 8 ... seconds, capped."""
    return float(min(RETRY_BACKOFF_CAP_SECONDS, 2 ** max(1, attempts)))
