"""The bot under test: a fake Telegram Bot API on loopback and our real ``Application`` polling it.

Tests talk to the bot as a user would (``bot.tg.send_text``, ``bot.tg.press``) and assert on the calls the bot
made (``bot.tg.wait_for_call``, ``bot.tg.calls``). Tests that use ``bot`` and the database need
``@pytest.mark.django_db(transaction=True)``: the bot writes from its own thread, outside the test's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from telegram.ext import Application

from telegram_bot.app import build_application
from tests.fakes.telegram import FakeTelegram, fake_telegram
from tests.fakes.telegram.ptb import RunningApplication, ptb_builder, running_application

BOT_TOKEN = "123456:TEST"


@dataclass
class BotUnderTest:
    tg: FakeTelegram
    app: Application
    running: RunningApplication


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
