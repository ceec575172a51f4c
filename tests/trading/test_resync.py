"""Reconciliation against the fake BingX: a corrupted database is found out (--dry-run changes nothing), put
right with one audit event per correction, and a second run finds nothing. Also: an order placed by hand on
BingX, a stop loss that filled while nobody watched, the admin action and the Celery task."""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from signals_app.models import Signal
from tests.admin_helpers import admin_url
from tests.conftest_bingx import KEY, SECRET
from tests.factories import PositionFactory, RiskLimitsFactory, SymbolProfileFactory, TradingAccountFactory
from tests.fakes.bingx import Fault
from tests.fakes_tests.clients import sync_client
from trading.audit import Actor
from trading.models import AuditEvent, BalanceSnapshot, Fill, Order, Position, TradingAccount
from trading.resync import resync_account
from trading.services import account_rotate_webhook_secret
from trading.tasks import resync_task

pytestmark = pytest.mark.django_db

BTC, SOL, ADA = "BTC/USDT:USDT", "SOL/USDT:USDT", "ADA/USDT:USDT"
BUY_BTC = {"symbol": "BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}
BUY_SOL = {"symbol": "SOLUSDT.P", "action": "buy", "price": "150", "size": {"mode": "qty", "value": "1"}}
ACTOR = Actor.system("test")
_ids = itertools.count(1)


@pytest.fixture
def account(on_bingx, bingx):
    bingx.set_mark_price("SOL-USDT", "150")
    account = TradingAccountFactory(name="main", mode="live", auto_trade=True, api_key=KEY, api_secret=SECRET)
    RiskLimitsFactory(account=account)
    for symbol in (BTC, SOL):
        SymbolProfileFactory(account=account, symbol=symbol, leverage=5, max_leverage=20, margin_mode="isolated")
    return account


@pytest.fixture
def send(client, account):
    secret = account_rotate_webhook_secret(account=account, actor=ACTOR)

    def send(**alert) -> Signal:
        body = {"secret": secret, "alert_id": f"resync-{next(_ids)}", **alert}
        response = client.post("/webhook/tradingview", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.json()
        signal = Signal.objects.get(pk=response.json()["signal_id"])
        assert signal.status == Signal.Status.EXECUTED, signal.rejection_reason
        return signal

    return send


def resync(*args: str) -> str:
    out = StringIO()
    call_command("resync", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rows_of(output: str) -> list[list[str]]:
    """The table's rows, split on its column runs of two or more spaces."""
    lines = output.splitlines()
    assert lines[0].split() == ["account", "kind", "object", "field", "database", "bingx", "action"]
    return [re.split(r"\s{2,}", line) for line in lines[2:-1]]


def database_state() -> tuple:
    return (
        sorted(Order.objects.values_list("client_order_id", "status", "filled_qty")),
        sorted(Fill.objects.values_list("exchange_trade_id", "qty")),
        sorted(Position.objects.values_list("symbol", "side", "status", "qty")),
        list(BalanceSnapshot.objects.values_list("equity", "available")),
        AuditEvent.objects.count(),
    )


def resync_events() -> list[str]:
    return sorted(AuditEvent.objects.filter(action__startswith="resync.").values_list("action", flat=True))


# --- a corrupted database ------------------------------------------------------------------------------


@pytest.fixture
def corrupted(send, account):
    """Trades done through the platform, then six kinds of damage to the database."""
    send(**BUY_BTC, sl={"pct": "2"})  # BTC long 0.01 with a resting stop loss
    send(**BUY_SOL)  # SOL long 1
    entry = Order.objects.get(symbol=BTC, purpose="entry")
    stop = Order.objects.get(symbol=BTC, purpose="stop_loss")
    assert (entry.status, stop.status) == ("filled", "open")
    Fill.objects.filter(order=entry).delete()  # a lost fill
    Order.objects.filter(pk=stop.pk).update(status="submitted")  # a status gone back
    Position.objects.filter(symbol=BTC).update(qty=Decimal("0.02"))  # a wrong qty
    Position.objects.filter(symbol=SOL).update(status="closed", qty=0)  # closed here, open on BingX
    PositionFactory(account=account, symbol=ADA, qty=Decimal("100"), entry_price=Decimal("0.5"))  # a phantom
    stale = Decimal("12345")  # a balance that moved without us seeing it
    BalanceSnapshot.objects.filter(account=account).update(equity=stale, wallet_balance=stale)
    return {"entry": entry, "stop": stop}


def test_it_lists_each_difference_of_a_corrupted_database_and_changes_nothing_on_a_dry_run(corrupted):
    before = database_state()

    output = resync("--dry-run")

    rows = {(row[1], row[2], row[3]): row for row in rows_of(output)}
    entry, stop = corrupted["entry"].client_order_id, corrupted["stop"].client_order_id
    assert rows[("fill", entry, "fills")][4:6] == ["0", "0.01"]
    assert rows[("order", stop, "status")][4:6] == ["submitted", "open"]
    assert rows[("position", f"{BTC} long", "qty")][4:6] == ["0.02", "0.01"]
    assert rows[("position_missing", f"{SOL} long", "qty")][4] == "(none)"
    assert rows[("position_gone", f"{ADA} long", "qty")][4:6] == ["100", "0"]
    assert rows[("balance", "USDT", "equity")][4] == "12345"
    assert len(rows) == 6
    assert "6 difference(s) (dry run: nothing changed)" in output
    assert database_state() == before


def test_it_corrects_each_difference_with_an_audit_event_and_a_second_run_finds_nothing(corrupted, on_bingx):
    output = resync()

    assert "6 difference(s), 6 correction(s)" in output
    entry, stop = (Order.objects.get(pk=corrupted[name].pk) for name in ("entry", "stop"))
    [fill] = entry.fills.all()
    assert (fill.qty, fill.price, fill.exchange_trade_id) == (
        Decimal("0.01"),
        Decimal("65000"),
        f"{entry.exchange_order_id}:0.01",
    )
    assert stop.status == "open"
    assert Position.objects.get(symbol=BTC, status="open").qty == Decimal("0.01")
    sol = Position.objects.get(symbol=SOL, status="open")
    assert (sol.qty, sol.entry_price) == (Decimal("1"), Decimal("150"))
    ada = Position.objects.get(symbol=ADA)
    assert (ada.status, ada.close_reason, ada.qty) == ("closed", "reconciliation", 0)
    assert BalanceSnapshot.objects.latest().equity == on_bingx.equity
    assert resync_events() == [
        "resync.balance",
        "resync.fill",
        "resync.order",
        "resync.position",
        "resync.position_gone",
        "resync.position_missing",
    ]
    event = AuditEvent.objects.get(action="resync.fill")
    assert (event.before["fills_qty"], event.after["fills_qty"]) == ("0", "0.01")

    assert resync() == "no differences\n"
    assert len(resync_events()) == 6


# --- what happened on BingX while nobody watched --------------------------------------------------------


def test_an_order_placed_by_hand_on_bingx_is_recorded_with_its_fill_and_position(account, bingx, on_bingx):
    placed = sync_client(bingx, on_bingx).create_order(BTC, "market", "buy", 0.01)

    report = resync_account(account=account, apply=True, actor=ACTOR)

    order = Order.objects.get()
    assert (order.client_order_id, order.exchange_order_id, order.signal) == (f"x{placed['id']}", placed["id"], None)
    assert (order.status, order.filled_qty, order.purpose) == ("filled", Decimal("0.01"), "entry")
    assert order.fills.get().qty == Decimal("0.01")
    assert Position.objects.get(status="open").qty == Decimal("0.01")
    assert {d.kind for d in report.differences} == {"order_missing", "position_missing", "balance"}
    assert report.corrections == 3
    assert resync_account(account=account, apply=True, actor=ACTOR).differences == []


def test_a_stop_loss_filled_while_nobody_watched_closes_the_position(send, account, bingx, on_bingx):
    send(**BUY_BTC, sl={"price": "64000"})
    bingx.set_mark_price("BTC-USDT", "63900")  # the stop fires on BingX; no poller runs
    assert on_bingx.position("BTC-USDT") is None

    report = resync_account(account=account, apply=True, actor=ACTOR)

    stop = Order.objects.get(purpose="stop_loss")
    assert (stop.status, stop.filled_qty) == ("filled", Decimal("0.01"))
    position = Position.objects.get()
    assert (position.status, position.close_reason) == ("closed", "stop_loss")  # our stop loss: its cause
    assert position.realized_pnl == stop.fills.get().realized_pnl < 0
    assert ("order", "status", "open", "filled") in {
        (d.kind, d.field, d.database, d.exchange) for d in report.differences
    }
    assert resync_account(account=account, apply=True, actor=ACTOR).differences == []


def test_our_open_order_missing_on_bingx_is_canceled(send, account, on_bingx):
    send(**{**BUY_BTC, "order_type": "limit", "price": "60000"})
    order = Order.objects.get()
    Order.objects.filter(pk=order.pk).update(exchange_order_id="123", client_order_id="tvgone")

    report = resync_account(account=account, apply=True, actor=ACTOR)

    order.refresh_from_db()
    assert order.status == "canceled"
    gone = [d for d in report.differences if d.kind == "order_absent"]
    assert [(d.object, d.database, d.action) for d in gone] == [("tvgone", "open", "canceled")]
    # the real one, still resting on BingX, is recorded as an order we never saw
    assert Order.objects.get(client_order_id__startswith="x").status == "open"


# --- the command, the admin action, the task -------------------------------------------------------------


def test_the_command_fails_when_bingx_cannot_be_reached(account, bingx):
    bingx.fault("GET", "/openApi/swap/v2/user/positions", Fault.http_error(status=503), times=None)
    err = StringIO()

    with pytest.raises(CommandError, match="1 account"):
        call_command("resync", stdout=StringIO(), stderr=err)
    assert "BingX not reached for main" in err.getvalue()


def test_the_command_refuses_a_dry_run_account():
    TradingAccountFactory(name="paper", mode="dry_run")

    with pytest.raises(CommandError, match="dry-run"):
        resync("--account", "paper")


def test_the_admin_action_resyncs_and_says_how_many_corrections(staff_client, account, on_bingx):
    response = staff_client.post(
        admin_url(TradingAccount, "changelist"),
        {"action": "resync_now", "_selected_action": [account.pk]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert messages == ["main: 1 correction(s), 2 difference(s) found."]  # no balance snapshot yet
    assert BalanceSnapshot.objects.get().equity == Decimal("10000")
    assert AuditEvent.objects.get(action="resync.balance").actor_type == "admin"


def test_the_admin_action_reports_bingx_being_unreachable(staff_client, account, bingx):
    bingx.fault("GET", "/openApi/swap/v2/user/positions", Fault.http_error(status=503), times=None)

    response = staff_client.post(
        admin_url(TradingAccount, "changelist"),
        {"action": "resync_now", "_selected_action": [account.pk]},
        follow=True,
    )

    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith("main: resync failed:")


def test_the_task_resyncs_live_and_demo_accounts_only(account, bingx):
    bingx.add_account(api_key="demo-key", api_secret="demo-secret", balance=Decimal("500"))
    demo = TradingAccountFactory(name="demo", mode="demo", api_key="demo-key", api_secret="demo-secret")
    paper = TradingAccountFactory(name="paper", mode="dry_run")

    assert resync_task() == 2

    equities = dict(BalanceSnapshot.objects.values_list("account__name", "equity"))
    assert equities == {account.name: Decimal("10000"), demo.name: Decimal("500")}
    assert not BalanceSnapshot.objects.filter(account=paper).exists()


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_shows_a_progress_bar_on_a_terminal_only(account):
    terminal, pipe = Terminal(), StringIO()

    call_command("resync", "--dry-run", stdout=StringIO(), stderr=terminal)
    call_command("resync", "--dry-run", stdout=StringIO(), stderr=pipe)

    assert "main reading BingX" in terminal.getvalue() and "[########################] 4/4" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_a_price_move_takes_a_fresh_balance_snapshot_without_an_audit_row(send, account, bingx, on_bingx):
    send(**BUY_BTC)
    resync()
    audited = AuditEvent.objects.filter(action="resync.balance").count()

    bingx.set_mark_price("BTC-USDT", "66000")  # only the unrealized PnL moves
    resync()

    assert BalanceSnapshot.objects.latest().equity == on_bingx.equity
    assert AuditEvent.objects.filter(action="resync.balance").count() == audited
