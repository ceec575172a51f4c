"""Driving a real python-telegram-bot ``Application`` against the fake from sync tests.

``run_polling()`` installs signal handlers and so needs the main thread; tests instead run the same sequence
(``initialize`` -> ``updater.start_polling`` -> ``start``, then the reverse) on an event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from telegram.ext import Application, ApplicationBuilder

from .server import FakeTelegram

T = TypeVar("T")
STEP_TIMEOUT_SECONDS = 10.0


def ptb_builder(tg: FakeTelegram, *, token: str | None = None) -> ApplicationBuilder:
    """An ``ApplicationBuilder`` pointed at the fake (request URL = ``{base_url}{token}/{method}``)."""
    return ApplicationBuilder().token(token or tg.token).base_url(f"{tg.base_url}/bot")


class RunningApplication:
    """A polling ``Application`` on its own loop; ``run()`` executes a coroutine there (``bot.send_message``...)."""

    def __init__(self, application: Application, loop: asyncio.AbstractEventLoop) -> None:
        self.application = application
        self.loop = loop

    @property
    def bot(self):
        return self.application.bot

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT_SECONDS) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextmanager
def running_application(application: Application, *, poll_timeout: float = 1.0) -> Iterator[RunningApplication]:
    """Start polling in a background thread; on exit stop the updater and the application and shut them down."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ptb-application", daemon=True)
    thread.start()
    running = RunningApplication(application, loop)
    try:
        running.run(application.initialize())
        try:
            running.run(application.updater.start_polling(timeout=poll_timeout))
            running.run(application.start())
            yield running
        finally:
            if application.updater.running:  # the order run_polling() uses
                running.run(application.updater.stop())
            if application.running:
                running.run(application.stop())
            running.run(application.shutdown())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STEP_TIMEOUT_SECONDS)
        loop.close()
