"""``fake_telegram()``: the fake Bot API running in a background thread, and ``FakeTelegram``, its test-side handle."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.bingx.server import BackgroundServer

from .app import API_KEY, create_app
from .checks import ApiError
from .state import DEFAULT_ERROR_TEXTS, RateLimit, TelegramState

Call = dict[str, Any]


class FakeTelegram:
    """The handle ``fake_telegram()`` yields. Every method is safe to call from the test's thread."""

    def __init__(self, server: BackgroundServer, state: TelegramState) -> None:
        self._server = server
        self.state = state

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; give PTB ``base_url(tg.base_url + "/bot")``."""
        return self._server.base_url

    @property
    def token(self) -> str:
        return self.state.token

    # --- what users do ---
    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        username: str | None = None,
        first_name: str | None = None,
    ) -> dict[str, Any]:
        """Queue a message update from ``user_id`` (``/commands`` get bot_command entities); returns the update.

        ``chat_id=None`` is the user's private chat; a negative ``chat_id`` is a group ("supergroup" for -100...).
        """
        return self.state.user_message(
            user_id=user_id, text=text, chat_id=chat_id, chat_type=chat_type, username=username, first_name=first_name
        )

    def press(
        self,
        user_id: int,
        *,
        data: str,
        message_id: int | None = None,
        chat_id: int | None = None,
        check_button: bool = True,
    ) -> str:
        """Queue a callback_query: ``user_id`` taps the button ``data`` on a message the bot sent.

        ``message_id=None``: the bot's latest message with an inline keyboard in that chat. The message is sent as
        the client sees it now. With ``check_button`` (default), ``data`` must be on one of its buttons, as with a real
        client; pass False to forge a stale or foreign tap. Returns the callback query id.
        """
        return self.state.button_press(
            user_id=user_id, data=data, message_id=message_id, chat_id=chat_id, check_button=check_button
        )

    # --- what the bot did ---
    def calls(self, method: str | None = None) -> list[Call]:
        """Answered API calls in answer order: ``{"index", "method", "params", "time", "status", "result"|"error"}``.

        ``params`` are decoded (JSON-in-form fields parsed, uploads as ``{"file_name", "size"}``); ``time`` is
        ``time.monotonic()`` at arrival. A long poll is recorded when it returns.
        """
        with self.state.lock:
            wanted = method.lower() if method else None
            return [copy.deepcopy(c) for c in self.state.calls if wanted in (None, c["method"].lower())]

    def mark(self) -> int:
        """The number of calls recorded so far: pass it as ``after=`` to wait only for later calls."""
        with self.state.lock:
            return len(self.state.calls)

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        timeout: float = 5.0,
        after: int = 0,
    ) -> Call:
        """Block until a call to ``method`` with index >= ``after`` (and matching ``predicate``) is answered."""
        deadline = time.monotonic() + timeout
        with self.state.changed:
            while True:
                for call in self.state.calls[after:]:
                    if call["method"].lower() == method.lower() and (predicate is None or predicate(call)):
                        return copy.deepcopy(call)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [c["method"] for c in self.state.calls[after:]]
                    raise TimeoutError(f"no {method} call within {timeout}s (calls since #{after}: {seen})")
                self.state.changed.wait(remaining)

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat as the client shows them now (edits applied, deleted ones gone)."""
        return self.state.bot_messages(chat_id)

    def documents(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Sent documents: ``{"chat_id", "message_id", "file_name", "mime_type", "content": bytes, "file_id", ...}``."""
        with self.state.lock:
            return [copy.deepcopy(d) for d in self.state.documents if chat_id is None or d["chat_id"] == chat_id]

    def commands(self) -> list[dict[str, str]]:
        """The default-scope command list set by setMyCommands."""
        with self.state.lock:
            return copy.deepcopy(self.state.commands.get(self.state._command_key({}), []))

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by getUpdates (a later offset)."""
        with self.state.lock:
            return copy.deepcopy(self.state.updates)

    # --- faults and limits ---
    def fail_next(
        self,
        method: str,
        status: int = 429,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int | None = 1,
    ) -> None:
        """The next ``times`` calls to ``method`` (None: all, until ``clear_failures``) answer a Telegram error.

        A 429 carries ``parameters.retry_after`` (default 1); other statuses only when ``retry_after`` is given.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if status == 429
                else DEFAULT_ERROR_TEXTS.get(status, f"fake failure {status}")
            )
        parameters = {
            key: value
            for key, value in (("retry_after", retry_after), ("migrate_to_chat_id", migrate_to_chat_id))
            if value is not None
        }
        self.state.add_failure(method, ApiError(status, description, parameters or None), times)

    def clear_failures(self) -> None:
        with self.state.lock:
            self.state.failures.clear()

    def set_rate_limit(
        self,
        per_chat_per_second: int | None = 1,
        overall_per_second: int | None = 30,
        per_group_per_minute: int | None = 20,
    ) -> None:
        """Answer send*/edit* calls over Telegram's flood limits with 429 + retry_after (off until called)."""
        with self.state.lock:
            self.state.rate_limit = RateLimit(per_chat_per_second, overall_per_second, per_group_per_minute)

    def clear_rate_limit(self) -> None:
        with self.state.lock:
            self.state.rate_limit = None


@contextmanager
def fake_telegram(
    *,
    token: str = "123456:TEST",
    bot_username: str = "tvbingx_bot",
    long_poll_cap_seconds: float = 2.0,
) -> Iterator[FakeTelegram]:
    """A running fake Bot API for one bot. getUpdates waits at most ``long_poll_cap_seconds`` per call."""
    state = TelegramState(token=token, bot_username=bot_username)
    app = create_app(state, long_poll_cap_seconds=long_poll_cap_seconds)
    with BackgroundServer(app) as server:
        wake = app[API_KEY].wake
        state.on_change = lambda: server.loop.call_soon_threadsafe(wake.set)
        yield FakeTelegram(server, state)
        state.on_change = lambda: None
