"""/positions and /close SYMBOL: a position is closed at market only after the trader confirms, through the
same flatten the pipeline uses after a loss breach (reduce-only, one order per position however often tapped)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from signals_app.models import Signal
from tests.conftest_bingx import live_account_on_bingx, webhook_sender
from tests.factories import PositionFactory, TelegramTraderFactory, TradingAccountFactory
from tests.fakes.bingx.faults import Fault
from tests.telegram_bot.conftest import buttons
from trading.models import AuditEvent, Order, Position

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_PATH = "/openApi/swap/v2/trade/order"


@pytest.fixture
def trader():
    return TelegramTraderFactory(username="tom")


@pytest.fixture
def position():
    """An open dry-run BTC long of 0.01 at 65,000."""
    account = TradingAccountFactory(name="main", mode="dry_run")
    return PositionFactory(account=account, mark_price=Decimal("66000"))


def close_orders() -> list[Order]:
    return list(Order.objects.filter(purpose=Order.Purpose.CLOSE))


def test_close_asks_for_confirmation_before_closing(trader, position, bot):
    confirm = bot.command(trader.telegram_id, "/close btcusdt")

    assert confirm["text"].startswith("Close BTC/USDT:USDT LONG 0.01 on main (dry run)")
    assert buttons(confirm) == [f"cl:ok:{position.pk}", "cl:x"]
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN
    assert close_orders() == []


def test_confirming_closes_the_position_with_a_reduce_only_market_order(trader, position, bot):
    bot.command(trader.telegram_id, "/close BTC-USDT")

    done = bot.press(trader.telegram_id, f"cl:ok:{position.pk}")

    position.refresh_from_db()
    assert position.status == Position.Status.CLOSED
    assert position.close_reason == Position.CloseReason.MANUAL
    [order] = close_orders()
    assert (order.side, order.order_type, order.reduce_only, order.status) == ("sell", "market", True, "filled")
    assert done["text"].startswith("✅ Closed BTC/USDT:USDT LONG 0.01 on main: closed 0.01")
    assert buttons(done) == ["m:home"]
    closed = AuditEvent.objects.get(action="position.close_by_hand")
    assert (closed.actor_type, closed.actor_id, closed.actor_label) == ("telegram", str(trader.telegram_id), "tom")
    assert (closed.before, closed.after) == ({"status": "open", "qty": "0.01"}, {"status": "closed", "qty": "0"})
    assert AuditEvent.objects.filter(actor_type="telegram", object_type__icontains="order").exists()


def test_a_second_confirmation_closes_nothing_more(trader, position, bot):
    confirm = bot.command(trader.telegram_id, "/close BTC")
    bot.press(trader.telegram_id, f"cl:ok:{position.pk}", message=confirm)
    mark = bot.tg.mark()

    bot.tg.press(trader.telegram_id, data=f"cl:ok:{position.pk}", message_id=confirm["message_id"], check_button=False)

    assert bot.tg.wait_for_call("editMessageText", after=mark)["params"]["text"] == "That position is already closed."
    assert len(close_orders()) == 1


def test_cancel_closes_nothing(trader, position, bot):
    bot.command(trader.telegram_id, "/close BTCUSDT")

    cancelled = bot.press(trader.telegram_id, "cl:x")

    assert cancelled["text"] == "Cancelled: nothing was closed."
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN


def test_close_from_the_positions_list(trader, position, bot):
    bot.command(trader.telegram_id, "/positions")
    confirm = bot.press(trader.telegram_id, f"cl:{position.pk}")
    assert buttons(confirm) == [f"cl:ok:{position.pk}", "cl:x"]

    bot.press(trader.telegram_id, f"cl:ok:{position.pk}")

    assert Position.objects.get(pk=position.pk).status == Position.Status.CLOSED


def test_close_offers_a_choice_when_the_symbol_is_open_on_several_accounts(trader, position, bot):
    other = PositionFactory(account=TradingAccountFactory(name="second"), side="short")

    choice = bot.command(trader.telegram_id, "/close BTCUSDT")

    assert buttons(choice) == [f"cl:{position.pk}", f"cl:{other.pk}", "m:home"]


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("/close", "Usage: /close SYMBOL, for example /close BTCUSDT"),
        ("/close ETHUSDT", "No open position on ETHUSDT."),
        ("/close BTC ETH", "Usage: /close SYMBOL, for example /close BTCUSDT"),
        ("/close <b>", "No open position on <b>."),
    ],
)
def test_close_explains_what_it_cannot_do(trader, position, text, reply, bot):
    assert bot.command(trader.telegram_id, text)["text"] == reply
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN


def test_positions_says_when_nothing_is_open(trader, bot):
    assert bot.command(trader.telegram_id, "/positions")["text"] == "Positions\nNo open position."


@pytest.fixture
def live_position(on_bingx, client) -> Position:
    """A BTC long of 0.01 opened on the fake BingX by a TradingView alert (ask for it before ``bot``: on SQLite a
    write from the test's thread can collide with the running bot's periodic jobs)."""
    account = live_account_on_bingx(name="live")
    send = webhook_sender(client, account)
    entry = send(symbol="BINANCE:BTCUSDT.P", action="buy", price="65000", size={"mode": "qty", "value": "0.01"})
    assert entry.status == Signal.Status.EXECUTED
    assert on_bingx.position("BTC-USDT").qty == Decimal("0.01")
    return Position.objects.get(account=account, status=Position.Status.OPEN)


def test_confirming_closes_a_live_position_on_bingx(live_position, bot, trader, on_bingx):
    bot.command(trader.telegram_id, "/close BTCUSDT")

    done = bot.press(trader.telegram_id, f"cl:ok:{live_position.pk}")

    assert "closed 0.01" in done["text"] and "on BingX" in done["text"]
    fake = on_bingx.position("BTC-USDT")
    assert fake is None or fake.qty == 0
    assert Position.objects.get(pk=live_position.pk).status == Position.Status.CLOSED


def test_bingx_refusing_the_close_is_shown_and_the_position_stays_open(live_position, bot, trader, bingx, on_bingx):
    bingx.fault("POST", ORDER_PATH, Fault.error(101204, "Insufficient margin"))
    bot.command(trader.telegram_id, "/close BTCUSDT")

    refused = bot.press(trader.telegram_id, f"cl:ok:{live_position.pk}")

    assert refused["text"].startswith("⚠️ Not closed:")
    assert "Insufficient margin" in refused["text"]
    assert on_bingx.position("BTC-USDT").qty == Decimal("0.01")
    assert Position.objects.get(pk=live_position.pk).status == Position.Status.OPEN
    failed = AuditEvent.objects.get(action="position.close_failed")
    assert failed.actor_id == str(trader.telegram_id) and "Insufficient margin" in failed.reason
