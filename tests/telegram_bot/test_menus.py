"""The main menu and its screens, driven as a user would through the fake Telegram."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from signals_app.models import Signal
from telegram_bot.callbacks import cb
from tests.factories import (
    BalanceSnapshotFactory,
    FillFactory,
    OrderFactory,
    PositionFactory,
    SignalFactory,
    TelegramAdminFactory,
    TelegramViewerFactory,
    TradingAccountFactory,
)
from tests.telegram_bot.conftest import buttons
from trading.models import AuditEvent, Order, Position, TradingAccount

pytestmark = pytest.mark.django_db(transaction=True)

MAIN_MENU = ["m:auto", "m:man", "lev:go", "m:rep", "m:st", "m:help"]


@pytest.fixture
def viewer():
    return TelegramViewerFactory(username="vera")


@pytest.fixture
def admin():
    return TelegramAdminFactory(username="ada")


@pytest.fixture
def account():
    return TradingAccountFactory(name="main", auto_trade=False)


# --- main menu ----------------------------------------------------------------------------------------


def test_start_shows_the_main_menu_with_each_accounts_state(viewer, account, bot):
    menu = bot.command(viewer.telegram_id, "/start")

    assert buttons(menu) == MAIN_MENU
    assert "@vera (viewer)" in menu["text"]
    assert "main: dry run · manual · trading" in menu["text"]


def test_the_menu_button_comes_back_to_the_main_menu(viewer, account, bot):
    bot.command(viewer.telegram_id, "/help")

    menu = bot.press(viewer.telegram_id, "m:home")

    assert buttons(menu) == MAIN_MENU


def test_the_main_menu_works_in_a_group_chat(viewer, account, bot):
    menu = bot.command(viewer.telegram_id, "/start@tvbingx_bot", chat_id=-100123)

    assert menu["chat"]["id"] == -100123
    assert buttons(menu) == MAIN_MENU


def test_callback_data_longer_than_64_bytes_is_refused_in_our_code():
    assert cb("sig", "ed", "sl", 9223372036854775807) == "sig:ed:sl:9223372036854775807"
    with pytest.raises(ValueError, match="1..64 bytes"):
        cb("lev", "sym", "X" * 60)
    with pytest.raises(ValueError, match="ASCII"):
        cb("lev", "sym", "€")


# --- Auto-Trade ---------------------------------------------------------------------------------------


def test_an_admin_switches_auto_trade_on_and_off_from_the_auto_trade_screen(admin, account, bot):
    bot.command(admin.telegram_id, "/start")
    screen = bot.press(admin.telegram_id, "m:auto")
    assert f"at:{account.pk}:1" in buttons(screen)

    screen = bot.press(admin.telegram_id, f"at:{account.pk}:1")

    account.refresh_from_db()
    assert account.auto_trade is True
    assert "main: dry run · auto · trading" in screen["text"]
    assert f"at:{account.pk}:0" in buttons(screen)
    event = AuditEvent.objects.get(action="tradingaccount.auto_trade")
    assert (event.actor_type, event.actor_id, event.actor_label) == ("telegram", str(admin.telegram_id), "ada")
    assert (event.before, event.after) == ({"auto_trade": False}, {"auto_trade": True})

    bot.press(admin.telegram_id, f"at:{account.pk}:0")
    account.refresh_from_db()
    assert account.auto_trade is False


def test_a_repeated_auto_trade_tap_changes_nothing_more(admin, account, bot):
    bot.command(admin.telegram_id, "/start")
    first = bot.press(admin.telegram_id, "m:auto")
    bot.press(admin.telegram_id, f"at:{account.pk}:1", message=first)

    mark = bot.tg.mark()
    bot.tg.press(admin.telegram_id, data=f"at:{account.pk}:1", message_id=first["message_id"], check_button=False)
    bot.tg.wait_for_call("answerCallbackQuery", after=mark)
    bot.tg.wait_for_call("editMessageText", after=mark)

    assert TradingAccount.objects.get(pk=account.pk).auto_trade is True
    assert AuditEvent.objects.filter(action="tradingaccount.auto_trade").count() == 1


def test_a_viewer_sees_the_auto_trade_screen_without_switches(viewer, account, bot):
    bot.command(viewer.telegram_id, "/start")

    screen = bot.press(viewer.telegram_id, "m:auto")

    assert buttons(screen) == ["m:auto", "m:home"]
    assert "Only admins can change these." in screen["text"]


def test_auto_command_switches_every_active_account(admin, account, bot):
    other = TradingAccountFactory(name="second", auto_trade=False)
    TradingAccountFactory(name="retired", auto_trade=False, is_active=False)

    reply = bot.command(admin.telegram_id, "/auto on")

    assert "Auto-trade ON: main, second." in reply["text"]
    assert list(TradingAccount.objects.filter(auto_trade=True).values_list("name", flat=True)) == ["main", "second"]
    other.refresh_from_db()
    assert other.auto_trade is True


def test_auto_command_switches_one_named_account(admin, account, bot):
    TradingAccountFactory(name="second", auto_trade=True)

    reply = bot.command(admin.telegram_id, "/auto off second")

    assert "Auto-trade OFF: second." in reply["text"]
    assert dict(TradingAccount.objects.values_list("name", "auto_trade")) == {"main": False, "second": False}


@pytest.mark.parametrize("text", ["/auto", "/auto maybe", "/auto on main extra"])
def test_auto_command_explains_its_usage(admin, account, text, bot):
    reply = bot.command(admin.telegram_id, text)

    assert reply["text"].startswith("Usage: /auto on|off [ACCOUNT]")
    assert TradingAccount.objects.get(pk=account.pk).auto_trade is False


def test_auto_command_names_an_unknown_account(admin, account, bot):
    reply = bot.command(admin.telegram_id, "/auto on nosuch")

    assert "No active account named nosuch." in reply["text"]


# --- Manual -------------------------------------------------------------------------------------------


def test_manual_lists_the_signals_awaiting_confirmation_with_a_button_each(viewer, account, bot):
    expires = timezone.now() + timedelta(minutes=5)
    waiting = SignalFactory(
        account=account, status=Signal.Status.AWAITING_CONFIRMATION, confirmation_expires_at=expires
    )
    SignalFactory(account=account, status=Signal.Status.EXECUTED)
    bot.command(viewer.telegram_id, "/start")

    screen = bot.press(viewer.telegram_id, "m:man")

    assert buttons(screen) == [f"sig:v:{waiting.pk}", "m:man", "m:home"]
    assert f"#{waiting.pk} BTC/USDT:USDT buy on main" in screen["text"]
    assert f"expires {expires:%H:%M:%S} UTC" in screen["text"]


def test_manual_says_when_nothing_is_waiting(viewer, account, bot):
    bot.command(viewer.telegram_id, "/start")

    screen = bot.press(viewer.telegram_id, "m:man")

    assert "No signal is waiting for confirmation." in screen["text"]


# --- Status -------------------------------------------------------------------------------------------


@pytest.fixture
def trading_day(account):
    """An open BTC long with its stop and take-profit, a balance, and one winning and one losing close today."""
    BalanceSnapshotFactory(account=account, equity=Decimal("1012.5"), available=Decimal("870"))
    PositionFactory(
        account=account,
        mark_price=Decimal("65500"),
        unrealized_pnl=Decimal("5"),
        liquidation_price=Decimal("52000"),
    )
    common = {"account": account, "symbol": "BTC/USDT:USDT", "side": "sell", "reduce_only": True}
    OrderFactory(**common, purpose=Order.Purpose.STOP_LOSS, trigger_price=Decimal("64000"), status="open")
    OrderFactory(**common, purpose="take_profit_1", trigger_price=Decimal("67000"), status="open")
    now = timezone.now()
    for pnl in (Decimal("20"), Decimal("-5")):
        PositionFactory(account=account, status=Position.Status.CLOSED, closed_at=now, realized_pnl=pnl, qty=0)
        FillFactory(order=OrderFactory(account=account, status="filled"), realized_pnl=pnl, fee=Decimal("0.5"))
    return account


def test_status_shows_mode_balance_positions_orders_pnl_and_health(viewer, trading_day, bot):
    screen = bot.command(viewer.telegram_id, "/status")

    text = screen["text"]
    assert "main — dry run · manual" in text
    assert "Equity 1012.5 USDT · available 870" in text
    assert "Today: net PnL +14.00 USDT · hit rate 50.0% (1/2)" in text
    assert "Exchange: n/a · stream: n/a" in text
    assert (
        "• BTC/USDT:USDT LONG 0.01 · entry 65000 · mark 65500 · uPnL 5 (3.85%) · 5x isolated · SL 64000 · "
        "TP 67000 · liq 52000" in text
    )
    assert "Open orders: 2" in text
    assert "Updated " in text and text.rstrip().endswith("UTC")
    assert buttons(screen) == ["st:r", "m:home"]


def test_status_refresh_edits_the_message_and_shows_the_kill_switch(viewer, account, bot):
    screen = bot.command(viewer.telegram_id, "/status")
    bot.orm(TradingAccount.objects.filter(pk=account.pk).update, trading_enabled=False)

    refreshed = bot.press(viewer.telegram_id, "st:r", message=screen)

    assert refreshed["message_id"] == screen["message_id"]
    assert "STOPPED (kill switch)" in refreshed["text"]


def test_status_from_the_menu(viewer, account, bot):
    bot.command(viewer.telegram_id, "/start")

    screen = bot.press(viewer.telegram_id, "m:st")

    assert "<b>" not in screen["text"] and "main — dry run" in screen["text"]


def test_a_refresh_that_changes_nothing_is_still_answered(viewer, account, bot):
    bot.command(viewer.telegram_id, "/start")
    screen = bot.press(viewer.telegram_id, "m:help")
    mark = bot.tg.mark()

    bot.tg.press(viewer.telegram_id, data="m:help", message_id=screen["message_id"], check_button=False)

    edit = bot.tg.wait_for_call("editMessageText", after=mark)
    assert "message is not modified" in edit["error"]["description"]
    assert bot.tg.wait_for_call("answerCallbackQuery", after=mark)["status"] == 200
    bot.command(viewer.telegram_id, "/start")  # processed after the tap: any error reply would come before it
    assert [c["params"]["text"][:12] for c in bot.tg.calls("sendMessage") if c["index"] >= mark] == ["<b>TVBingX</"]


# --- Reports ------------------------------------------------------------------------------------------


def test_reports_show_todays_pnl_volume_and_hit_rate_and_say_files_come_later(viewer, trading_day, bot):
    bot.command(viewer.telegram_id, "/start")

    screen = bot.press(viewer.telegram_id, "m:rep")

    text = screen["text"]
    assert text.startswith("Report: Today")
    assert "Net PnL +14.00 USDT (realized +15.00, fees 1)" in text
    assert "Volume 1,300.01 USDT in 2 fill(s)" in text
    assert "Hit rate: 50.0% (1 of 2 closed positions in profit)" in text
    assert "CSV and PDF files come with the reports feature" in text
    assert buttons(screen) == ["rep:w", "rep:d", "m:home"]


def test_the_weekly_report_counts_the_last_seven_days(viewer, trading_day, bot):
    eight_days_ago = timezone.now() - timedelta(days=8)
    FillFactory(order=OrderFactory(account=trading_day, status="filled"), executed_at=eight_days_ago)
    three_days_ago = timezone.now() - timedelta(days=3)
    FillFactory(order=OrderFactory(account=trading_day, status="filled"), executed_at=three_days_ago, realized_pnl=100)
    bot.command(viewer.telegram_id, "/start")
    bot.press(viewer.telegram_id, "m:rep")

    screen = bot.press(viewer.telegram_id, "rep:w")

    assert screen["text"].startswith("Report: Last 7 days")
    assert "in 3 fill(s)" in screen["text"]
    assert "realized +115.00" in screen["text"]


@pytest.mark.parametrize(("text", "title"), [("/report", "Today"), ("/report week", "Last 7 days")])
def test_report_command(viewer, account, text, title, bot):
    assert bot.command(viewer.telegram_id, text)["text"].startswith(f"Report: {title}")


# --- Help ---------------------------------------------------------------------------------------------


def test_help_lists_every_command_and_the_faq(viewer, bot):
    screen = bot.command(viewer.telegram_id, "/help")

    for command in ("start", "status", "positions", "close", "report", "auto", "botstop", "botstart", "help"):
        assert f"/{command} — " in screen["text"]
    assert "FAQ" in screen["text"]
    assert buttons(screen) == ["m:home"]


# --- long texts and failures --------------------------------------------------------------------------


def test_a_status_too_long_for_one_message_is_split_and_a_refresh_is_cut(viewer, account, bot):
    for number in range(60):
        PositionFactory(account=account, symbol=f"COIN{number}/USDT:USDT", mark_price=Decimal("1"))
    mark = bot.tg.mark()
    bot.tg.send_text(viewer.telegram_id, "/status")

    bot.tg.wait_for_call("sendMessage", lambda call: "Updated" in call["params"]["text"], after=mark)
    pieces = [call["params"] for call in bot.tg.calls("sendMessage") if call["index"] >= mark]
    assert len(pieces) >= 2
    assert all(len(piece["text"]) <= 4096 for piece in pieces)
    assert [("reply_markup" in piece) for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(f"COIN{number}/USDT:USDT LONG" in "".join(p["text"] for p in pieces) for number in range(60))

    refreshed = bot.press(viewer.telegram_id, "st:r")
    assert len(refreshed["text"]) <= 4096
    assert refreshed["text"].endswith("(cut: too long for one message)")


def test_a_failing_screen_tells_the_user_instead_of_going_silent(viewer, account, bot):
    bot.command(viewer.telegram_id, "/start")
    bot.tg.fail_next("editMessageText", status=400, description="Bad Request: something unexpected")
    mark = bot.tg.mark()

    bot.tg.press(viewer.telegram_id, data="m:st")

    apology = bot.tg.wait_for_call("sendMessage", after=mark)
    assert apology["params"]["text"] == "Something went wrong; it is logged. Please try again."
    assert bot.tg.calls("answerCallbackQuery")[-1]["status"] == 200


@pytest.mark.parametrize("text", ["/report month", "/report day week"])
def test_report_command_explains_its_usage(viewer, text, bot):
    assert bot.command(viewer.telegram_id, text)["text"] == "Usage: /report [day|week]"
