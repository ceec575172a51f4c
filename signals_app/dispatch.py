"""Handing stored signals to processing, after their rows are committed.

- ``celery`` (REDIS_URL set): one task per (account, symbol) lane on the broker.
- ``thread`` (embedded default): a small in-process pool, so the webhook still answers at once.
- ``inline`` (tests): processed right away, in the caller's thread.

A failed hand-over is logged and otherwise ignored: the row is stored, and the sweeper
(``signals_sweep``) picks it up after SIGNAL_SWEEP_AFTER_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None


def _hand_over(mode: str, account_id: int, symbol: str) -> None:
    try:
        if mode == "celery":
            from signals_app.tasks import signal_lane_process_task

            signal_lane_process_task.delay(account_id, symbol)
        else:
            from signals_app.pipeline import signal_lane_process

            signal_lane_process(account_id=account_id, symbol=symbol)
    except Exception:  # broker down, database gone: the signal is stored; the sweeper delivers it
        logger.exception("could not hand lane %s/%s to processing (%s); the sweeper will", account_id, symbol, mode)
    finally:
        if mode != "inline":
            close_old_connections()


def lanes_dispatch(lanes: Iterable[tuple[int, str]]) -> None:
    """Hand lanes over without making the caller wait: even publishing to the broker runs on the pool,
    so a slow or unreachable broker can never hold up the webhook's answer."""
    global _pool
    mode = settings.SIGNAL_PROCESSING
    for account_id, symbol in dict.fromkeys(lanes):
        if mode == "inline":
            _hand_over(mode, account_id, symbol)
            continue
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="signals")
        _pool.submit(_hand_over, mode, account_id, symbol)


def signals_dispatch(signals: Iterable) -> None:
    lanes_dispatch((signal.account_id, signal.symbol) for signal in signals)
