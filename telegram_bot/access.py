"""Who is talking to the bot and what they may do: viewer sees; trader approves and trades; admin changes settings.

The guard (group -1) stores the caller's ``BotUser`` in ``context.user_data["bot_user"]`` for every update it
lets through, so any handler can read it without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Update
from telegram.ext import ContextTypes

from telegram_bot.models import TelegramUser
from trading.audit import Actor

BOT_USER_KEY = "bot_user"


@dataclass(frozen=True)
class BotUser:
    telegram_id: int
    username: str
    role: str
    pk: int


def bot_user_of(context: ContextTypes.DEFAULT_TYPE) -> BotUser:
    return context.user_data[BOT_USER_KEY]


def can_trade(user: BotUser) -> bool:
    """Approve, reject and edit signals; close positions."""
    return user.role in (TelegramUser.Role.TRADER, TelegramUser.Role.ADMIN)


def can_admin(user: BotUser) -> bool:
    """Auto-trade, the kill switch, margin and leverage."""
    return user.role == TelegramUser.Role.ADMIN


def actor_of(user: BotUser) -> Actor:
    return Actor.telegram(user.telegram_id, user.username)


async def deny(update: Update, text: str) -> None:
    """Tell the caller no: an alert on a button press (which also answers it), else a reply to the message."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text, parse_mode=None)
