"""The bot's python-telegram-bot ``Application``: one gate, then the menus, the approval cards, the leverage
dialog and the notification sender, in that order."""

from __future__ import annotations

import logging

from django.conf import settings
from telegram import BotCommand, Update
from telegram.constants import ParseMode
from telegram.error import NetworkError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults

from telegram_bot import guard
from telegram_bot.access import BOT_USER_KEY
from telegram_bot.handlers import approval, leverage, menus
from telegram_bot.notifications import sender
from telegram_bot.texts import COMMANDS

logger = logging.getLogger(__name__)


def default_builder() -> ApplicationBuilder:
    return ApplicationBuilder().token(settings.TELEGRAM_BOT_TOKEN).base_url(f"{settings.TELEGRAM_API_BASE_URL}/bot")


def build_application(builder: ApplicationBuilder | None = None) -> Application:
    """The configured Application; ``builder`` (tests: one pointed at the fake Bot API) defaults to the settings'."""
    builder = builder or default_builder()
    # No AIORateLimiter: interactive replies are one per user action; notifications are paced by their sender.
    application = builder.defaults(Defaults(parse_mode=ParseMode.HTML)).post_init(commands_publish).build()
    guard.register(application)
    menus.register(application)
    approval.register(application)
    leverage.register(application)
    sender.register(application)
    application.add_error_handler(error_report)
    return application


async def commands_publish(application: Application) -> None:
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])


async def error_report(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every handler error; tell a whitelisted caller it failed (never a stranger: the guard may have failed)."""
    if update is None and isinstance(context.error, NetworkError):  # polling failed; PTB retries on its own
        logger.warning("Telegram Bot API unreachable, retrying: %s", context.error)
        return
    logger.error("telegram handler failed", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if context.user_data is None or BOT_USER_KEY not in context.user_data:
        return
    try:
        await context.bot.send_message(
            update.effective_chat.id, "Something went wrong; it is logged. Please try again.", parse_mode=None
        )
    except Exception:  # the error path must not raise into PTB's loop
        logger.warning("could not tell the user about the error", exc_info=True)
