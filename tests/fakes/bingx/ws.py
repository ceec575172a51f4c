"""BingX's swap user-data stream: ``/swap-market?listenKey=K`` (reference §4).

Every server frame is gzip-compressed and sent as a binary frame. The server sends ``Ping`` every
``ping_interval_seconds``; clients answer with the text frame ``Pong`` (counted in ``pongs``). Private swap
events carry no ``dataType`` key. Events are emitted by the state under its lock from any thread; the hub
hops them onto the server loop (``call_soon_threadsafe``) into one queue per connection, so each socket
sees the events in the order the exchange produced them.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import FakeAccount, FakeBingXState

_CLOSE = object()  # queue sentinel: flush what came before, then close the socket
_ABORT = object()  # queue sentinel: drop the TCP connection without a close frame


@dataclass(eq=False)
class WsConnection:
    listen_key: str
    api_key: str
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    pongs: int = 0
    sent: list[Any] = field(default_factory=list)  # every frame sent, decoded


class WsHub:
    """The live user-data connections and the bridge from state events to sockets."""

    def __init__(self, state: FakeBingXState, *, ping_interval_seconds: float) -> None:
        self.state = state
        self.ping_interval_seconds = ping_interval_seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self._connections: list[WsConnection] = []
        self._guard = threading.Lock()
        state.on_event = self._on_event
        state.on_listen_key_gone = self._on_listen_key_gone

    # --- called from any thread -----------------------------------------------------------------------
    @property
    def connections(self) -> list[WsConnection]:
        with self._guard:
            return list(self._connections)

    def drop_all(self) -> None:
        self._post_to_all(lambda connection: True, _ABORT)

    def _on_event(self, account: FakeAccount, event: dict[str, Any]) -> None:
        self._post_to_all(lambda connection: connection.api_key == account.api_key, event)

    def _on_listen_key_gone(self, key: str, farewell: dict[str, Any] | None) -> None:
        def belongs(connection: WsConnection) -> bool:
            return connection.listen_key == key

        if farewell is not None:
            self._post_to_all(belongs, farewell)
        self._post_to_all(belongs, _CLOSE)

    def _post_to_all(self, wanted, item: Any) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        for connection in self.connections:
            if wanted(connection):
                try:
                    self.loop.call_soon_threadsafe(connection.queue.put_nowait, item)
                except RuntimeError:  # the loop is shutting down
                    return

    # --- on the server loop ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        key = request.query.get("listenKey", "")
        account = self.state.listen_key_account(key) if key else None
        if account is None:
            await ws.close(code=1008, message=b"invalid listenKey")
            return ws
        connection = WsConnection(key, account.api_key, ws, request)
        with self._guard:
            self._connections.append(connection)
        writer = asyncio.create_task(self._write(connection))
        pinger = asyncio.create_task(self._ping(connection))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT and message.data == "Pong":
                    connection.pongs += 1
        finally:
            with self._guard:
                self._connections.remove(connection)
            for task in (writer, pinger):
                task.cancel()
            await asyncio.gather(writer, pinger, return_exceptions=True)
        return ws

    async def close_all(self) -> None:
        for connection in self.connections:
            await connection.ws.close()

    async def _send(self, connection: WsConnection, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        connection.sent.append(payload)
        await connection.ws.send_bytes(gzip.compress(text.encode()))

    async def _write(self, connection: WsConnection) -> None:
        try:
            while True:
                item = await connection.queue.get()
                if item is _ABORT:
                    if connection.request.transport is not None:
                        connection.request.transport.abort()
                    return
                if item is _CLOSE:
                    await connection.ws.close(code=1000, message=b"listenKey expired")
                    return
                await self._send(connection, item)
        except (ConnectionError, RuntimeError):
            return

    async def _ping(self, connection: WsConnection) -> None:
        try:
            while True:
                await asyncio.sleep(self.ping_interval_seconds)
                connection.queue.put_nowait("Ping")  # through the queue: one writer per socket
        except RuntimeError:
            return
