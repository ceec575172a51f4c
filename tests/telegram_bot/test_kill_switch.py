"""/botstop and /botstart: no new entries on any account, exits still allowed, and it outlives the bot."""

from __future__ import annotations

import itertools
import json

import pytest

from signals_app.models import Signal
from telegram_bot.app import build_application
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TelegramAdminFactory, TradingAccountFactory
from tests.fakes.telegram.ptb import ptb_builder, running_application
from trading.audit import Actor
from trading.models import AuditEvent, Position, TradingAccount
from trading.services import account_rotate_webhook_secret

pytestmark = pytest.mark.django_db(transaction=True)

BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}
_alert_ids = itertools.count(1)


@pytest.fixture
def account():
    """A dry-run account trading BTC automatically."""
    account = TradingAccountFactory(name="main", auto_trade=True, mode="dry_run")
    RiskLimitsFactory(account=account)
    SymbolProfileFactory(account=account, symbol="BTC/USDT:USDT", leverage=5, max_leverage=20)
    return account


@pytest.fixture
def send(client, account):
    """Post a TradingView alert to the webhook; returns the signal as the pipeline left it."""
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    def send(**alert) -> Signal:
        body = {"secret": secret, "alert_id": f"kill-{next(_alert_ids)}", **alert}
        response = client.post("/webhook/tradingview", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.json()
        return Signal.objects.get(pk=response.json()["signal_id"])

    return send


def command(tg, user_id: int, text: str) -> dict:
    mark = tg.mark()
    tg.send_text(user_id, text)
    return tg.wait_for_call("sendMessage", after=mark)["result"]


def test_the_kill_switch_survives_a_restart_blocks_entries_and_lets_exits_through(telegram, account, send):
    admin = TelegramAdminFactory(username="ada")
    second = TradingAccountFactory(name="second")
    assert send(**BUY).status == Signal.Status.EXECUTED  # a long open before the stop

    with running_application(build_application(ptb_builder(telegram))):
        reply = command(telegram, admin.telegram_id, "/botstop")
    assert "Kill switch ON: no new entries (exits still allowed) on: main, second." in reply["text"]

    with running_application(build_application(ptb_builder(telegram))):  # the bot restarted
        status = command(telegram, admin.telegram_id, "/status")
    assert status["text"].count("STOPPED (kill switch)") == 2
    assert list(TradingAccount.objects.values_list("trading_enabled", flat=True)) == [False, False]

    entry = send(**{**BUY, "symbol": "BINANCE:BTCUSDT.P"})
    assert entry.status == Signal.Status.REJECTED
    assert "kill switch" in entry.rejection_reason
    exit_ = send(symbol="BTCUSDT", action="close_long", price="66000")
    assert exit_.status == Signal.Status.EXECUTED
    assert Position.objects.get(account=account).status == Position.Status.CLOSED

    events = AuditEvent.objects.filter(action="tradingaccount.kill_switch").order_by("object_id")
    assert [(e.actor_type, e.actor_id, e.before, e.after) for e in events] == [
        ("telegram", str(admin.telegram_id), {"trading_enabled": True}, {"trading_enabled": False})
    ] * 2
    assert {e.object_id for e in events} == {str(account.pk), str(second.pk)}


def test_botstart_allows_entries_again(telegram, account, send):
    admin = TelegramAdminFactory()
    with running_application(build_application(ptb_builder(telegram))):
        command(telegram, admin.telegram_id, "/botstop")
        reply = command(telegram, admin.telegram_id, "/botstart")

    assert "Trading resumed on: main." in reply["text"]
    assert send(**BUY).status == Signal.Status.EXECUTED
    assert AuditEvent.objects.filter(action="tradingaccount.trading_enabled", actor_type="telegram").count() == 1


def test_a_second_botstop_says_it_was_already_on(account, bot):
    admin = TelegramAdminFactory()
    bot.command(admin.telegram_id, "/botstop")

    reply = bot.command(admin.telegram_id, "/botstop")

    assert reply["text"].startswith("The kill switch was already on.")
    assert AuditEvent.objects.filter(action="tradingaccount.kill_switch").count() == 1


def test_the_kill_switch_buttons_on_the_auto_trade_screen(account, bot):
    admin = TelegramAdminFactory()
    bot.command(admin.telegram_id, "/start")
    bot.press(admin.telegram_id, "m:auto")

    stopped = bot.press(admin.telegram_id, "ks:1")
    assert TradingAccount.objects.get(pk=account.pk).trading_enabled is False
    assert "ks:0" in [b["callback_data"] for row in stopped["reply_markup"]["inline_keyboard"] for b in row]

    bot.press(admin.telegram_id, "ks:0")
    assert TradingAccount.objects.get(pk=account.pk).trading_enabled is True
