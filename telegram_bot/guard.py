"""The one gate in front of every handler (group -1): only active whitelisted users get any answer.

A stranger's message gets no call at all (not even an error: the bot does not reveal itself); a stranger's
button press is only answered "Not authorized", which stops the client's spinner. A message older than
``STALE_AFTER`` is dropped: it was typed while the bot was down, and acting on it now could surprise.
Anything other than a message or a button press (edits, member changes, polls...) is dropped too.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes, TypeHandler

from telegram_bot.access import BOT_USER_KEY
from telegram_bot.db import db
from telegram_bot.services import telegram_user_seen

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=60)
GUARD_GROUP = -1


async def guard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if context.user_data is not None:  # set again below only if the caller is still whitelisted
        context.user_data.pop(BOT_USER_KEY, None)
    user = update.effective_user
    if user is None or (update.message is None and update.callback_query is None):
        raise ApplicationHandlerStop
    if update.message is not None and update.message.date < timezone.now() - STALE_AFTER:
        logger.info("dropped a stale message from %s sent at %s", user.id, update.message.date.isoformat())
        raise ApplicationHandlerStop
    bot_user = await db(telegram_user_seen)(telegram_id=user.id, username=user.username or "")
    if bot_user is None:
        logger.warning("update from non-whitelisted Telegram user %s ignored", user.id)
        if update.callback_query is not None:
            await update.callback_query.answer("Not authorized", show_alert=True)
        raise ApplicationHandlerStop
    context.user_data[BOT_USER_KEY] = bot_user


def register(application: Application) -> None:
    application.add_handler(TypeHandler(Update, guard), group=GUARD_GROUP)
