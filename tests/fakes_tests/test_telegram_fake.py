"""The fake Telegram Bot API, driven by the real python-telegram-bot 22 ``Application`` (and raw HTTP for the wire)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest, InvalidToken, RetryAfter
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fakes.telegram import fake_telegram
from tests.fakes.telegram.ptb import ptb_builder, running_application

USER = 42
REPO_ROOT = Path(__file__).resolve().parents[2]


def menu(auto_trade: bool) -> InlineKeyboardMarkup:
    label = "Auto-Trade: ON" if auto_trade else "Auto-Trade: OFF"
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data="m:auto")],
            [InlineKeyboardButton("Status", callback_data="m:status")],
        ]
    )


async def command_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text("Main menu", reply_markup=menu(False))


async def callback_auto(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer()
    await query.edit_message_text("Auto-Trade is ON", reply_markup=menu(True))


def menu_bot(tg):
    application = ptb_builder(tg).build()
    application.add_handler(CommandHandler("start", command_start))
    application.add_handler(CallbackQueryHandler(callback_auto, pattern=r"^m:auto$"))
    return application


def keyboard_data(message: dict) -> list[list[tuple[str, str]]]:
    return [[(b["text"], b["callback_data"]) for b in row] for row in message["reply_markup"]["inline_keyboard"]]


def test_start_then_a_button_press_edits_the_menu_in_place():
    with fake_telegram(token="123456:TEST", bot_username="tvbingx_bot") as tg, running_application(menu_bot(tg)):
        start = tg.wait_for_call("getUpdates")
        assert [c["method"] for c in tg.calls()][:2] == ["getMe", "deleteWebhook"]
        tg.send_text(USER, "/start", username="alice")
        sent = tg.wait_for_call("sendMessage", after=start["index"])
        assert sent["params"]["chat_id"] == str(USER)
        assert sent["params"]["reply_markup"]["inline_keyboard"][0][0] == {
            "text": "Auto-Trade: OFF",
            "callback_data": "m:auto",
        }
        message_id = sent["result"]["message_id"]

        mark = tg.mark()
        query_id = tg.press(USER, message_id=message_id, data="m:auto")
        answer = tg.wait_for_call("answerCallbackQuery", after=mark)
        edit = tg.wait_for_call("editMessageText", after=mark)

        assert answer["params"]["callback_query_id"] == query_id
        assert answer["index"] < edit["index"]
        assert (edit["params"]["chat_id"], edit["params"]["message_id"]) == (str(USER), str(message_id))
        (shown,) = tg.messages(USER)
        assert shown["text"] == "Auto-Trade is ON"
        assert keyboard_data(shown) == [[("Auto-Trade: ON", "m:auto")], [("Status", "m:status")]]
        assert "edit_date" in shown


def test_group_commands_and_presses_use_the_group_chat():
    with fake_telegram() as tg, running_application(menu_bot(tg)):
        tg.send_text(7, "/start@tvbingx_bot", chat_id=-1001234, chat_type="supergroup")
        sent = tg.wait_for_call("sendMessage")
        assert sent["result"]["chat"] == {"id": -1001234, "type": "supergroup", "title": "Group -1001234"}
        tg.press(7, chat_id=-1001234, data="m:auto")  # the latest keyboard in that chat
        tg.wait_for_call("editMessageText", lambda c: c["params"]["chat_id"] == "-1001234")
        assert tg.messages(-1001234)[0]["text"] == "Auto-Trade is ON"
        with pytest.raises(ValueError, match="no button 'm:nope'"):
            tg.press(7, chat_id=-1001234, data="m:nope")


def test_injected_429_is_retry_after_with_the_given_delay():
    with fake_telegram() as tg, running_application(ptb_builder(tg).build()) as bot:
        tg.fail_next("sendMessage", retry_after=3)
        with pytest.raises(RetryAfter) as caught:
            bot.run(bot.bot.send_message(USER, "fill"))
        assert "Retry in 3 seconds" in str(caught.value)
        assert tg.calls("sendMessage")[0]["error"]["parameters"] == {"retry_after": 3}
        assert bot.run(bot.bot.send_message(USER, "fill")).text == "fill"  # only the next call failed


def test_aio_rate_limiter_retries_after_the_pause():
    from telegram.ext import AIORateLimiter

    with fake_telegram() as tg:
        application = ptb_builder(tg).rate_limiter(AIORateLimiter(max_retries=1)).build()
        with running_application(application) as bot:
            tg.fail_next("sendMessage", retry_after=1)
            assert bot.run(bot.bot.send_message(USER, "fill")).text == "fill"
            failed, retried = tg.calls("sendMessage")
            assert (failed["status"], retried["status"]) == (429, 200)
            assert retried["time"] - failed["time"] >= 1.0


def test_flood_limit_answers_429_when_a_chat_gets_two_messages_in_a_second():
    with fake_telegram() as tg, running_application(ptb_builder(tg).build()) as bot:
        tg.set_rate_limit(per_chat_per_second=1)
        bot.run(bot.bot.send_message(USER, "one"))
        bot.run(bot.bot.send_message(USER + 1, "another chat"))
        with pytest.raises(RetryAfter):
            bot.run(bot.bot.send_message(USER, "two"))
        tg.clear_rate_limit()
        bot.run(bot.bot.send_message(USER, "two"))


def test_telegram_validation_errors_reach_ptb_as_bad_request():
    with fake_telegram() as tg, running_application(ptb_builder(tg).build()) as bot:
        oversized = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            bot.run(bot.bot.send_message(USER, "card", reply_markup=oversized))
        with pytest.raises(BadRequest, match="Message is too long"):
            bot.run(bot.bot.send_message(USER, "x" * 4097))
        with pytest.raises(BadRequest, match="Can't parse entities"):
            bot.run(bot.bot.send_message(USER, "PnL < 0", parse_mode="HTML"))
        with pytest.raises(BadRequest, match="Message to edit not found"):
            bot.run(bot.bot.edit_message_text("x", chat_id=USER, message_id=999))

        sent = bot.run(bot.bot.send_message(USER, "<b>card</b>", parse_mode="HTML", reply_markup=menu(False)))
        assert tg.messages(USER)[0]["text"] == "card"
        with pytest.raises(BadRequest, match="Message is not modified"):
            bot.run(sent.edit_text("<b>card</b>", parse_mode="HTML", reply_markup=menu(False)))
        bot.run(sent.edit_text("<b>card</b>", parse_mode="HTML"))  # no reply_markup: the keyboard goes away
        assert "reply_markup" not in tg.messages(USER)[0]
        bot.run(sent.edit_reply_markup(menu(True)))
        assert keyboard_data(tg.messages(USER)[0])[0] == [("Auto-Trade: ON", "m:auto")]

        assert bot.run(sent.delete()) is True
        assert tg.messages(USER) == []
        with pytest.raises(BadRequest, match="Message to delete not found"):
            bot.run(sent.delete())


def test_unknown_method_is_a_clear_bad_request_not_invalid_token():
    with fake_telegram() as tg, running_application(ptb_builder(tg).build()) as bot:
        with pytest.raises(BadRequest, match="fake: method sendDice not implemented"):
            bot.run(bot.bot.send_dice(USER))


def test_wrong_token_is_invalid_token_at_initialize():
    with fake_telegram(token="123456:TEST") as tg:
        application = ptb_builder(tg, token="123456:WRONG").build()
        with pytest.raises(InvalidToken):
            asyncio.run(application.initialize())
        assert tg.calls() == [
            {
                "method": "getMe",
                "params": {},
                "time": tg.calls()[0]["time"],
                "status": 401,
                "error": {"ok": False, "error_code": 401, "description": "Unauthorized"},
                "index": 0,
            }
        ]


def test_send_document_uploads_the_file_and_commands_are_kept():
    with fake_telegram() as tg, running_application(ptb_builder(tg).build()) as bot:
        report = InputFile(io.BytesIO(b"date,pnl\n2025-01-01,12.5\n"), filename="daily.csv")
        message = bot.run(bot.bot.send_document(USER, report, caption="Daily report"))
        assert message.document.file_name == "daily.csv"
        (stored,) = tg.documents(USER)
        assert (stored["file_name"], stored["content"], stored["caption"]) == (
            "daily.csv",
            b"date,pnl\n2025-01-01,12.5\n",
            "Daily report",
        )
        assert tg.calls("sendDocument")[0]["params"]["document"] == {"file_name": "daily.csv", "size": 25}

        assert bot.run(bot.bot.set_my_commands([("start", "Main menu"), ("status", "Positions")]))
        assert [c.command for c in bot.run(bot.bot.get_my_commands())] == ["start", "status"]
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            bot.run(bot.bot.set_my_commands([("Bad-Name", "x")]))
        tg.send_text(USER, "hi")
        assert bot.run(bot.bot.get_chat(USER)).type == "private"


def test_get_updates_long_polls_confirms_by_offset_and_terminates_an_older_poll():
    with fake_telegram(long_poll_cap_seconds=1.0) as tg, httpx.Client(base_url=f"{tg.base_url}/bot{tg.token}") as http:
        started = time.monotonic()
        assert http.post("/getUpdates", data={"timeout": "30"}).json() == {"ok": True, "result": []}
        assert 0.9 <= time.monotonic() - started < 2.0  # capped

        threading.Timer(0.2, tg.send_text, args=(USER, "/status")).start()
        started = time.monotonic()
        (update,) = http.post("/getUpdates", json={"timeout": 1, "offset": 0}).json()["result"]
        assert time.monotonic() - started < 0.9  # woke up on arrival
        assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 7}]
        assert http.get("/getUpdates", params={"offset": update["update_id"]}).json()["result"] == [update]
        assert http.post("/getUpdates", data={"offset": update["update_id"] + 1}).json()["result"] == []

        with httpx.Client(base_url=http.base_url) as other:
            older = threading.Thread(target=lambda: results.append(other.post("/getUpdates", data={"timeout": "5"})))
            results: list[httpx.Response] = []
            older.start()
            time.sleep(0.2)
            http.post("/getUpdates", data={"timeout": "0"})
            older.join(3)
        assert results[0].status_code == 409
        assert results[0].json()["description"].startswith("Conflict: terminated by other getUpdates request")

        markup = {"inline_keyboard": [[{"text": "OK", "callback_data": "sig:ok:7"}]]}
        as_json = http.post("/sendMessage", json={"chat_id": USER, "text": "card", "reply_markup": markup}).json()
        as_form = http.post("/sendMessage", data={"chat_id": USER, "text": "card", "reply_markup": json.dumps(markup)})
        assert as_json["result"]["reply_markup"] == as_form.json()["result"]["reply_markup"] == markup
        assert [c["params"]["reply_markup"] for c in tg.calls("sendMessage")] == [markup, markup]

        assert http.post("/getFoo").json() == {
            "ok": False,
            "error_code": 400,
            "description": "fake: method getFoo not implemented",
        }
        assert httpx.post(f"{tg.base_url}/nothing").status_code == 404


SMOKE_BOT = textwrap.dedent(
    """
    import sys
    from telegram.ext import ApplicationBuilder, CommandHandler

    async def command_start(update, context):
        await update.effective_message.reply_text("hello")

    app = ApplicationBuilder().token(sys.argv[2]).base_url(sys.argv[1] + "/bot").build()
    app.add_handler(CommandHandler("start", command_start))
    app.run_polling(timeout=1)
    """
)


def test_run_polling_in_a_subprocess_answers_and_exits_0_on_sigterm():
    with fake_telegram() as tg:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        bot = subprocess.Popen(
            [sys.executable, "-c", SMOKE_BOT, tg.base_url, tg.token], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            first_poll = tg.wait_for_call("getUpdates", timeout=15)
            assert [c["method"] for c in tg.calls()][:2] == ["getMe", "deleteWebhook"]
            update = tg.send_text(USER, "/start")
            assert tg.wait_for_call("sendMessage", after=first_poll["index"])["params"]["text"] == "hello"
            mark = tg.mark()
            bot.send_signal(signal.SIGTERM)
            assert bot.wait(15) == 0, bot.stderr.read()
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        # On shutdown PTB confirms what it read with one last getUpdates(timeout=0); the poll it abandoned is
        # answered 409 (terminated by that newer getUpdates), as Telegram does.
        final = [c for c in tg.calls("getUpdates") if c["index"] >= mark and c["params"].get("timeout") == "0"]
        assert [c["params"]["offset"] for c in final] == [str(update["update_id"] + 1)]
        assert tg.pending_updates == []
