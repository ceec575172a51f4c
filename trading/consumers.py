"""WebSocket consumers. Push-only: they read through selectors and never write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder

from trading.dashboard import DASHBOARD_TOPICS, dashboard_accounts, dashboard_snapshot

logger = logging.getLogger(__name__)

# Events in a burst (an entry publishes several) are answered with one snapshot after this pause.
COALESCE_SECONDS = 0.15
# A fresh snapshot also goes out this often, so ages stay current and a lost event heals itself
# (the channel layer is at-most-once).
REFRESH_SECONDS = 15
# The fields of an event that the page lists under "Recent events".
EVENT_FIELDS = ("topic", "account_id", "account", "symbol", "action", "status", "reason", "summary", "message", "rule")


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """/ws/dashboard/: staff only. Sends a snapshot on connect, after pipeline events, and every REFRESH_SECONDS.

    Messages: ``{"type": "snapshot", "reason": ..., "events": [...], "snapshot": {...}}``.
    """

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if not is_staff(self.user):
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        self.pending_events: list[dict[str, Any]] = []
        self.refresh_task: asyncio.Task | None = None
        for topic in DASHBOARD_TOPICS:
            await self.channel_layer.group_add(topic, self.channel_name)
            self.groups.append(topic)  # left again by the base class on disconnect
        await self.accept()
        await self.push(reason="connected")
        self.ticker = asyncio.create_task(self.tick())

    async def disconnect(self, code) -> None:
        for task in (getattr(self, "ticker", None), getattr(self, "refresh_task", None)):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def pipeline_event(self, event: dict[str, Any]) -> None:
        self.pending_events.append({name: event[name] for name in EVENT_FIELDS if event.get(name) not in (None, "")})
        if self.refresh_task is None or self.refresh_task.done():
            self.refresh_task = asyncio.create_task(self.push_soon())

    async def pipeline_events(self, message: dict[str, Any]) -> None:
        """Several events of one topic in one message (``signals_app.events``): each as its own."""
        for event in message.get("events", []):
            await self.pipeline_event(event)

    async def push_soon(self) -> None:
        await asyncio.sleep(COALESCE_SECONDS)
        events, self.pending_events = self.pending_events, []
        await self.push(reason="event", events=events)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            await self.push(reason="refresh")

    async def push(self, *, reason: str, events: list[dict[str, Any]] | None = None) -> None:
        try:
            snapshot = await self.snapshot()
        except Exception:  # keep the socket; the next event or refresh tries again
            logger.exception("dashboard snapshot failed")
            return
        if snapshot is None:  # no longer staff: access is checked again on every push
            await self.close(code=4403)
            return
        await self.send_json({"type": "snapshot", "reason": reason, "events": events or [], "snapshot": snapshot})

    @database_sync_to_async
    def snapshot(self) -> dict[str, Any] | None:
        still_staff = get_user_model().objects.filter(pk=self.user.pk, is_active=True, is_staff=True).exists()
        if not still_staff:
            return None
        return dashboard_snapshot(accounts=dashboard_accounts())

    @classmethod
    async def encode_json(cls, content) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)
