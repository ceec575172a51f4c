"""The one gate: only active whitelisted users get any answer, each only what their role allows, and commands
typed while the bot was down are not acted on."""

from __future__ import annotations

import pytest

from telegram_bot.models import TelegramUser
from tests.factories import (
    PositionFactory,
    TelegramAdminFactory,
    TelegramTraderFactory,
    TelegramUserFactory,
    TelegramViewerFactory,
    TradingAccountFactory,
)
from tests.telegram_bot.conftest import buttons
from trading.models import AuditEvent, Position, TradingAccount

pytestmark = pytest.mark.django_db(transaction=True)

STRANGER = 666
GROUP = -100777


@pytest.fixture
def account():
    return TradingAccountFactory(name="main", auto_trade=False)


def calls_since(bot, mark: int) -> list[tuple[str, str]]:
    """(method, chat) of every call the bot made since ``mark``, long polls left out."""
    return [
        (call["method"], call["params"].get("chat_id", ""))
        for call in bot.tg.calls()
        if call["index"] >= mark and call["method"] != "getUpdates"
    ]


# --- strangers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chat_id", [None, GROUP], ids=["private", "group"])
def test_a_strangers_message_gets_no_call_at_all(chat_id, bot):
    member = TelegramViewerFactory()
    mark = bot.tg.mark()

    bot.tg.send_text(STRANGER, "/start", chat_id=chat_id)
    bot.tg.send_text(STRANGER, "hello", chat_id=chat_id)
    # Updates are handled in order: once a member's command is answered, the stranger's were handled too.
    bot.command(member.telegram_id, "/help")

    assert calls_since(bot, mark) == [("sendMessage", str(member.telegram_id))]


def test_a_strangers_button_press_in_a_group_is_only_answered_not_authorized(account, bot):
    member = TelegramAdminFactory()
    bot.command(member.telegram_id, "/start", chat_id=GROUP)
    screen = bot.press(member.telegram_id, "m:auto", chat_id=GROUP)
    mark = bot.tg.mark()

    answer = bot.press_answer(STRANGER, f"at:{account.pk}:1", chat_id=GROUP)
    bot.command(member.telegram_id, "/help", chat_id=GROUP)

    assert f"at:{account.pk}:1" in buttons(screen)
    assert answer["text"] == "Not authorized" and answer["show_alert"] == "true"
    assert [method for method, _ in calls_since(bot, mark)] == ["answerCallbackQuery", "sendMessage"]
    assert TradingAccount.objects.get(pk=account.pk).auto_trade is False
    assert not AuditEvent.objects.filter(action="tradingaccount.auto_trade").exists()


def test_a_removed_users_press_on_an_old_private_menu_is_only_answered_not_authorized(account, bot):
    former = TelegramAdminFactory()
    member = TelegramViewerFactory()
    bot.command(former.telegram_id, "/start")
    bot.press(former.telegram_id, "m:auto")
    bot.orm(TelegramUser.objects.filter(pk=former.pk).update, is_active=False)
    mark = bot.tg.mark()

    answer = bot.press_answer(former.telegram_id, f"at:{account.pk}:1")
    bot.command(member.telegram_id, "/help")

    assert answer["text"] == "Not authorized"
    assert [method for method, _ in calls_since(bot, mark)] == ["answerCallbackQuery", "sendMessage"]
    assert TradingAccount.objects.get(pk=account.pk).auto_trade is False


def test_a_deactivated_user_is_a_stranger(bot):
    gone = TelegramAdminFactory(is_active=False)
    member = TelegramViewerFactory()
    mark = bot.tg.mark()

    bot.tg.send_text(gone.telegram_id, "/start")
    bot.command(member.telegram_id, "/help")

    assert calls_since(bot, mark) == [("sendMessage", str(member.telegram_id))]


def test_a_member_is_recognised_by_telegram_id_and_last_seen_is_recorded(bot):
    member = TelegramUserFactory(role=TelegramUser.Role.TRADER)
    assert member.last_seen_at is None

    bot.command(member.telegram_id, "/start")

    member.refresh_from_db()
    assert member.last_seen_at is not None


# --- stale commands -----------------------------------------------------------------------------------


def test_a_command_older_than_60_seconds_is_ignored(account, bot):
    admin = TelegramAdminFactory()
    mark = bot.tg.mark()
    with bot.tg.state.lock:  # age it before the bot's long poll can fetch it
        bot.tg.send_text(admin.telegram_id, "/botstop")
        bot.tg.state.updates[-1]["message"]["date"] -= 61

    bot.command(admin.telegram_id, "/help")

    assert calls_since(bot, mark) == [("sendMessage", str(admin.telegram_id))]
    assert TradingAccount.objects.get(pk=account.pk).trading_enabled is True


def test_a_command_younger_than_60_seconds_is_answered(account, bot):
    admin = TelegramAdminFactory()
    with bot.tg.state.lock:
        bot.tg.send_text(admin.telegram_id, "/botstop")
        bot.tg.state.updates[-1]["message"]["date"] -= 50
    mark = bot.tg.mark()

    bot.tg.wait_for_call("sendMessage", after=mark)

    assert TradingAccount.objects.get(pk=account.pk).trading_enabled is False


# --- roles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [TelegramViewerFactory, TelegramTraderFactory], ids=["viewer", "trader"])
def test_only_an_admin_switches_auto_trade(account, factory, bot):
    user = factory()
    bot.command(user.telegram_id, "/start")
    bot.press(user.telegram_id, "m:auto")

    answer = bot.press_answer(user.telegram_id, f"at:{account.pk}:1", check_button=False)

    assert answer["text"] == "Only admins can change this." and answer["show_alert"] == "true"
    assert TradingAccount.objects.get(pk=account.pk).auto_trade is False


@pytest.mark.parametrize("factory", [TelegramViewerFactory, TelegramTraderFactory], ids=["viewer", "trader"])
@pytest.mark.parametrize("command", ["/botstop", "/auto on"])
def test_only_an_admin_uses_the_kill_switch_and_auto_commands(account, factory, command, bot):
    user = factory()

    reply = bot.command(user.telegram_id, command)

    assert reply["text"] == "Only admins can change this."
    account.refresh_from_db()
    assert (account.trading_enabled, account.auto_trade) == (True, False)


def test_a_viewer_cannot_press_the_kill_switch_button(account, bot):
    viewer = TelegramViewerFactory()
    bot.command(viewer.telegram_id, "/start")

    answer = bot.press_answer(viewer.telegram_id, "ks:1", check_button=False)

    assert answer["text"] == "Only admins can change this."
    assert TradingAccount.objects.get(pk=account.pk).trading_enabled is True


def test_a_viewer_sees_positions_without_close_buttons_and_cannot_close(account, bot):
    viewer = TelegramViewerFactory()
    position = PositionFactory(account=account)

    listing = bot.command(viewer.telegram_id, "/positions")
    refused = bot.command(viewer.telegram_id, "/close BTCUSDT")
    answer = bot.press_answer(viewer.telegram_id, f"cl:ok:{position.pk}", check_button=False)

    assert "BTC/USDT:USDT LONG 0.01 on main" in listing["text"]
    assert buttons(listing) == ["m:home"]
    assert refused["text"] == "Only traders and admins can close positions."
    assert answer["text"] == "Only traders and admins can close positions."
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN


def test_a_trader_sees_close_buttons(account, bot):
    trader = TelegramTraderFactory()
    position = PositionFactory(account=account)

    listing = bot.command(trader.telegram_id, "/positions")

    assert buttons(listing) == [f"cl:{position.pk}", "m:home"]
