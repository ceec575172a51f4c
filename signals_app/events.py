"""Pipeline events on the channel layer (`signals.raw`, `signals.validated`, `orders.executed`, ...).

Sent after the transaction commits, so a rollback never announces anything. The channel layer is
at-most-once: the database stays the record, and consumers (dashboard, bot) re-read it as needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def event_payload(topic: str, signal, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": "pipeline.event", "topic": topic, **extra}
    if signal is not None:
        payload.update(
            signal_id=signal.pk,
            account_id=signal.account_id,
            symbol=signal.symbol,
            action=signal.action,
            status=signal.status,
            reason=signal.rejection_reason,
        )
    return payload


def _send(topic: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(topic, payload)
    except Exception:  # a lost event must never fail the pipeline: the database has the truth
        logger.warning("could not publish %s", topic, exc_info=True)


class _EventSender:
    """Sends events from one background thread with its own event loop, one at a time, in publishing order.

    The loop lives as long as the process, so the channel layer keeps its connections between events (a
    fresh loop per event would open a fresh Redis connection each time). One consumer drains a bounded
    queue: a burst neither reorders events nor exhausts the connection pool, and when Redis is down the
    backlog is capped (events are at-most-once by design; the database has the truth).
    """

    QUEUE_LIMIT = 10_000

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._lock = threading.Lock()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._queue = asyncio.Queue(maxsize=self.QUEUE_LIMIT)
                threading.Thread(target=loop.run_forever, name="events", daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._consume(), loop)
                self._loop = loop
            return self._loop

    async def _consume(self) -> None:
        while True:
            topic, payload = await self._queue.get()
            layer = get_channel_layer()
            try:
                if layer is not None:
                    await layer.group_send(topic, payload)
            except Exception:  # a lost event must never fail anything
                logger.warning("could not publish %s", topic, exc_info=True)

    def _enqueue(self, item: tuple[str, dict[str, Any]]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("event backlog full; %s dropped", item[0])

    def submit(self, topic: str, payload: dict[str, Any]) -> None:
        self._start().call_soon_threadsafe(self._enqueue, (topic, payload))


_sender = _EventSender()


def publish(topic: str, signal, **extra: Any) -> None:
    """Publish after commit; off the caller's thread, except in tests (delivered before the call returns)."""
    payload = event_payload(topic, signal, **extra)
    if settings.SIGNAL_PROCESSING == "inline":
        transaction.on_commit(lambda: _send(topic, payload))
    else:
        transaction.on_commit(lambda: _sender.submit(topic, payload))
