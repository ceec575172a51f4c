"""The fake's HTTP side: ``POST|GET /bot{token}/{method}``, Bot API envelopes, and getUpdates' long poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from .checks import ApiError, as_int, decode_json_fields
from .state import TelegramState

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)


def _envelope(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Query string + body (form, multipart or JSON) -> (params, uploaded files by field name)."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, dict[str, Any]] = {}
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: can't parse JSON object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                content = value.file.read()
                files[name] = {"file_name": value.filename, "mime_type": value.content_type, "content": content}
                params[name] = {"file_name": value.filename, "size": len(content)}
            else:
                params[name] = value
    decode_json_fields(params)
    return params, files


class BotApi:
    def __init__(self, state: TelegramState, *, long_poll_cap_seconds: float) -> None:
        self.state = state
        self.long_poll_cap_seconds = long_poll_cap_seconds
        self.wake = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        method = request.match_info["method"]
        call: dict[str, Any] = {"method": method, "params": {}, "time": arrived}
        try:
            if request.match_info["token"] != self.state.token:
                raise ApiError(401, "Unauthorized")
            call["params"], files = await _read_params(request)
            injected = self.state.take_failure(method)
            if injected is not None:
                raise injected
            self.state.check_rate_limit(method, call["params"])
            if method.lower() == "getupdates":
                result = await self.get_updates(call["params"])
            else:
                result = self.state.dispatch(method, call["params"], files)
        except ApiError as error:
            call.update(status=error.status, error=error.body())
            self.state.record(call)
            return _error(error)
        call.update(status=200, result=json.loads(json.dumps(result)))
        self.state.record(call)
        return _envelope(result)

    async def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = as_int(params, "offset", required=False) or 0
        limit = min(max(as_int(params, "limit", required=False) or 100, 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        state = self.state
        with state.lock:
            if state.webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            if params.get("allowed_updates"):
                state.allowed_updates = frozenset(params["allowed_updates"])
            state.poll_generation += 1
            generation = state.poll_generation
        self.wake.set()  # an older poll still waiting is terminated (409), as Telegram does
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, self.long_poll_cap_seconds)
        while True:
            self.wake.clear()
            if state.poll_generation != generation:
                raise ApiError(409, CONFLICT_OTHER_POLL)
            updates = state.confirm_and_take(offset, limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0:
                return updates
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), remaining)


async def _not_found(request: web.Request) -> web.Response:
    return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)


API_KEY = web.AppKey("api", BotApi)


def create_app(state: TelegramState, *, long_poll_cap_seconds: float = 2.0) -> web.Application:
    api = BotApi(state, long_poll_cap_seconds=long_poll_cap_seconds)
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    app[API_KEY] = api
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
