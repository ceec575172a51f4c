"""Calling the sync ORM from the bot's async handlers.

The bot process has no request cycle, so nothing would close a connection the database dropped (restart,
CONN_MAX_AGE): ``db`` closes unusable or expired connections before and after each call, and runs the call on
asgiref's one thread for sync code (``sync_to_async``), where the ORM is allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")


def db(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``await db(service)(**kwargs)``: the sync ``service`` run off the event loop with fresh connections."""

    @functools.wraps(fn)
    def with_fresh_connections(*args: P.args, **kwargs: P.kwargs) -> T:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(with_fresh_connections)
