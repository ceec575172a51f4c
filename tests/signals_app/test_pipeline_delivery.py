"""Delivery under load and failure, with real Celery workers on Redis and PostgreSQL.

- 200 concurrent posts with 50 repeated alert_ids store exactly 150 signals, and two workers process
  each exactly once.
- A broker outage during a burst loses nothing: the signals wait in the database and the sweeper
  delivers them when a worker starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from signals_app.models import Signal
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TradingAccountFactory
from trading.audit import Actor
from trading.models import AuditEvent, Fill, Order
from trading.services import account_rotate_webhook_secret
from tvbingx.celery import app as celery_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTCUSDT.P", "LTCUSDT.P", "SOLUSDT.P")
PRICES = {"BTCUSDT.P": "65000", "LTCUSDT.P": "80", "SOLUSDT.P": "150"}
UNFINISHED = (Signal.Status.RECEIVED, Signal.Status.VALIDATED, Signal.Status.EXECUTING)


@pytest.fixture
def trading_account():
    account = TradingAccountFactory(auto_trade=True)
    RiskLimitsFactory(account=account, max_trades_per_day=1000, max_open_positions=10)
    for symbol in ("BTC/USDT:USDT", "LTC/USDT:USDT", "SOL/USDT:USDT"):
        SymbolProfileFactory(account=account, symbol=symbol, leverage=5, max_leverage=20)
    account.secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    return account


@pytest.fixture
def celery_on(redis_url, settings):
    """Hand-over through Celery on the test Redis; restored afterwards."""
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    settings.SIGNAL_PROCESSING = "celery"
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False)
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    yield celery_app
    celery_app.conf.update(saved)


def _worker_env(redis_url: str) -> dict[str, str]:
    database = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tvbingx.settings",
        "TVBINGX_ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "FIELD_ENCRYPTION_KEYS": os.environ["FIELD_ENCRYPTION_KEYS"],
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/"
            f"{database['NAME']}"
        ),
        "REDIS_URL": redis_url,
        "MARKET_DATA_SOURCE": "snapshot",
        "SIGNAL_SWEEP_AFTER_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def start_workers(redis_url):
    processes: list[subprocess.Popen] = []

    def start(count: int) -> None:
        for number in range(count):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "tvbingx",
                        "worker",
                        "--pool",
                        "solo",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-n",
                        f"w{number}@%h",
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=ROOT,
                    env=_worker_env(redis_url),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _alert(account, number: int) -> str:
    symbol = SYMBOLS[number % len(SYMBOLS)]
    return json.dumps(
        {
            "secret": account.secret,
            "alert_id": f"load-{number}",
            "symbol": symbol,
            "action": "buy",
            "price": PRICES[symbol],
            "size": {"mode": "usdt", "value": "200"},
        }
    )


def _post(body: str) -> int:
    response = Client().post("/webhook/tradingview", body, content_type="application/json")
    connection.close()
    return response.status_code


def _outcomes() -> list:
    return list(Signal.objects.values_list("status", "rejection_reason").distinct())


def _wait_until_processed(timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Signal.objects.filter(status__in=UNFINISHED).exists():
            return
        time.sleep(0.25)
    left = list(Signal.objects.filter(status__in=UNFINISHED).values_list("id", "status"))
    raise AssertionError(f"signals still unprocessed after {timeout} s: {left[:10]}")


def test_a_burst_with_repeats_stores_each_alert_once_and_two_workers_process_each_once(
    trading_account, celery_on, start_workers
):
    start_workers(2)
    bodies = [_alert(trading_account, number) for number in range(150)]
    bodies += [_alert(trading_account, number) for number in range(0, 150, 3)]  # 50 repeated alert_ids

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(_post, bodies))

    assert codes.count(202) == 150 and codes.count(200) == 50
    assert Signal.objects.count() == 150
    _wait_until_processed()
    assert Signal.objects.filter(status=Signal.Status.EXECUTED).count() == 150, _outcomes()
    assert Order.objects.filter(purpose=Order.Purpose.ENTRY).count() == 150
    assert Fill.objects.count() == 150
    # Each signal was validated exactly once: no worker took a signal another one had.
    validated = AuditEvent.objects.filter(action="signal.status", after__status="validated")
    assert validated.count() == 150
    assert len(set(validated.values_list("object_id", flat=True))) == 150


def test_a_broker_outage_during_a_burst_loses_nothing(trading_account, celery_on, start_workers, redis_url):
    celery_app.conf.update(broker_url="redis://127.0.0.1:1/0")  # the broker is down
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(_post, [_alert(trading_account, number) for number in range(30)]))

    assert codes == [202] * 30  # stored and acknowledged although nothing could be queued
    time.sleep(1.5)  # the hand-over attempts fail in the background
    assert Signal.objects.filter(status=Signal.Status.RECEIVED).count() == 30

    celery_app.conf.update(broker_url=redis_url)  # the broker is back; a worker starts and sweeps
    start_workers(1)
    _wait_until_processed()
    assert Signal.objects.filter(status=Signal.Status.EXECUTED).count() == 30
    assert Order.objects.filter(purpose=Order.Purpose.ENTRY).count() == 30
