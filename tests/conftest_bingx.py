"""Fixtures for tests against the fake BingX: the running fake, an account on it, and settings pointing at it;
and the live account of ours that trades on it, with a webhook sender.

Imported by the conftest of each test package that trades on BingX.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.cache import cache

from signals_app.models import Signal
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TradingAccountFactory
from tests.fakes.bingx import fake_bingx
from trading.audit import Actor
from trading.exchange.breaker import breaker_forget_local
from trading.exchange.client import clients_forget
from trading.exchange.clock import clock_forget
from trading.models import TradingAccount
from trading.services import account_rotate_webhook_secret

KEY, SECRET = "live-key", "live-secret"


@pytest.fixture
def bingx(settings):
    """A running fake BingX with BTC marked at 65,000, and the platform pointed at it with short timeouts."""
    with fake_bingx() as exchange:
        settings.BINGX_BASE_URL = exchange.base_url
        settings.BINGX_WS_URL = exchange.ws_url
        settings.EXCHANGE_TIMEOUT_SECONDS = Decimal("0.5")
        settings.EXCHANGE_RETRY_BACKOFF_SECONDS = Decimal("0.01")
        settings.EXCHANGE_FILL_WAIT_SECONDS = Decimal("1")
        cache.clear()  # clock readings and breaker state of earlier tests
        breaker_forget_local()
        clock_forget()
        exchange.set_mark_price("BTC-USDT", "65000")
        yield exchange
        clients_forget()


@pytest.fixture
def on_bingx(bingx):
    """The account as BingX sees it: 10,000 USDT, one-way mode, keys KEY/SECRET."""
    return bingx.add_account(api_key=KEY, api_secret=SECRET, balance=Decimal("10000"))


BTC = "BTC/USDT:USDT"  # ccxt's unified symbol, as a symbol profile names it
_alert_ids = itertools.count(1)


def live_account_on_bingx(**overrides) -> TradingAccount:
    """A live account with auto-trade on and the keys KEY/SECRET (the on_bingx account), default risk limits,
    trading BTC at 5x isolated. overrides go to the account's factory (name=..., ...)."""
    account = TradingAccountFactory(
        **{"mode": "live", "auto_trade": True, "api_key": KEY, "api_secret": SECRET, **overrides}
    )
    RiskLimitsFactory(account=account)
    SymbolProfileFactory(account=account, symbol=BTC, leverage=5, max_leverage=20, margin_mode="isolated")
    return account


def webhook_sender(client, account, *, prefix: str = "alert") -> Callable[..., Signal]:
    """send(**alert): posts the alert to the webhook with the account's (freshly rotated) secret and a new
    alert_id (prefix-N) unless given, checks the status (expect, 202 by default) and returns the signal."""
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    def send(*, expect: int = 202, alert_id: str | None = None, **alert) -> Signal:
        body = {"secret": secret, "alert_id": alert_id or f"{prefix}-{next(_alert_ids)}", **alert}
        response = client.post("/webhook/tradingview", json.dumps(body), content_type="application/json")
        assert response.status_code == expect, response.json()
        return Signal.objects.get(pk=response.json()["signal_id"])

    return send
