"""Run the Telegram bot: long polling until SIGTERM or SIGINT (exit 0)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from telegram.error import InvalidToken, NetworkError

from telegram_bot.app import build_application
from telegram_bot.services import telegram_users_bootstrap_admins
from trading.audit import Actor

# Only what the bot answers: anything else is never fetched (the guard would drop it anyway).
ALLOWED_UPDATES = ["message", "callback_query"]
REDACTED = "<TELEGRAM_BOT_TOKEN>"


class TokenRedactingFilter(logging.Filter):
    """Replace the bot token in a log record's message and traceback (PTB quotes a refused token)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, REDACTED), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, REDACTED)
        return True


class Command(BaseCommand):
    help = (
        "Run the Telegram bot (long polling; one process per bot token). Whitelisted users only; "
        "TELEGRAM_ADMIN_IDS are made admins first. Stop with Ctrl+C or SIGTERM."
    )

    def handle(self, *args, **options):
        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("TELEGRAM_BOT_TOKEN is empty: set it to the token from @BotFather to run the bot.")
        # httpx logs each request URL at INFO, and a Bot API URL contains the token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # APScheduler (PTB's job queue) logs every run of the 1-second jobs at INFO: noise that hides the rest.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            handler.addFilter(TokenRedactingFilter(settings.TELEGRAM_BOT_TOKEN))
        added = telegram_users_bootstrap_admins(telegram_ids=settings.TELEGRAM_ADMIN_IDS, actor=Actor.system("runbot"))
        for user in added:
            self.stdout.write(f"Whitelisted {user.telegram_id} as admin (TELEGRAM_ADMIN_IDS).")
        application = build_application()
        self.stdout.write(f"Telegram bot polling {settings.TELEGRAM_API_BASE_URL}. Stop with Ctrl+C.")
        self.stdout.flush()
        try:
            # drop_pending_updates: taps and commands made while the bot was down are not acted on now.
            application.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=True)
        except InvalidToken as error:
            # Not the error's text: it quotes the token.
            raise CommandError("Telegram refused TELEGRAM_BOT_TOKEN (unauthorized): check the token.") from error
        except NetworkError as error:
            raise CommandError(
                f"Cannot reach the Bot API at {settings.TELEGRAM_API_BASE_URL} ({error}); "
                "check TELEGRAM_API_BASE_URL and the network."
            ) from error
        self.stdout.write("Telegram bot stopped.")
