"""Run the Telegram bot: long polling until SIGTERM or SIGINT (exit 0)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telegram_bot.app import build_application
from telegram_bot.services import telegram_users_bootstrap_admins
from trading.audit import Actor

# Only what the bot answers: anything else is never fetched (the guard would drop it anyway).
ALLOWED_UPDATES = ["message", "callback_query"]


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
        added = telegram_users_bootstrap_admins(telegram_ids=settings.TELEGRAM_ADMIN_IDS, actor=Actor.system("runbot"))
        for user in added:
            self.stdout.write(f"Whitelisted {user.telegram_id} as admin (TELEGRAM_ADMIN_IDS).")
        application = build_application()
        self.stdout.write(f"Telegram bot polling {settings.TELEGRAM_API_BASE_URL}. Stop with Ctrl+C.")
        self.stdout.flush()
        # drop_pending_updates: taps and commands made while the bot was down are not acted on now.
        application.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=True)
        self.stdout.write("Telegram bot stopped.")
