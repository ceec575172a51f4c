"""Operating BingX accounts: management commands, the admin's sync action, and the signal actions beyond
entries (cancel, update SL/TP, manual approval), and sub-accounts kept apart. All against the fake BingX."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signals_app.models import Signal
from signals_app.pipeline import signal_approve
from tests.admin_helpers import admin_url
from tests.conftest_bingx import live_account_on_bingx, webhook_sender
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TradingAccountFactory
from tests.fakes.bingx import Fault
from trading.audit import Actor
from trading.models import BalanceSnapshot, Order, Position, SymbolProfile

pytestmark = pytest.mark.django_db

BTC = "BTC/USDT:USDT"
BUY = {"symbol": "BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}


@pytest.fixture
def account(on_bingx):
    return live_account_on_bingx(name="main")


def sender(client, account):
    return webhook_sender(client, account, prefix="ops")


@pytest.fixture
def send(client, account):
    return sender(client, account)


# --- commands ----------------------------------------------------------------------------------------


def test_exchange_status_prints_reachability_clock_and_balance_per_account(account, bingx):
    bingx.set_clock_offset_ms(1_500)
    out = StringIO()

    call_command("exchange_status", stdout=out)

    [header, rule, row] = out.getvalue().splitlines()
    assert header.split()[:4] == ["account", "mode", "endpoint", "reachable"]
    assert row.split()[:4] == ["main", "live", bingx.base_url + "/openApi", "yes"]
    offset = int(re.search(r"([+-]\d+) ms", row).group(1))
    assert 1_400 <= offset <= 1_600
    assert "10000" in row


def test_exchange_status_fails_naming_the_account_that_cannot_be_read(account, bingx):
    bingx.fault("GET", "/openApi/swap/v2/server/time", Fault.http_error(status=503), times=None)
    out = StringIO()

    with pytest.raises(CommandError, match="1 account"):
        call_command("exchange_status", stdout=out)
    assert "no: " in out.getvalue()


def test_sync_symbol_settings_sets_each_enabled_profile_on_bingx(account, on_bingx):
    out = StringIO()

    call_command("sync_symbol_settings", stdout=out)

    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT")) == ("isolated", 5)
    assert "BTC/USDT:USDT: isolated, 5x" in out.getvalue()
    profile = SymbolProfile.objects.get()
    assert profile.last_sync_ok is True and profile.last_synced_at is not None


def test_sync_symbol_settings_also_sets_the_position_mode(account, on_bingx):
    account.position_mode = "hedge"
    account.save(update_fields=["position_mode"])

    call_command("sync_symbol_settings", stdout=StringIO())

    assert on_bingx.hedge is True
    assert (on_bingx.leverage("BTC-USDT", "LONG"), on_bingx.leverage("BTC-USDT", "SHORT")) == (5, 5)


def test_sync_symbol_settings_reports_a_refusal_and_fails(account, bingx):
    bingx.fault("POST", "/openApi/swap/v2/trade/leverage", Fault.error(109400, "leverage refused"))
    out = StringIO()

    with pytest.raises(CommandError, match="1 step"):
        call_command("sync_symbol_settings", stdout=out)
    assert "FAILED" in out.getvalue() and "leverage refused" in out.getvalue()


def test_place_order_sends_after_yes_and_shows_the_result(account, on_bingx):
    out = StringIO()

    call_command(
        "place_order",
        "--account",
        "main",
        "--symbol",
        "BTCUSDT",
        "--side",
        "buy",
        "--qty",
        "0.01234",
        "--yes",
        stdout=out,
    )

    [placed] = on_bingx.orders
    assert (placed.side, placed.qty, placed.status) == ("BUY", Decimal("0.0123"), "FILLED")  # rounded down
    order = Order.objects.get()
    assert (order.status, order.client_order_id) == ("filled", placed.client_order_id)
    assert "filled" in out.getvalue()
    assert Position.objects.get().qty == Decimal("0.0123")


def test_place_order_sends_nothing_unless_confirmed(account, on_bingx, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")

    with pytest.raises(CommandError, match="not sent"):
        call_command("place_order", "--account", "main", "--symbol", "BTCUSDT", "--side", "buy", "--qty", "0.01")
    assert on_bingx.orders == []


def test_place_order_refuses_a_dry_run_account(account):
    account.mode = "dry_run"
    account.save(update_fields=["mode"])

    with pytest.raises(CommandError, match="dry-run"):
        call_command(
            "place_order", "--account", "main", "--symbol", "BTCUSDT", "--side", "buy", "--qty", "0.01", "--yes"
        )


# --- admin ---------------------------------------------------------------------------------------------


def test_the_admin_action_syncs_margin_and_leverage_and_says_what_bingx_has(staff_client, account, on_bingx):
    profile = SymbolProfile.objects.get()

    response = staff_client.post(
        admin_url(SymbolProfile, "changelist"),
        {"action": "sync_to_bingx", "_selected_action": [profile.pk]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert any("isolated, 5x" in message for message in messages)
    assert on_bingx.margin_mode("BTC-USDT") == "isolated"


# --- signal actions on BingX ------------------------------------------------------------------------------


def test_a_cancel_signal_cancels_resting_entries_on_bingx_but_keeps_protection(send, on_bingx):
    send(**BUY, sl={"pct": "2"})
    send(**{**BUY, "order_type": "limit", "price": "60000"})

    signal = send(symbol="BTCUSDT.P", action="cancel")

    assert signal.status == Signal.Status.EXECUTED, signal.rejection_reason
    statuses = {order.type: order.status for order in on_bingx.orders}
    assert statuses == {"MARKET": "FILLED", "STOP_MARKET": "NEW", "LIMIT": "CANCELLED"}
    assert Order.objects.get(order_type="limit").status == "canceled"


def test_an_update_signal_replaces_the_stop_loss_on_bingx(send, on_bingx):
    send(**BUY, sl={"price": "60000"})

    signal = send(symbol="BTCUSDT.P", action="update", sl={"price": "62000"})

    assert signal.status == Signal.Status.EXECUTED, signal.rejection_reason
    stops = {order.stop_price: order.status for order in on_bingx.orders if order.type == "STOP_MARKET"}
    assert stops == {Decimal("60000"): "CANCELLED", Decimal("62000"): "NEW"}


def test_an_approved_signal_of_a_manual_account_is_placed_on_bingx_with_the_edits(send, account, on_bingx):
    account.auto_trade = False
    account.save(update_fields=["auto_trade"])
    waiting = send(**BUY)
    assert waiting.status == Signal.Status.AWAITING_CONFIRMATION
    assert on_bingx.orders == []

    signal = signal_approve(signal=waiting, actor=Actor.telegram(1, "trader"), qty=Decimal("0.02"))

    assert signal.status == Signal.Status.EXECUTED, signal.rejection_reason
    [placed] = on_bingx.orders
    assert placed.qty == Decimal("0.02")


def test_a_close_records_the_balance_bingx_reports(send, bingx, on_bingx):
    send(**BUY)
    bingx.set_mark_price("BTC-USDT", "66000")

    send(symbol="BTCUSDT.P", action="close_long", price="66000")

    latest = BalanceSnapshot.objects.latest()
    assert latest.wallet_balance == on_bingx.wallet_balance
    assert latest.available == on_bingx.available_margin


def test_two_accounts_trade_with_their_own_keys_and_positions(client, account, bingx, on_bingx):
    other_on_bingx = bingx.add_account(api_key="sub-key", api_secret="sub-secret", balance=Decimal("5000"))
    sub = TradingAccountFactory(
        name="sub", mode="live", auto_trade=True, api_key="sub-key", api_secret="sub-secret", subaccount_id="777"
    )
    RiskLimitsFactory(account=sub)
    SymbolProfileFactory(account=sub, symbol=BTC, leverage=3, max_leverage=20, margin_mode="cross")

    sender(client, account)(**BUY)
    sender(client, sub)(**{**BUY, "action": "sell"})

    assert [order.side for order in on_bingx.orders] == ["BUY"]
    assert [order.side for order in other_on_bingx.orders] == ["SELL"]
    assert Position.objects.get(account=account).side == "long"
    assert Position.objects.get(account=sub).side == "short"
    assert other_on_bingx.leverage("BTC-USDT", "SHORT") == 3
