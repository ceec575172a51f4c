"""Running the fake: ``BackgroundServer`` (any aiohttp app, own thread, free port) and ``fake_bingx()``."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from aiohttp import web

from trading.markets import SNAPSHOT_PATH, market_snapshot_read

from .app import RecordedRequest, create_app
from .faults import Fault, FiredFault
from .state import FakeAccount, FakeBingXState
from .ws import WsConnection, WsHub

STARTUP_TIMEOUT_SECONDS = 5
SHUTDOWN_TIMEOUT_SECONDS = 0.5


def snapshot_contracts() -> list[dict[str, Any]]:
    """The recorded BingX contracts shipped with the project (a fresh copy each time)."""
    return copy.deepcopy(market_snapshot_read(SNAPSHOT_PATH).contracts)


class BackgroundServer:
    """Runs an aiohttp app on 127.0.0.1 (a free port) in a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(STARTUP_TIMEOUT_SECONDS)

    def run(self, coroutine, timeout: float = STARTUP_TIMEOUT_SECONDS):
        """Run a coroutine on the server loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            try:
                self.run(self._runner.cleanup(), STARTUP_TIMEOUT_SECONDS)
            except TimeoutError:
                pass
        # Requests still held by a fault (their client gave up long ago) must not outlive the server.
        self.run(_cancel_other_tasks(), STARTUP_TIMEOUT_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STARTUP_TIMEOUT_SECONDS)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def _serve(self) -> None:
        # A short shutdown wait: a test may leave a deliberately slow answer pending.
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()  # port 0: the OS picks a free one
        self.port = self._runner.addresses[0][1]


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class FakeBingX:
    """The handle ``fake_bingx()`` yields. Every method is safe to call from the test's thread."""

    def __init__(self, server: BackgroundServer, state: FakeBingXState, hub: WsHub) -> None:
        self._server = server
        self._hub = hub
        self.state = state

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._server.port}/swap-market"

    # --- accounts and market ---
    def add_account(
        self, *, api_key: str, api_secret: str, balance: Decimal = Decimal("10000"), hedge: bool = False
    ) -> FakeAccount:
        return self.state.add_account(api_key=api_key, api_secret=api_secret, balance=Decimal(balance), hedge=hedge)

    def account(self, api_key: str) -> FakeAccount:
        with self.state.lock:
            return self.state.accounts[api_key]

    def set_mark_price(self, symbol: str, price: Decimal | str | int) -> None:
        self.state.set_mark_price(symbol, Decimal(str(price)))

    def liquidate(self, api_key: str, symbol: str) -> list[int]:
        """BingX closes the account's positions on ``symbol`` (``BTC-USDT``) by force at the mark."""
        return self.state.liquidate(self.account(api_key), symbol)

    def set_clock_offset_ms(self, offset_ms: int) -> None:
        with self.state.lock:
            self.state.clock_offset_ms = int(offset_ms)

    # --- faults ---
    def fault(self, method: str, path: str, fault: Fault, *, times: int | None = 1) -> None:
        self.state.add_fault(method, path, fault, times)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    @property
    def fired_faults(self) -> list[FiredFault]:
        with self.state.lock:
            return list(self.state.fired_faults)

    # --- what was asked ---
    def requests_for(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self.state.lock:
            return [
                request
                for request in self.state.requests
                if request.path == path and (method is None or request.method == method.upper())
            ]

    # --- user-data stream ---
    @property
    def listen_keys(self) -> dict[str, str]:
        """Live listen keys -> the API key they belong to."""
        with self.state.lock:
            now = self.state.now_ms()
            return {key: entry.api_key for key, entry in self.state.listen_keys.items() if entry.expires_at_ms >= now}

    def expire_listen_key(self, key: str) -> None:
        """The key stops working: its sockets get ``listenKeyExpired`` and are closed; PUT on it answers 404."""
        self.state.listen_key_expire(key)

    def drop_ws_connections(self) -> None:
        """Cut every user-data socket at the TCP level (no close frame): clients see an abrupt disconnect."""
        self._hub.drop_all()

    @property
    def ws_connections(self) -> list[WsConnection]:
        return self._hub.connections

    def wait_for_ws_connections(self, count: int = 1, timeout: float = 5.0) -> list[WsConnection]:
        """Block until at least ``count`` user-data sockets are open (then pushes will reach them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            connections = self._hub.connections
            if len(connections) >= count:
                return connections
            time.sleep(0.01)
        raise TimeoutError(f"{len(self._hub.connections)} user-data sockets open, wanted {count}")


@contextmanager
def fake_bingx(
    *, extra_contracts: Iterable[dict[str, Any]] = (), ping_interval_seconds: float = 5.0
) -> Iterator[FakeBingX]:
    """A running fake BingX listing the shipped snapshot's contracts plus ``extra_contracts``."""
    state = FakeBingXState(swap_contracts=snapshot_contracts() + list(extra_contracts))
    hub = WsHub(state, ping_interval_seconds=ping_interval_seconds)
    app = create_app(state, hub.handle)

    async def close_sockets(_app: web.Application) -> None:
        await hub.close_all()

    app.on_shutdown.append(close_sockets)
    with BackgroundServer(app) as server:
        hub.loop = server.loop
        yield FakeBingX(server, state, hub)
