"""Pipeline events on the channel layer (`signals.raw`, `signals.validated`, `orders.executed`, ...).

Sent after the transaction commits, so a rollback never announces anything. The channel layer is
at-most-once: the database stays the record, and consumers (dashboard, bot) re-read it as needed.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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


def publish(topic: str, signal, **extra: Any) -> None:
    payload = event_payload(topic, signal, **extra)
    transaction.on_commit(lambda: _send(topic, payload))
