"""Notifications of real trades: TradingView alerts through the webhook and the dry-run pipeline, then the
fan-out. What a trader's chat would be told, in order."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest

from telegram_bot.models import Notification
from telegram_bot.notifications.fanout import notifications_fanout
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TelegramTraderFactory, TradingAccountFactory
from trading.audit import Actor
from trading.services import account_rotate_webhook_secret

pytestmark = pytest.mark.django_db
K = Notification.Kind
BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}
_alert_ids = itertools.count(1)


@pytest.fixture
def account():
    account = TradingAccountFactory(auto_trade=True, mode="dry_run", name="paper")
    RiskLimitsFactory(account=account)
    SymbolProfileFactory(account=account, symbol="BTC/USDT:USDT", leverage=5, max_leverage=20)
    return account


@pytest.fixture
def send(client, account):
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    def send(**alert) -> None:
        body = {"secret": secret, "alert_id": f"notify-{next(_alert_ids)}", **alert}
        response = client.post("/webhook/tradingview", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.json()

    return send


def told(user) -> list[tuple[str, str]]:
    notifications_fanout()
    return [(row.kind, row.text) for row in Notification.objects.filter(telegram_user=user).order_by("id")]


def test_an_automatic_trade_is_told_as_signal_with_its_risk_decision_then_the_fill(account, send):
    trader = TelegramTraderFactory()

    send(**BUY)

    kinds = [kind for kind, _ in told(trader)]
    assert kinds[0] == K.SIGNAL_RECEIVED
    assert K.ORDER_FILLED in kinds
    [(_, signal_text)] = [item for item in told(trader) if item[0] == K.SIGNAL_RECEIVED]
    assert "Risk checks passed" in signal_text and "Auto-trade · paper" in signal_text


def test_a_closed_trade_is_told_with_its_realized_pnl(account, send):
    trader = TelegramTraderFactory()
    send(**{**BUY, "price": "60000"})
    send(symbol="BTCUSDT", action="close_long", price="61000")

    [closed] = [text for kind, text in told(trader) if kind == K.POSITION_CLOSED]
    assert "BTC/USDT:USDT long closed" in closed
    assert "Realized PnL: <b>+" in closed


def test_a_daily_loss_breach_is_told_as_a_risk_warning_and_the_rejection_with_its_reason(account, send):
    trader = TelegramTraderFactory()
    account.risk_limits.max_daily_loss_usdt = Decimal("50")
    account.risk_limits.save()
    send(**{**BUY, "price": "60000", "size": {"mode": "qty", "value": "0.1"}})
    send(symbol="BTCUSDT", action="close_long", price="59000")  # -100 USDT today

    send(**BUY)

    alerts = [text for kind, text in told(trader) if kind == K.ALERT]
    assert any("Risk limit hit" in text and "daily loss limit" in text for text in alerts)
    [rejection] = [text for kind, text in told(trader) if kind == K.SIGNAL_REJECTED]
    assert "today's loss" in rejection


def test_a_signal_in_manual_mode_brings_traders_the_approval_card(account, send):
    account.auto_trade = False
    account.save(update_fields=["auto_trade"])
    trader = TelegramTraderFactory()

    send(**BUY)

    [card] = [row for row in _rows(trader) if row.kind == K.SIGNAL_CARD]
    assert "Awaiting approval" in card.text
    assert card.reply_markup["inline_keyboard"]


def _rows(user) -> list[Notification]:
    notifications_fanout()
    return list(Notification.objects.filter(telegram_user=user).order_by("id"))
