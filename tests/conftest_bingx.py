"""Fixtures for tests against the fake BingX: the running fake, an account on it, and settings pointing at it.

Imported by the conftest of each test package that trades on BingX.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from tests.fakes.bingx import fake_bingx
from trading.exchange.breaker import breaker_forget_local
from trading.exchange.client import clients_forget
from trading.exchange.clock import clock_forget

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
