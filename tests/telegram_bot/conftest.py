"""The bot under test: a fake Telegram Bot API on loopback and our real ``Application`` polling it.

Tests talk to the bot as a user would (``bot.tg.send_text``, ``bot.tg.press``) and assert on the calls the bot
made (``bot.tg.wait_for_call``, ``bot.tg.calls``). Tests that use ``bot`` and the database need
``@pytest.mark.django_db(transaction=True)``: the bot writes from its own thread, outside the test's transaction.

On SQLite (shared-cache in-memory test database) a table being written by one thread is locked for the other
("database table is locked", no waiting): create what a test needs before the bot starts (list the data
fixtures before ``bot``), and once it runs write through ``bot.orm(...)``, not from the test's thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from telegram.ext import Application

from telegram_bot.app import build_application
from telegram_bot.db import db
from tests.conftest_bingx import bingx, on_bingx  # noqa: F401 - fixtures
from tests.fakes.telegram import FakeTelegram, fake_telegram
from tests.fakes.telegram.ptb import RunningApplication, ptb_builder, running_application

BOT_TOKEN = "123456:TEST"


@dataclass
class BotUnderTest:
    tg: FakeTelegram
    app: Application
    running: RunningApplication

    def orm(self, fn, /, *args, **kwargs):
        """Run sync ORM code on the bot's database thread, serialized with its handlers and periodic jobs (on
        SQLite a write from the test's thread while a job reads that table fails: "database table is locked")."""
        return self.running.run(db(fn)(*args, **kwargs))

    def command(self, user_id: int, text: str, *, chat_id: int | None = None) -> dict:
        """Send ``text`` as ``user_id`` and return the message the bot answered with (sendMessage's result)."""
        mark = self.tg.mark()
        self.tg.send_text(user_id, text, chat_id=chat_id)
        return self.tg.wait_for_call("sendMessage", after=mark)["result"]

    def press(self, user_id: int, data: str, *, message: dict | None = None, chat_id: int | None = None) -> dict:
        """Tap the button ``data`` (on ``message``, else the latest keyboard) and return the edited message."""
        mark = self.tg.mark()
        self.tg.press(user_id, data=data, message_id=message["message_id"] if message else None, chat_id=chat_id)
        self.tg.wait_for_call("answerCallbackQuery", after=mark)
        return self.tg.wait_for_call("editMessageText", after=mark)["result"]

    def press_answer(self, user_id: int, data: str, *, chat_id: int | None = None, check_button: bool = True) -> dict:
        """Tap the button ``data`` on the latest keyboard and return answerCallbackQuery's parameters."""
        mark = self.tg.mark()
        self.tg.press(user_id, data=data, chat_id=chat_id, check_button=check_button)
        return self.tg.wait_for_call("answerCallbackQuery", after=mark)["params"]


def buttons(message: dict) -> list[str]:
    """The callback data of a message's inline buttons, row by row."""
    markup = message.get("reply_markup") or {}
    return [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]


@pytest.fixture
def telegram(settings):
    """The fake Bot API, with the settings pointed at it."""
    with fake_telegram(token=BOT_TOKEN, bot_username="tvbingx_bot") as tg:
        settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
        settings.TELEGRAM_API_BASE_URL = tg.base_url
        yield tg


@pytest.fixture
def bot(telegram):
    """Our Application (``build_application``) polling the fake."""
    application = build_application(ptb_builder(telegram))
    with running_application(application) as running:
        yield BotUnderTest(tg=telegram, app=application, running=running)
