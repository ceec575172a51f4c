"""The Margin & Leverage dialog, step by step, through the fake Telegram to the fake BingX.

The fake BingX starts every symbol at cross margin, 10x. The account trades BTC at 5x isolated (its symbol
profile), with the default limits: 20x for the account and for the profile; BingX allows BTC 125x, ADA 5x.
"""

from __future__ import annotations

import time

import pytest

from telegram_bot.handlers import leverage as leverage_handlers
from tests.conftest_bingx import BTC, live_account_on_bingx
from tests.factories import (
    SymbolProfileFactory,
    TelegramAdminFactory,
    TelegramTraderFactory,
    TradingAccountFactory,
)
from tests.fakes.bingx import Fault
from trading.models import AuditEvent, RiskLimits, SymbolProfile

pytestmark = pytest.mark.django_db(transaction=True)

LEVERAGE_PATH = "/openApi/swap/v2/trade/leverage"


@pytest.fixture
def quick_timeout(monkeypatch):
    monkeypatch.setattr(leverage_handlers, "TIMEOUT_SECONDS", 1)


@pytest.fixture
def account(on_bingx):
    return live_account_on_bingx(name="main", auto_trade=False)


@pytest.fixture
def admin():
    return TelegramAdminFactory(telegram_id=601, username="root")


@pytest.fixture
def trader():
    return TelegramTraderFactory(telegram_id=602)


@pytest.fixture
def second_account(account):
    return TradingAccountFactory(name="second")


@pytest.fixture
def ten_more_symbols(account):
    for number in range(10):
        SymbolProfileFactory(account=account, symbol=f"C{number:02d}/USDT:USDT")


@pytest.fixture
def ada(account):
    return SymbolProfileFactory(account=account, symbol="ADA/USDT:USDT", leverage=3, max_leverage=20)


@pytest.fixture
def paper_account():
    dry = TradingAccountFactory(name="paper", mode="dry_run")
    SymbolProfileFactory(account=dry, symbol=BTC, leverage=5, max_leverage=20, margin_mode="isolated")
    return dry


def latest(bot, user) -> dict:
    return [m for m in bot.tg.messages(user.telegram_id) if m.get("reply_markup")][-1]


def buttons(message: dict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]


def open_dialog(bot, user) -> dict:
    """The main menu's "Margin & Leverage" button: the dialog's first screen."""
    menu = bot.running.run(
        bot.app.bot.send_message(
            user.telegram_id,
            "Main menu",
            reply_markup={"inline_keyboard": [[{"text": "Margin & Leverage", "callback_data": "lev:go"}]]},
        )
    )
    return tap(bot, user, "lev:go", message_id=menu.message_id)


def tap(bot, user, data, *, message_id=None) -> dict:
    """Tap a button of the dialog; returns the dialog message as the bot left it."""
    mark = bot.tg.mark()
    bot.tg.press(user.telegram_id, data=data, message_id=message_id)
    return bot.tg.wait_for_call("editMessageText", after=mark, timeout=10)["result"]


def refused_tap(bot, user, data) -> str:
    """Tap a button the bot refuses; returns the alert it shows."""
    mark = bot.tg.mark()
    bot.tg.press(user.telegram_id, data=data)
    return bot.tg.wait_for_call("answerCallbackQuery", after=mark)["params"]["text"]


def say(bot, user, text) -> dict:
    mark = bot.tg.mark()
    bot.tg.send_text(user.telegram_id, text, username=user.username)
    return bot.tg.wait_for_call("sendMessage", after=mark)["result"]


def up_to_leverage(bot, user, *, symbol=BTC, margin="iso") -> str:
    open_dialog(bot, user)
    tap(bot, user, f"lev:sym:{symbol}")
    tap(bot, user, "lev:mt:fut")
    return tap(bot, user, f"lev:mm:{margin}")["text"]


# --- the whole way -------------------------------------------------------------------------------


def test_the_dialog_sets_margin_and_leverage_on_bingx_and_shows_what_bingx_reports(account, admin, on_bingx, bot):
    first = open_dialog(bot, admin)
    assert "Pick a whitelisted symbol" in first["text"] and buttons(first) == [f"lev:sym:{BTC}", "lev:x"]
    market = tap(bot, admin, f"lev:sym:{BTC}")
    assert "Spot or futures?" in market["text"] and buttons(market) == ["lev:mt:spot", "lev:mt:fut", "lev:x"]
    margin = tap(bot, admin, "lev:mt:fut")
    assert "now isolated, 5x" in margin["text"] and buttons(margin) == ["lev:mm:iso", "lev:mm:cross", "lev:x"]
    prompt = tap(bot, admin, "lev:mm:iso")["text"]
    assert "from 1 to 20 (BingX allows 125x, the account's limit is 20x, the symbol's limit is 20x)" in prompt
    confirm = say(bot, admin, "12")
    assert "to isolated, 12x?" in confirm["text"] and buttons(confirm) == ["lev:ok", "lev:x"]

    done = tap(bot, admin, "lev:ok")
    done = bot.tg.wait_for_call("editMessageText", lambda c: "Saved" in c["result"]["text"], timeout=10)["result"]

    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT", "LONG")) == ("isolated", 12)
    assert "BingX now reports BTC/USDT:USDT: isolated, 12x; changed margin mode, leverage BOTH" in done["text"]
    profile = SymbolProfile.objects.get(account=account, symbol=BTC)
    assert (profile.margin_mode, profile.leverage, profile.last_sync_ok) == ("isolated", 12, True)
    change = AuditEvent.objects.get(action="symbolprofile.margin_leverage_set")
    assert (change.actor_type, change.actor_id) == ("telegram", "601")
    assert (change.before, change.after) == (
        {"margin_mode": "isolated", "leverage": 5},
        {"margin_mode": "isolated", "leverage": 12},
    )


def test_with_several_accounts_the_account_is_asked_first(account, second_account, admin, bot):
    other = second_account

    first = open_dialog(bot, admin)

    assert "Which account?" in first["text"]
    assert buttons(first) == [f"lev:acc:{account.pk}", f"lev:acc:{other.pk}", "lev:x"]
    assert f"lev:sym:{BTC}" in buttons(tap(bot, admin, f"lev:acc:{account.pk}"))


def test_the_symbol_list_is_paged(ten_more_symbols, admin, bot):

    first = open_dialog(bot, admin)
    assert "page 1/2" in first["text"] and len(buttons(first)) == 8 + 2  # 8 symbols, Next, Cancel
    assert buttons(first)[-2] == "lev:pg:1"

    second = tap(bot, admin, "lev:pg:1")
    assert buttons(second) == ["lev:sym:C07/USDT:USDT", "lev:sym:C08/USDT:USDT", "lev:sym:C09/USDT:USDT"] + [
        "lev:pg:0",
        "lev:x",
    ]


def test_a_symbol_can_be_typed_by_name_and_an_unknown_or_not_whitelisted_one_is_refused(account, admin, bot):
    open_dialog(bot, admin)

    assert "no BingX USDT perpetual matches it" in say(bot, admin, "DOGEUSDT")["text"]
    assert "LTC/USDT:USDT is not whitelisted for this account" in say(bot, admin, "LTCUSDT")["text"]
    assert "“BTC USDT!” is not a symbol name" in say(bot, admin, "BTC USDT!")["text"]
    typed = say(bot, admin, "BINANCE:BTCUSDT.P")

    assert "BTC/USDT:USDT on main" in typed["text"] and "Spot or futures?" in typed["text"]


def test_spot_is_refused_with_the_reason_and_the_dialog_stays_on_the_step(account, admin, bot):
    open_dialog(bot, admin)
    tap(bot, admin, f"lev:sym:{BTC}")

    assert "Spot has no margin mode or leverage" in refused_tap(bot, admin, "lev:mt:spot")
    assert "now isolated, 5x" in tap(bot, admin, "lev:mt:fut")["text"]


# --- the typed leverage --------------------------------------------------------------------------


def test_leverage_that_is_not_a_number_or_out_of_range_is_refused_with_the_allowed_range(account, admin, bot):
    up_to_leverage(bot, admin)

    assert "“abc” is not a whole number; type a leverage from 1 to 20" in say(bot, admin, "abc")["text"]
    assert "21x is out of range: type a leverage from 1 to 20" in say(bot, admin, "21")["text"]
    assert "0x is out of range" in say(bot, admin, "0")["text"]
    assert "to isolated, 20x?" in say(bot, admin, "20")["text"]


def test_the_lowest_maximum_sets_the_range_here_bingxs_for_ada(ada, admin, bot):

    prompt = up_to_leverage(bot, admin, symbol="ADA/USDT:USDT", margin="cross")

    assert "from 1 to 5 (BingX allows 5x" in prompt
    assert "6x is out of range" in say(bot, admin, "6")["text"]


def test_the_accounts_limit_sets_the_range_when_it_is_the_lowest(account, admin, bot):
    bot.orm(RiskLimits.objects.filter(account=account).update, max_leverage=8)

    assert "from 1 to 8 (BingX allows 125x, the account's limit is 8x" in up_to_leverage(bot, admin)


# --- BingX refusing ------------------------------------------------------------------------------


def test_bingx_refusing_the_leverage_rolls_back_the_margin_mode_and_changes_nothing(
    bingx, account, admin, on_bingx, bot
):
    up_to_leverage(bot, admin)
    say(bot, admin, "12")
    bingx.fault("POST", LEVERAGE_PATH, Fault.error(109400, "leverage not allowed now"))

    tap(bot, admin, "lev:ok")
    done = bot.tg.wait_for_call("editMessageText", lambda c: "Not changed" in c["result"]["text"], timeout=10)

    assert "BingX refused" in done["result"]["text"] and "leverage not allowed now" in done["result"]["text"]
    assert "restored margin mode cross" in done["result"]["text"]
    assert (on_bingx.margin_mode("BTC-USDT"), on_bingx.leverage("BTC-USDT", "LONG")) == ("cross", 10)
    profile = SymbolProfile.objects.get(account=account, symbol=BTC)
    assert (profile.margin_mode, profile.leverage, profile.last_sync_ok) == ("isolated", 5, False)
    assert not AuditEvent.objects.filter(action="symbolprofile.margin_leverage_set").exists()


def test_bingx_unreachable_changes_nothing_and_says_so(bingx, account, admin, on_bingx, bot):
    up_to_leverage(bot, admin)
    say(bot, admin, "12")
    bingx.fault("GET", "/openApi/swap/v2/trade/marginType", Fault.http_error(status=503), times=None)

    tap(bot, admin, "lev:ok")
    done = bot.tg.wait_for_call("editMessageText", lambda c: "Not changed" in c["result"]["text"], timeout=20)

    assert "BingX unreachable" in done["result"]["text"]
    assert SymbolProfile.objects.get(account=account, symbol=BTC).leverage == 5


# --- leaving -------------------------------------------------------------------------------------


def test_cancel_ends_the_dialog_at_any_step_and_later_text_is_ignored(account, admin, bot):
    up_to_leverage(bot, admin)

    assert tap(bot, admin, "lev:x")["text"] == "Margin & Leverage cancelled; nothing changed."
    mark = bot.tg.mark()
    bot.tg.send_text(admin.telegram_id, "12")
    time.sleep(1.0)

    assert [c for c in bot.tg.calls() if c["index"] >= mark and c["method"] != "getUpdates"] == []
    assert SymbolProfile.objects.get(account=account, symbol=BTC).leverage == 5


def test_a_second_tap_on_confirm_changes_nothing_twice_and_says_the_dialog_ended(account, admin, bingx, bot):
    up_to_leverage(bot, admin)
    say(bot, admin, "12")
    tap(bot, admin, "lev:ok")
    bot.tg.wait_for_call("editMessageText", lambda c: "Saved" in c["result"]["text"], timeout=10)
    settings_calls = len(bingx.requests_for(LEVERAGE_PATH, "POST"))

    mark = bot.tg.mark()
    bot.tg.press(admin.telegram_id, data="lev:ok", message_id=None, check_button=False)
    answer = bot.tg.wait_for_call("answerCallbackQuery", after=mark)["params"]

    assert answer["text"] == "This Margin & Leverage dialog has ended; open it again from the menu."
    assert len(bingx.requests_for(LEVERAGE_PATH, "POST")) == settings_calls


def test_slash_cancel_ends_the_dialog(account, admin, bot):
    open_dialog(bot, admin)

    assert say(bot, admin, "/cancel")["text"] == "Margin & Leverage cancelled; nothing changed."


def test_the_dialog_expires_without_an_answer_and_says_so(quick_timeout, account, admin, bot):
    up_to_leverage(bot, admin)
    mark = bot.tg.mark()

    expired = bot.tg.wait_for_call("sendMessage", lambda c: "expired" in c["params"]["text"], after=mark)

    assert expired["params"]["text"] == "Margin & Leverage expired after 1 s without an answer; nothing changed."
    bot.tg.send_text(admin.telegram_id, "12")
    time.sleep(1.0)
    assert SymbolProfile.objects.get(account=account, symbol=BTC).leverage == 5


def test_only_admins_may_change_margin_and_leverage(account, trader, bot):
    menu = bot.running.run(
        bot.app.bot.send_message(
            trader.telegram_id,
            "Main menu",
            reply_markup={"inline_keyboard": [[{"text": "Margin & Leverage", "callback_data": "lev:go"}]]},
        )
    )
    mark = bot.tg.mark()
    bot.tg.press(trader.telegram_id, data="lev:go", message_id=menu.message_id)

    answer = bot.tg.wait_for_call("answerCallbackQuery", after=mark)["params"]
    assert answer["text"] == "Not allowed: only admins change margin and leverage."
    assert answer["show_alert"] == "true"


def test_a_dry_run_account_saves_the_profile_without_calling_bingx(paper_account, admin, bingx, bot):
    dry = paper_account
    up_to_leverage(bot, admin, margin="cross")
    say(bot, admin, "7")

    tap(bot, admin, "lev:ok")
    done = bot.tg.wait_for_call("editMessageText", lambda c: "Saved" in c["result"]["text"], timeout=10)

    assert "dry-run account: nothing sent to BingX" in done["result"]["text"]
    profile = SymbolProfile.objects.get(account=dry, symbol=BTC)
    assert (profile.margin_mode, profile.leverage) == ("cross", 7)
    assert bingx.requests_for(LEVERAGE_PATH, "POST") == []
