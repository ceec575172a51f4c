"""Handing stored signals to processing, after their rows are committed.

- ``celery`` (REDIS_URL set): a task per (account, symbol) lane on the broker, published from one background thread.
- ``thread`` (embedded default): a small in-process pool, so the webhook still answers at once.
- ``inline`` (tests): processed right away, in the caller's thread.

Hand-overs are coalesced per lane. ``signal_lane_process`` works through its lane until no signal waits, so a
signal committed before a hand-over of its lane *starts* needs no hand-over of its own: a lane that already
waits for one is not queued again. A lane leaves the waiting set just before its hand-over starts, so a signal
committed after that gets a new one. Under a burst on one lane this turns a broker publish per alert into one
per batch (a publish is ~0.3-1 ms of CPU, under the GIL every request of the process shares).

A failed hand-over is logged and otherwise ignored: the row is stored, and the sweeper
(``signals_sweep``) picks it up after SIGNAL_SWEEP_AFTER_SECONDS.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

Lane = tuple[int, str]  # (account_id, symbol)


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


class LaneDispatcher:
    """Background threads that hand lanes over in arrival order, with at most one waiting hand-over per lane."""

    def __init__(self, *, mode: str, workers: int, lane_interval: float = 0.0) -> None:
        self.mode = mode
        self.workers = workers
        self.lane_interval = lane_interval
        self._last_started: dict[Lane, float] = {}
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a lane waits
        self._idle = threading.Condition(self._lock)  # a hand-over finished
        self._queue: deque[Lane] = deque()
        self._waiting: set[Lane] = set()
        self._running = 0
        self._threads: list[threading.Thread] = []

    def submit(self, lanes: Iterable[Lane]) -> None:
        """Queue the lanes not already waiting; never blocks on the broker or the database."""
        with self._lock:
            added = False
            for lane in lanes:
                if lane not in self._waiting:
                    self._waiting.add(lane)
                    self._queue.append(lane)
                    added = True
            if not added:
                return
            self._start_threads()
            self._ready.notify()

    def _start_threads(self) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"signals-{self.mode}-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            with self._lock:
                lane = self._next_lane()
                self._waiting.discard(lane)  # before the hand-over: a later commit queues the lane again
                self._running += 1
            try:
                _hand_over(self.mode, *lane)
            except Exception:  # _hand_over logs its own failures; this thread must outlive anything else
                logger.exception("hand-over of lane %s/%s failed; the sweeper will deliver it", *lane)
            finally:
                with self._lock:
                    self._running -= 1
                    self._idle.notify_all()

    def _next_lane(self) -> Lane:
        """The first queued lane whose last hand-over started at least lane_interval ago (lock held)."""
        while True:
            if not self._queue:
                self._ready.wait()
                continue
            now = time.monotonic()
            due_at = None
            for lane in self._queue:
                lane_due = self._last_started.get(lane, 0.0) + self.lane_interval
                if lane_due <= now:
                    self._queue.remove(lane)
                    if self.lane_interval:
                        self._last_started[lane] = now
                        if len(self._last_started) > 10_000:
                            self._last_started = {lane: now}
                    return lane
                due_at = lane_due if due_at is None else min(due_at, lane_due)
            self._ready.wait(due_at - now)

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until nothing waits or runs (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True


# A lane is published at most once per this interval, so a burst on one lane costs ~50 publishes a second
# whatever its rate. A lane's first signal after a quiet spell is handed over at once; one arriving within
# 20 ms of its lane's last hand-over waits at most that long, and then the worker is most likely still on the
# lane (processing a signal takes longer than that) and takes it in its loop without needing the publish.
CELERY_LANE_INTERVAL = 0.02


def _dispatchers_new() -> dict[str, LaneDispatcher]:
    # Publishing is quick and the broker serialises it anyway: one thread. In-process processing can take
    # a while per lane, so lanes run side by side.
    return {
        "celery": LaneDispatcher(mode="celery", workers=1, lane_interval=CELERY_LANE_INTERVAL),
        "thread": LaneDispatcher(mode="thread", workers=4),
    }


_dispatchers = _dispatchers_new()


def _after_fork_in_child() -> None:
    global _dispatchers
    _dispatchers = _dispatchers_new()  # the parent's threads and locks do not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)


def lanes_dispatch(lanes: Iterable[Lane]) -> None:
    """Hand lanes over without making the caller wait: even publishing to the broker runs on a background
    thread, so a slow or unreachable broker can never hold up the webhook's answer. Call after commit."""
    mode = settings.SIGNAL_PROCESSING
    lanes = list(dict.fromkeys(lanes))
    if mode == "inline":
        for account_id, symbol in lanes:
            _hand_over(mode, account_id, symbol)
        return
    _dispatchers["celery" if mode == "celery" else "thread"].submit(lanes)


def lanes_wait_idle(timeout: float = 10) -> bool:
    """Wait until every queued hand-over of this process has run; False on timeout."""
    deadline = time.monotonic() + timeout
    return all(dispatcher.wait_idle(max(0.0, deadline - time.monotonic())) for dispatcher in _dispatchers.values())


def signals_dispatch(signals: Iterable) -> None:
    lanes_dispatch((signal.account_id, signal.symbol) for signal in signals)
