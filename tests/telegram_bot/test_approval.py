"""Manual approval end to end: a signal waiting for confirmation, its card in Telegram, the trader's taps and
typed edits, and the order on the (fake) BingX, with nothing mocked in between.

The card is sent as C's sender sends it (the rendered view, then ``signal_card_remember``); everything after
that goes through the fake Telegram, our real Application and the fake BingX.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.utils import timezone

from signals_app.models import Signal
from signals_app.pipeline import signals_sweep
from telegram_bot.approval import signal_card_remember, signal_card_render
from telegram_bot.handlers import approval as approval_handlers
from telegram_bot.handlers.approval import markup_of
from telegram_bot.models import SignalCard
from tests.conftest_bingx import BTC, live_account_on_bingx, webhook_sender
from tests.factories import TelegramAdminFactory, TelegramTraderFactory, TelegramViewerFactory
from tests.fakes.bingx import Fault
from trading.models import AuditEvent, Order, RiskLimits, SymbolProfile

pytestmark = pytest.mark.django_db(transaction=True)

S = Signal.Status
ORDER_PATH = "/openApi/swap/v2/trade/order"
BUY = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", "price": "65000", "size": {"mode": "qty", "value": "0.01"}}


@pytest.fixture
def quick_jobs(monkeypatch):
    monkeypatch.setattr(approval_handlers, "CARD_REFRESH_SECONDS", 0.3)
    monkeypatch.setattr(approval_handlers, "EDIT_TIMEOUT_SECONDS", 1)


@pytest.fixture
def bot(quick_jobs, bot):
    return bot


@pytest.fixture
def account(on_bingx):
    """A live account on the fake BingX in manual mode: every valid signal waits for approval."""
    return live_account_on_bingx(auto_trade=False)


@pytest.fixture
def send(client, account):
    return webhook_sender(client, account, prefix="tg-approval")


@pytest.fixture
def trader():
    return TelegramTraderFactory(telegram_id=501, username="alice")


@pytest.fixture
def bob():
    return TelegramTraderFactory(telegram_id=502, username="bob")


@pytest.fixture
def viewer():
    return TelegramViewerFactory(telegram_id=503)


@pytest.fixture
def admin():
    return TelegramAdminFactory(telegram_id=504, username="root")


@pytest.fixture
def waiting(send, trader):
    signal = send(**BUY)
    assert signal.status == S.AWAITING_CONFIRMATION, signal.rejection_reason
    return signal


def card_delivered(bot, signal, user) -> int:
    """Wait for the signal's card to reach the user through the notification sender; returns its message id."""

    def is_card(call) -> bool:
        markup = call["params"].get("reply_markup") or {}
        data = [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]
        return int(call["params"]["chat_id"]) == user.telegram_id and f"sig:ok:{signal.pk}" in data

    message_id = bot.tg.wait_for_call("sendMessage", is_card, timeout=10)["result"]["message_id"]
    eventually(
        lambda: SignalCard.objects.filter(signal=signal, chat_id=user.telegram_id, message_id=message_id).exists()
    )
    return message_id


def card_sent(bot, signal, user) -> int:
    """Send the signal's card to a user the sender does not send cards to (a viewer); returns its message id."""
    view = bot.orm(signal_card_render, signal)
    message = bot.running.run(bot.app.bot.send_message(user.telegram_id, view.text, reply_markup=markup_of(view)))
    bot.orm(
        signal_card_remember,
        signal=signal,
        telegram_user=user,
        chat_id=user.telegram_id,
        message_id=message.message_id,
    )
    return message.message_id


def expire_now(bot, signal) -> None:
    """The signal's confirmation window closed a second ago."""
    past = timezone.now() - timedelta(seconds=1)
    bot.orm(Signal.objects.filter(pk=signal.pk).update, confirmation_expires_at=past)


def card_now(bot, user, message_id) -> dict:
    [message] = [m for m in bot.tg.messages(user.telegram_id) if m["message_id"] == message_id]
    return message


def buttons(message: dict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]


def press(bot, user, data, message_id, **kwargs) -> dict:
    """Tap a button and return the bot's answer to it."""
    mark = bot.tg.mark()
    query_id = bot.tg.press(user.telegram_id, data=data, message_id=message_id, **kwargs)
    return bot.tg.wait_for_call(
        "answerCallbackQuery", lambda c: c["params"]["callback_query_id"] == query_id, after=mark, timeout=15
    )["params"]


def say(bot, user, text) -> str:
    """Type a message and return the bot's reply."""
    mark = bot.tg.mark()
    bot.tg.send_text(user.telegram_id, text, username=user.username)
    return bot.tg.wait_for_call("sendMessage", after=mark)["params"]["text"]


def card_edited(bot, mark, message_id, *, chat_id=None) -> dict:
    """The card as the client shows it after the bot's next edit of it (HTML tags gone)."""

    def this_card(call) -> bool:
        chat = call["params"]["chat_id"]
        return int(call["params"]["message_id"]) == message_id and (chat_id is None or int(chat) == chat_id)

    return bot.tg.wait_for_call("editMessageText", this_card, after=mark, timeout=15)["result"]


def eventually(check, timeout: float = 5.0):
    """The bot writes from its own thread after its last Telegram call: wait for it. (SQLite's shared
    in-memory test database answers "table is locked" while the bot's thread writes: look again.)"""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OperationalError:
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def start_edit(bot, user, field, signal, message_id) -> str:
    mark = bot.tg.mark()
    press(bot, user, f"sig:ed:{field}:{signal.pk}", message_id)
    return bot.tg.wait_for_call("sendMessage", after=mark)["params"]["text"]


# --- the card ------------------------------------------------------------------------------------


def test_a_waiting_signals_card_shows_its_trade_and_the_approval_buttons(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)

    card = card_now(bot, trader, message_id)
    assert "LONG BTC/USDT:USDT" in card["text"] and "Qty: 0.01 (≈ 650 USDT)" in card["text"]
    assert "Leverage: 5x isolated" in card["text"] and "Risk checks passed" in card["text"]
    actions = ("ok", "no", "ed:q", "ed:sl", "ed:tp", "ed:lev")
    assert buttons(card) == [f"sig:{action}:{waiting.pk}" for action in actions]


# --- approve and reject --------------------------------------------------------------------------


def test_approve_places_the_order_on_bingx_and_the_card_shows_the_exchange_result(waiting, trader, on_bingx, bot):
    message_id = card_delivered(bot, waiting, trader)
    mark = bot.tg.mark()

    answer = press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    assert answer["text"] == "Approved: executed."
    [placed] = [order for order in on_bingx.orders if order.type == "MARKET"]
    assert (placed.side, placed.qty, placed.status) == ("BUY", Decimal("0.01"), "FILLED")
    edited = card_edited(bot, mark, message_id)
    assert "Approved by @alice: executed" in edited["text"]
    assert f"entry BUY 0.01: filled, filled 0.01 @ 65000 · order {placed.order_id}" in edited["text"]
    assert buttons(card_now(bot, trader, message_id)) == []
    waiting.refresh_from_db()
    assert waiting.status == S.EXECUTED
    eventually(lambda: SignalCard.objects.get(signal=waiting).state == SignalCard.State.CLOSED)


def test_approve_updates_the_card_in_every_chat_it_was_sent_to(bob, waiting, trader, bot):
    other = bob
    mine, theirs = card_delivered(bot, waiting, trader), card_delivered(bot, waiting, other)
    mark = bot.tg.mark()

    press(bot, trader, f"sig:ok:{waiting.pk}", mine)

    assert "Approved by @alice: executed" in card_edited(bot, mark, theirs, chat_id=other.telegram_id)["text"]
    assert buttons(card_now(bot, other, theirs)) == []


def test_a_second_tap_on_approve_answers_already_handled_and_trades_once(waiting, trader, on_bingx, bot):
    message_id = card_delivered(bot, waiting, trader)
    press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    answer = press(bot, trader, f"sig:ok:{waiting.pk}", message_id, check_button=False)  # a stale copy of the card

    assert answer["text"] == "Already handled: executed."
    assert answer["show_alert"] == "true"
    assert len([order for order in on_bingx.orders if order.type == "MARKET"]) == 1


def test_bingx_refusing_the_order_rejects_the_signal_and_the_card_says_why(bingx, waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    bingx.fault("POST", ORDER_PATH, Fault.error(101204, "Insufficient margin"))
    mark = bot.tg.mark()

    answer = press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    assert "Insufficient margin" in answer["text"]
    assert "Approved by @alice, then ❌ rejected: " in card_edited(bot, mark, message_id)["text"]
    waiting.refresh_from_db()
    assert waiting.status == S.REJECTED


def test_reject_rejects_the_signal_trades_nothing_and_closes_the_card(waiting, trader, on_bingx, bot):
    message_id = card_delivered(bot, waiting, trader)
    mark = bot.tg.mark()

    answer = press(bot, trader, f"sig:no:{waiting.pk}", message_id)

    assert answer["text"] == "Rejected."
    assert "Rejected by @alice: rejected in Telegram by @alice" in card_edited(bot, mark, message_id)["text"]
    waiting.refresh_from_db()
    assert waiting.status == S.REJECTED
    assert on_bingx.orders == []
    rejection = AuditEvent.objects.get(object_id=str(waiting.pk), after__status="rejected")
    assert (rejection.actor_type, rejection.actor_id) == ("telegram", "501")


def test_a_viewer_may_not_approve(waiting, viewer, on_bingx, bot):
    message_id = card_sent(bot, waiting, viewer)

    answer = press(bot, viewer, f"sig:ok:{waiting.pk}", message_id)

    assert answer["text"].startswith("Not allowed") and answer["show_alert"] == "true"
    waiting.refresh_from_db()
    assert waiting.status == S.AWAITING_CONFIRMATION
    assert on_bingx.orders == []


def test_a_viewer_may_not_edit(waiting, viewer, bot):
    message_id = card_sent(bot, waiting, viewer)

    answer = press(bot, viewer, f"sig:ed:q:{waiting.pk}", message_id)

    assert answer["text"].startswith("Not allowed")


# --- edits ---------------------------------------------------------------------------------------


def test_editing_the_qty_is_risk_checked_stored_audited_and_shown_then_approved_as_edited(
    waiting, trader, on_bingx, bot
):
    message_id = card_delivered(bot, waiting, trader)
    assert "new quantity" in start_edit(bot, trader, "q", waiting, message_id)
    mark = bot.tg.mark()

    reply = say(bot, trader, "0.02")

    assert reply == "Changed. qty changed by @alice: 0.01 → 0.02"
    assert "Qty: 0.02 (≈ 1300 USDT)" in card_edited(bot, mark, message_id)["text"]
    waiting.refresh_from_db()
    assert (waiting.size_mode, waiting.size_value) == ("qty", Decimal("0.02"))
    edit = AuditEvent.objects.get(action="signal.edited", object_id=str(waiting.pk))
    assert (edit.actor_type, edit.actor_id) == ("telegram", "501")
    assert (edit.before["size_value"], edit.after["size_value"]) == ("0.01000000", "0.02")

    press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    [placed] = [order for order in on_bingx.orders if order.type == "MARKET"]
    assert placed.qty == Decimal("0.02")


def test_an_edited_card_still_names_the_account(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "q", waiting, message_id)
    mark = bot.tg.mark()

    say(bot, trader, "0.02")

    text = card_edited(bot, mark, message_id)["text"]
    assert f"Awaiting approval · {waiting.account.name}" in text
    assert f"account {waiting.account_id}" not in text


def test_a_qty_that_is_not_a_number_is_refused_and_the_edit_stays_open(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "q", waiting, message_id)

    assert "“abc” is not a number" in say(bot, trader, "abc")
    assert say(bot, trader, "0.03").startswith("Changed.")

    waiting.refresh_from_db()
    assert waiting.size_value == Decimal("0.03")


def test_a_qty_over_the_per_trade_limit_is_refused_by_the_risk_engine_and_nothing_changes(
    waiting, trader, account, bot
):
    bot.orm(RiskLimits.objects.filter(account=account).update, max_notional_per_trade=Decimal("1000"))
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "q", waiting, message_id)

    reply = say(bot, trader, "0.02")

    assert "risk checks refuse it: order value 1300 USDT is over the per-trade limit 1000 USDT" in reply
    waiting.refresh_from_db()
    assert (waiting.size_mode, waiting.size_value) == ("qty", Decimal("0.01"))
    assert not AuditEvent.objects.filter(action="signal.edited").exists()
    assert "Qty: 0.01" in card_now(bot, trader, message_id)["text"]


def test_leverage_above_the_symbols_maximum_is_refused_and_a_valid_one_is_traded_with(waiting, trader, on_bingx, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "lev", waiting, message_id)

    assert "leverage 30x is above BTC/USDT:USDT's maximum 20x" in say(bot, trader, "30")
    assert "not a whole number" in say(bot, trader, "ten")
    mark = bot.tg.mark()
    assert say(bot, trader, "12") == "Changed. leverage changed by @alice: 5x → 12x"

    assert "Leverage: 12x isolated" in card_edited(bot, mark, message_id)["text"]
    waiting.refresh_from_db()
    assert waiting.leverage == 12

    press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT", "LONG")) == ("isolated", 12)


def test_a_stop_loss_on_the_wrong_side_is_refused_and_a_valid_one_is_shown(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "sl", waiting, message_id)

    assert "Not changed: stop loss 70000 is on the wrong side of the entry" in say(bot, trader, "70000")
    mark = bot.tg.mark()
    assert say(bot, trader, "64000") == "Changed. stop loss changed by @alice: none → 64000"

    assert "SL: 64000" in card_edited(bot, mark, message_id)["text"]
    waiting.refresh_from_db()
    assert waiting.sl_price == Decimal("64000")


def test_take_profit_levels_are_typed_as_prices_with_optional_shares(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "tp", waiting, message_id)

    assert "they must add up to 100%" in say(bot, trader, "66000:30 67000:30")
    mark = bot.tg.mark()
    assert say(bot, trader, "66000 67000").startswith("Changed. take profit changed by @alice: none → 66000 67000")

    text = card_edited(bot, mark, message_id)["text"]
    assert "TP1: 66000 (qty 0.005)" in text and "TP2: 67000 (qty 0.005)" in text
    waiting.refresh_from_db()
    assert waiting.tp_levels == [{"price": "66000", "size_pct": "50.00"}, {"price": "67000", "size_pct": "50.00"}]


def test_cancel_drops_the_edit_and_later_text_is_ignored(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "q", waiting, message_id)

    assert say(bot, trader, "/cancel") == f"Edit of signal #{waiting.pk} cancelled; nothing changed."
    mark = bot.tg.mark()
    bot.tg.send_text(trader.telegram_id, "0.05")
    time.sleep(1.0)

    assert [c["params"]["text"] for c in bot.tg.calls("sendMessage") if c["index"] >= mark] == []
    waiting.refresh_from_db()
    assert waiting.size_value == Decimal("0.01")


def test_an_edit_not_typed_in_time_times_out(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    mark = bot.tg.mark()
    start_edit(bot, trader, "q", waiting, message_id)

    timed_out = bot.tg.wait_for_call("sendMessage", lambda c: "timed out" in c["params"]["text"], after=mark)

    assert timed_out["params"]["text"] == f"The edit of signal #{waiting.pk} timed out after 1 s; nothing changed."


# --- expiry --------------------------------------------------------------------------------------


def test_an_expired_signals_card_says_so_and_loses_its_buttons(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    mark = bot.tg.mark()

    expire_now(bot, waiting)

    assert "Expired at" in card_edited(bot, mark, message_id)["text"]
    assert buttons(card_now(bot, trader, message_id)) == []
    waiting.refresh_from_db()
    assert waiting.status == S.EXPIRED
    eventually(lambda: SignalCard.objects.get(signal=waiting).state == SignalCard.State.CLOSED)


def test_approving_an_expired_signal_answers_expired_and_trades_nothing(waiting, trader, on_bingx, monkeypatch, bot):
    monkeypatch.setattr(approval_handlers, "CARD_REFRESH_SECONDS", 3600)  # the tap, not the job, finds it
    message_id = card_delivered(bot, waiting, trader)
    expire_now(bot, waiting)

    answer = press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    assert answer["text"].startswith("Expired at")
    assert on_bingx.orders == []


# --- the Manual list's "view" button -------------------------------------------------------------


def test_view_sends_the_card_again_and_the_new_copy_is_the_one_kept_up_to_date(waiting, trader, bot):
    first = card_delivered(bot, waiting, trader)
    listing = bot.running.run(
        bot.app.bot.send_message(
            trader.telegram_id,
            "Waiting signals",
            reply_markup={"inline_keyboard": [[{"text": "#1", "callback_data": f"sig:v:{waiting.pk}"}]]},
        )
    )
    mark = bot.tg.mark()

    press(bot, trader, f"sig:v:{waiting.pk}", listing.message_id)

    sent = bot.tg.wait_for_call("sendMessage", after=mark)["result"]
    assert "LONG BTC/USDT:USDT" in sent["text"] and f"sig:ok:{waiting.pk}" in buttons(sent)
    assert sent["message_id"] != first
    eventually(lambda: SignalCard.objects.get(signal=waiting).message_id == sent["message_id"])
    assert SignalCard.objects.get(signal=waiting).state == SignalCard.State.OPEN
    assert not Order.objects.exists()


def test_a_press_answered_too_late_still_leaves_the_card_showing_the_outcome(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    bot.tg.fail_next(
        "answerCallbackQuery",
        status=400,
        description="Bad Request: query is too old and response timeout expired or query ID is invalid",
    )
    mark = bot.tg.mark()

    bot.tg.press(trader.telegram_id, data=f"sig:ok:{waiting.pk}", message_id=message_id)

    assert "Approved by @alice: executed" in card_edited(bot, mark, message_id)["text"]


def test_editing_a_signal_handled_meanwhile_is_refused_and_its_card_fixed(waiting, trader, bot):
    message_id = card_delivered(bot, waiting, trader)
    press(bot, trader, f"sig:no:{waiting.pk}", message_id)
    mark = bot.tg.mark()

    answer = press(bot, trader, f"sig:ed:q:{waiting.pk}", message_id, check_button=False)

    assert answer["text"] == "Already handled: it can no longer be edited."
    assert "Rejected" in card_edited(bot, mark, message_id)["text"]


def test_a_signal_that_expires_while_its_edit_is_typed_is_not_changed(waiting, trader, monkeypatch, bot):
    monkeypatch.setattr(approval_handlers, "EDIT_TIMEOUT_SECONDS", 60)
    message_id = card_delivered(bot, waiting, trader)
    start_edit(bot, trader, "q", waiting, message_id)
    expire_now(bot, waiting)

    assert say(bot, trader, "0.02").startswith("Not changed. Expired at")

    waiting.refresh_from_db()
    assert (waiting.status, waiting.size_value) == (S.EXPIRED, Decimal("0.01"))


def test_an_approval_whose_outcome_is_unknown_says_so_and_the_card_follows_the_signal_to_executed(
    bingx, waiting, trader, on_bingx, settings, bot
):
    settings.EXCHANGE_RETRY_ATTEMPTS = 1  # the lookup after the timeout gets one try, and fails too
    message_id = card_delivered(bot, waiting, trader)
    bingx.fault("POST", ORDER_PATH, Fault.timeout_after_execute(hold_seconds=2))
    bingx.fault("GET", ORDER_PATH, Fault.http_error(status=503))
    mark = bot.tg.mark()

    answer = press(bot, trader, f"sig:ok:{waiting.pk}", message_id)

    assert answer["text"] == "Approved: the outcome is being confirmed with the exchange."
    assert "executing, the outcome is being confirmed" in card_edited(bot, mark, message_id)["text"]
    time.sleep(1.0)  # several refresh runs: an unchanged card is not edited again and again
    edits = [c for c in bot.tg.calls("editMessageText") if c["index"] >= mark]
    assert len(edits) <= 2

    settings.SIGNAL_SWEEP_AFTER_SECONDS = 0
    bot.orm(signals_sweep)
    mark = bot.tg.mark()

    assert "Approved by @alice: executed" in card_edited(bot, mark, message_id)["text"]
    eventually(lambda: SignalCard.objects.get(signal=waiting).state == SignalCard.State.CLOSED)


def test_a_signal_edit_started_during_the_leverage_dialog_takes_the_typed_text(admin, account, waiting, bot):
    signal = waiting
    message_id = card_delivered(bot, signal, admin)
    menu = bot.running.run(
        bot.app.bot.send_message(
            admin.telegram_id,
            "Main menu",
            reply_markup={"inline_keyboard": [[{"text": "Margin & Leverage", "callback_data": "lev:go"}]]},
        )
    )
    for data, on in (("lev:go", menu.message_id), (f"lev:sym:{BTC}", None), ("lev:mt:fut", None), ("lev:mm:iso", None)):
        mark = bot.tg.mark()
        bot.tg.press(admin.telegram_id, data=data, message_id=on)
        bot.tg.wait_for_call("editMessageText", after=mark)
    start_edit(bot, admin, "lev", signal, message_id)

    assert say(bot, admin, "12") == "Changed. leverage changed by @root: 5x → 12x"

    signal.refresh_from_db()
    assert signal.leverage == 12
    assert SymbolProfile.objects.get(account=account, symbol=BTC).leverage == 5
    assert not AuditEvent.objects.filter(action="symbolprofile.margin_leverage_set").exists()
