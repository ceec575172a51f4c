"""Hand-over of stored signals: coalesced per lane, after commit, never blocking the webhook.

A lane waiting for a hand-over is not queued again; a signal committed once its lane's hand-over has
started gets a new one. The broker is replaced by a recorder, so the tests see every publish.
"""

from __future__ import annotations

import threading

import pytest

from signals_app import dispatch
from signals_app.dispatch import LaneDispatcher, lanes_wait_idle
from signals_app.models import Signal
from signals_app.pipeline import signal_lane_process
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TradingAccountFactory
from trading.audit import Actor
from trading.services import account_rotate_webhook_secret

WEBHOOK = "/webhook/tradingview"


class HandOvers:
    """Records hand-overs in place of the broker; `hold()` keeps the next one running until `release()`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.started = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self.fail = False

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, mode: str, account_id: int, symbol: str) -> None:
        self.calls.append((mode, account_id, symbol))
        self.started.set()
        self._gate.wait(10)
        if self.fail:
            raise ConnectionError("broker down")


@pytest.fixture
def hand_overs(monkeypatch):
    recorder = HandOvers()
    monkeypatch.setattr(dispatch, "_hand_over", recorder)
    yield recorder
    recorder.release()


def test_a_lane_waiting_for_its_hand_over_is_not_queued_again(hand_overs):
    dispatcher = LaneDispatcher(mode="celery", workers=1)
    hand_overs.hold()
    dispatcher.submit([(1, "BTC-USDT")])
    assert hand_overs.started.wait(5)  # the first hand-over has started (and is held)

    for _ in range(50):  # signals committed after that start: one more hand-over covers them all
        dispatcher.submit([(1, "BTC-USDT")])
    hand_overs.release()

    assert dispatcher.wait_idle(5)
    assert hand_overs.calls == [("celery", 1, "BTC-USDT")] * 2


def test_a_signal_committed_after_its_lanes_hand_over_started_gets_a_new_one(hand_overs):
    dispatcher = LaneDispatcher(mode="celery", workers=1)
    dispatcher.submit([(1, "BTC-USDT")])
    assert dispatcher.wait_idle(5)

    dispatcher.submit([(1, "BTC-USDT")])

    assert dispatcher.wait_idle(5)
    assert len(hand_overs.calls) == 2


def test_each_lane_gets_its_own_hand_over_in_arrival_order(hand_overs):
    dispatcher = LaneDispatcher(mode="celery", workers=1)
    hand_overs.hold()
    dispatcher.submit([(1, "BTC-USDT")])
    assert hand_overs.started.wait(5)
    dispatcher.submit([(1, "SOL-USDT"), (2, "BTC-USDT"), (1, "SOL-USDT")])
    hand_overs.release()

    assert dispatcher.wait_idle(5)
    assert [call[1:] for call in hand_overs.calls] == [(1, "BTC-USDT"), (1, "SOL-USDT"), (2, "BTC-USDT")]


def test_a_lane_is_handed_over_at_most_once_per_interval(hand_overs):
    dispatcher = LaneDispatcher(mode="celery", workers=1, lane_interval=0.2)
    dispatcher.submit([(1, "BTC-USDT")])
    assert dispatcher.wait_idle(5)
    dispatcher.submit([(1, "BTC-USDT")])  # within the interval: waits for it, other lanes do not
    dispatcher.submit([(2, "BTC-USDT")])

    assert dispatcher.wait_idle(5)
    assert [call[1:] for call in hand_overs.calls] == [(1, "BTC-USDT"), (2, "BTC-USDT"), (1, "BTC-USDT")]


def test_a_failed_hand_over_does_not_stop_the_dispatcher(hand_overs):
    dispatcher = LaneDispatcher(mode="celery", workers=1)
    hand_overs.fail = True
    dispatcher.submit([(1, "BTC-USDT")])
    assert dispatcher.wait_idle(5)
    hand_overs.fail = False

    dispatcher.submit([(1, "BTC-USDT")])

    assert dispatcher.wait_idle(5)
    assert len(hand_overs.calls) == 2


def test_a_broker_error_is_logged_and_left_to_the_sweeper(settings, monkeypatch, caplog):
    from signals_app.tasks import signal_lane_process_task

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(signal_lane_process_task, "delay", broker_down)
    dispatcher = LaneDispatcher(mode="celery", workers=1)

    dispatcher.submit([(1, "BTC-USDT")])

    assert dispatcher.wait_idle(5)
    assert "the sweeper will" in caplog.text


@pytest.mark.django_db
def test_inline_mode_processes_before_returning(client, settings):
    account = TradingAccountFactory(auto_trade=True)
    RiskLimitsFactory(account=account)
    SymbolProfileFactory(account=account, symbol="BTC/USDT:USDT")
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    assert settings.SIGNAL_PROCESSING == "inline"

    response = client.post(
        WEBHOOK, {"secret": secret, "symbol": "BTCUSDT.P", "action": "buy", "price": "65000"}, "application/json"
    )

    assert response.status_code == 202
    assert Signal.objects.get().status != Signal.Status.RECEIVED


@pytest.mark.django_db
def test_a_burst_on_one_lane_is_handed_over_once_and_every_signal_is_processed(client, settings, monkeypatch):
    """Many alerts committed while their lane's first hand-over runs: one more publish, all processed."""
    from signals_app.tasks import signal_lane_process_task

    account = TradingAccountFactory(auto_trade=True)
    RiskLimitsFactory(account=account, max_trades_per_day=1000, max_open_positions=10)
    SymbolProfileFactory(account=account, symbol="BTC/USDT:USDT", leverage=5, max_leverage=20)
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    published: list[tuple[int, str]] = []
    first_started, release = threading.Event(), threading.Event()

    def publish(account_id: int, symbol: str) -> None:  # stands in for the broker
        published.append((account_id, symbol))
        first_started.set()
        release.wait(10)

    monkeypatch.setattr(signal_lane_process_task, "delay", publish)
    monkeypatch.setattr(dispatch, "_dispatchers", dispatch._dispatchers_new())
    settings.SIGNAL_PROCESSING = "celery"

    def post(number: int) -> int:
        body = {"secret": secret, "alert_id": f"burst-{number}", "symbol": "BTCUSDT.P", "action": "buy"}
        return client.post(WEBHOOK, {**body, "price": "65000"}, "application/json").status_code

    assert post(0) == 202
    assert first_started.wait(5)
    codes = [post(number) for number in range(1, 30)]
    release.set()
    assert lanes_wait_idle(5)

    assert codes == [202] * 29
    assert published == [(account.pk, "BTC/USDT:USDT")] * 2
    for account_id, symbol in published:  # what the workers would do with each published task
        signal_lane_process(account_id=account_id, symbol=symbol)
    assert not Signal.objects.filter(status=Signal.Status.RECEIVED).exists()
    assert Signal.objects.count() == 30
