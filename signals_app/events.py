"""Pipeline events on the channel layer (`signals.raw`, `signals.validated`, `orders.executed`, ...).

A message is one event (``{"type": "pipeline.event", "topic": ..., ...}``) or, when the background sender
has several of one topic at once, several (``{"type": "pipeline.events", "topic": ..., "events": [...]}``,
each as ``pipeline.event`` would carry it). Subscribers handle both (``pipeline_events`` per event).

Sent after the transaction commits, so a rollback never announces anything. The channel layer is
at-most-once: the database stays the record, and consumers (dashboard, bot) re-read it as needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
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


async def _groups_with_members(layer, topics: set[str]) -> set[str]:
    """The topics whose group has a live member: for the others group_send would send nothing.

    On channels_redis, group_send costs two Redis round trips even when nobody listens (the usual case: a
    dashboard is rarely open). One ZCOUNT per topic and batch answers the same question: a member counts
    while its score (the time it joined) is newer than group_expiry, exactly the members group_send keeps.
    Expired members stay until a group_send to their group removes them, as they do while no event comes.
    Any other layer, or a failed count, gets its group_send per event as before.
    """
    if not isinstance(layer, RedisChannelLayer):
        return topics
    live_after = f"({int(time.time()) - layer.group_expiry}"
    audience = set()
    for topic in topics:
        try:
            connection = layer.connection(layer.consistent_hash(topic))
            if await connection.zcount(layer._group_key(topic), live_after, "+inf"):
                audience.add(topic)
        except Exception:  # group_send decides, and logs its own failure
            audience.add(topic)
    return audience


class _EventSender:
    """Sends events from one background thread with its own event loop, in batches, in publishing order.

    The loop lives as long as the process, so the channel layer keeps its connections between events (a
    fresh loop per event would open a fresh Redis connection each time). One consumer sends one batch at a
    time: a burst neither reorders events nor exhausts the connection pool, and when Redis is down the
    backlog is capped (events are at-most-once by design; the database has the truth).

    Batches: an event waits at most BATCH_SECONDS for others to join it. Waking the loop and asking Redis
    who listens cost ~0.2 ms of CPU per event under load (the thread contends for the GIL with the
    webhook's requests); per batch it is paid once, and a batch nobody listens to costs one ZCOUNT. The
    dashboard, the one listener, already gathers events for 150 ms before it refreshes, so 100 ms batches
    cost it nothing: at 20 ms, the sender of a stream applying 2,000 events/s took 13% of a core.

    Within a batch, a topic's events go together: one event as it is (``pipeline.event``), several as one
    ``pipeline.events`` message holding them in order (``events``, at most MESSAGE_EVENTS each). A
    ``group_send`` costs ~0.4 ms of CPU however small its message, and the stream's bursts publish a fill
    each: one message per topic per batch keeps the sender from taking a quarter of the process's time.
    Each topic keeps its order; topics are sent in the order of their first event in the batch.
    """

    QUEUE_LIMIT = 10_000
    BATCH_SECONDS = 0.1
    MESSAGE_EVENTS = 100

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str, dict[str, Any]]] = []  # submitted, not yet taken by the consumer
        self._flush_scheduled = False  # a wake-up of the consumer is on its way for the pending events
        self._ready: asyncio.Event | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._ready = asyncio.Event()
                threading.Thread(target=loop.run_forever, name="events", daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._consume(), loop)
                self._loop = loop
            return self._loop

    async def _consume(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                self._flush_scheduled = False  # from here a new event schedules the next batch
            layer = get_channel_layer()
            if layer is None or not batch:
                continue
            audience = await _groups_with_members(layer, {topic for topic, _ in batch})
            for topic, message in self._messages(batch, audience):
                try:
                    await layer.group_send(topic, message)
                except Exception:  # a lost event must never fail anything
                    logger.warning("could not publish %s", topic, exc_info=True)

    @classmethod
    def _messages(cls, batch: list[tuple[str, dict[str, Any]]], audience: set[str]):
        """The batch's messages: per topic with an audience, its events in order, several to a message."""
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for topic, payload in batch:
            if topic in audience:
                by_topic.setdefault(topic, []).append(payload)
        for topic, payloads in by_topic.items():
            for start in range(0, len(payloads), cls.MESSAGE_EVENTS):
                chunk = payloads[start : start + cls.MESSAGE_EVENTS]
                yield (
                    topic,
                    chunk[0] if len(chunk) == 1 else {"type": "pipeline.events", "topic": topic, "events": chunk},
                )

    def _flush_later(self) -> None:
        self._loop.call_later(self.BATCH_SECONDS, self._ready.set)

    def submit(self, topic: str, payload: dict[str, Any]) -> None:
        loop = self._start()
        with self._lock:
            if len(self._pending) >= self.QUEUE_LIMIT:
                logger.warning("event backlog full; %s dropped", topic)
                return
            self._pending.append((topic, payload))
            if self._flush_scheduled:  # the batch is open: no wake-up per event
                return
            self._flush_scheduled = True
        loop.call_soon_threadsafe(self._flush_later)


_sender = _EventSender()


# Warnings and errors nobody else records: each also gets an audit row ("alert.<topic>") when raised, so the
# Telegram notifications (telegram_bot/notifications/fanout.py) are derived from the database, not from
# this at-most-once channel. Circuit-breaker alerts are left out: their AuditEvent
# (tradingaccount.exchange_health) is written in the same transaction as the change.
RECORDED_TOPIC_PREFIXES = ("alerts.", "risk.")
RECORDED_TOPICS = frozenset({"signals.outcome_unknown"})  # an order BingX may or may not have: an error
UNRECORDED_TOPICS = frozenset({"alerts.circuit_open", "alerts.circuit_closed"})


def alert_record(topic: str, payload: dict[str, Any]) -> None:
    """The alert's audit row, in the caller's transaction (or committed at once outside one): a rollback
    takes it back together with the change, as it does the event. Never raises into the caller."""
    from trading.audit import Actor, audit_record

    details = {key: value for key, value in payload.items() if key != "type"}
    try:
        with transaction.atomic():  # a savepoint: a failed insert leaves the caller's transaction usable
            audit_record(
                actor=Actor.system("alerts"),
                action=f"alert.{topic}",
                after=details,
                reason=str(details.get("message") or details.get("summary") or details.get("reason") or "")[:2000],
            )
    except Exception:  # the alert is still published and logged by its caller
        logger.exception("could not record alert %s", topic)


def publish(topic: str, signal, **extra: Any) -> None:
    """Publish after commit; off the caller's thread, except in tests (delivered before the call returns)."""
    payload = event_payload(topic, signal, **extra)
    if (topic.startswith(RECORDED_TOPIC_PREFIXES) or topic in RECORDED_TOPICS) and topic not in UNRECORDED_TOPICS:
        alert_record(topic, payload)
    if settings.SIGNAL_PROCESSING == "inline":
        transaction.on_commit(lambda: _send(topic, payload))
    else:
        transaction.on_commit(lambda: _sender.submit(topic, payload))
