"""The main menu and its screens, driven as a user would through the fake Telegram."""

from __future__ import annotations

import pytest

from tests.factories import TelegramViewerFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db(transaction=True)


def buttons(message: dict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]


def test_start_shows_the_main_menu(bot):
    user = TelegramViewerFactory(username="alice")
    TradingAccountFactory(name="main", auto_trade=False)
    mark = bot.tg.mark()

    bot.tg.send_text(user.telegram_id, "/start")

    sent = bot.tg.wait_for_call("sendMessage", after=mark)["result"]
    assert buttons(sent) == ["m:auto", "m:man", "lev:go", "m:rep", "m:st", "m:help"]
    assert "@alice (viewer)" in sent["text"]
    assert "main" in sent["text"] and "manual" in sent["text"]
