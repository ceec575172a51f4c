"""A protocol-faithful fake Telegram Bot API on 127.0.0.1 that the real python-telegram-bot talks to.

- ``checks``: Telegram's input rules and error texts (pure);
- ``state``: chats, messages, updates, recorded calls, injected failures, flood limits;
- ``app``: the HTTP side (``/bot{token}/{method}``, envelopes, getUpdates long poll);
- ``server``: ``fake_telegram()`` and the ``FakeTelegram`` handle.

Usage::

    with fake_telegram(token="123456:TEST", bot_username="tvbingx_bot") as tg:
        app = ApplicationBuilder().token(tg.token).base_url(f"{tg.base_url}/bot").build()
        ...  # initialize + updater.start_polling(timeout=1) + start
        tg.send_text(42, "/start")
        tg.wait_for_call("sendMessage")
"""

from .app import create_app
from .checks import ApiError
from .server import FakeTelegram, fake_telegram
from .state import TelegramState

__all__ = ["ApiError", "FakeTelegram", "TelegramState", "create_app", "fake_telegram"]
