"""A fake BingX on 127.0.0.1 that unmodified ccxt can talk to: BingX's own wire format, no internet.

Today it serves the public market endpoints. It is laid out to grow into the full fake exchange:
``FakeBingXState`` holds what the exchange knows, ``create_app(state)`` maps BingX endpoints onto it,
and ``BackgroundServer`` runs any aiohttp app on a free port in its own thread, so sync tests (and
sync ccxt) can use it. ``fake_bingx()`` puts the three together.

Usage::

    with fake_bingx(extra_contracts=[pepe_contract]) as bingx:
        settings.BINGX_BASE_URL = bingx.base_url
        ...
        assert bingx.state.paths() == ["/openApi/swap/v2/quote/contracts"]
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trading.markets import SNAPSHOT_PATH, market_snapshot_read

STARTUP_TIMEOUT_SECONDS = 5
SHUTDOWN_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class FakeBingXState:
    """What the fake exchange knows. Tests may change it while the server runs."""

    swap_contracts: list[dict[str, Any]]
    # When set, every market endpoint answers with this BingX error (code, msg), as BingX does: HTTP 200.
    market_error: tuple[int, str] | None = None
    # Seconds every answer is held back: a slow or hanging BingX.
    response_delay_seconds: float = 0
    requests: list[RecordedRequest] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


STATE = web.AppKey("state", FakeBingXState)


def snapshot_contracts() -> list[dict[str, Any]]:
    """The recorded BingX contracts shipped with the project (a fresh copy each time)."""
    return copy.deepcopy(market_snapshot_read(SNAPSHOT_PATH).contracts)


def create_app(state: FakeBingXState) -> web.Application:
    app = web.Application(middlewares=[_record_request])
    app[STATE] = state
    app.router.add_get("/openApi/swap/v2/quote/contracts", _swap_contracts)
    # The other two lists ccxt's load_markets() asks for; empty, in BingX's shapes.
    app.router.add_get("/openApi/cswap/v1/market/contracts", _inverse_swap_contracts)
    app.router.add_get("/openApi/spot/v1/common/symbols", _spot_symbols)
    return app


def bingx_ok(data: Any) -> web.Response:
    return web.json_response({"code": 0, "msg": "", "timestamp": _now_ms(), "data": data})


def bingx_error(code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg, "timestamp": _now_ms()})


@web.middleware
async def _record_request(request: web.Request, handler):
    state = request.app[STATE]
    state.requests.append(RecordedRequest(request.method, request.path, dict(request.query)))
    if state.response_delay_seconds:
        await asyncio.sleep(state.response_delay_seconds)
    return await handler(request)


async def _swap_contracts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.market_error:
        return bingx_error(*state.market_error)
    return bingx_ok(state.swap_contracts)


async def _inverse_swap_contracts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return bingx_error(*state.market_error) if state.market_error else bingx_ok([])


async def _spot_symbols(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return bingx_error(*state.market_error) if state.market_error else bingx_ok({"symbols": []})


def _now_ms() -> int:
    return int(time.time() * 1000)


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

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(STARTUP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(STARTUP_TIMEOUT_SECONDS)
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


@dataclass(frozen=True)
class FakeBingX:
    base_url: str
    state: FakeBingXState


@contextmanager
def fake_bingx(*, extra_contracts: Iterable[dict[str, Any]] = ()) -> Iterator[FakeBingX]:
    """A running fake BingX listing the shipped snapshot's contracts plus ``extra_contracts``."""
    state = FakeBingXState(swap_contracts=snapshot_contracts() + list(extra_contracts))
    with BackgroundServer(create_app(state)) as server:
        yield FakeBingX(base_url=server.base_url, state=state)
