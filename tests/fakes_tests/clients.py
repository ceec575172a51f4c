"""Real ccxt clients pointed at a running fake BingX (factories, not fixtures)."""

from __future__ import annotations

from typing import Any

import ccxt
import ccxt.pro

from tests.fakes.bingx import FakeAccount, FakeBingX


def _point_at(client: Any, bingx: FakeBingX) -> Any:
    for section, url in list(client.urls["api"].items()):
        if isinstance(url, str):
            client.urls["api"][section] = bingx.base_url + "/openApi"
    port_root = bingx.ws_url.rsplit("/", 1)[0]
    client.urls["api"]["ws"] = {
        "spot": f"{port_root}/market",  # must not be a prefix of the linear URL
        "linear": bingx.ws_url,
        "inverse": f"{port_root}/cswap-market",
    }
    return client


def _config(account: FakeAccount | None, secret: str | None, timeout_ms: int, options: dict) -> dict[str, Any]:
    config: dict[str, Any] = {
        "enableRateLimit": False,
        "timeout": timeout_ms,
        "options": {"defaultType": "swap", "watchBalance": {"awaitBalanceSnapshot": False}, **options},
    }
    if account is not None:
        config["apiKey"] = account.api_key
        config["secret"] = secret if secret is not None else account.api_secret
    return config


def sync_client(
    bingx: FakeBingX,
    account: FakeAccount | None = None,
    *,
    secret: str | None = None,
    timeout_ms: int = 5000,
    load_markets: bool = True,
    **options: Any,
) -> ccxt.bingx:
    client = _point_at(ccxt.bingx(_config(account, secret, timeout_ms, options)), bingx)
    if load_markets:
        client.load_markets()
    return client


def pro_client(bingx: FakeBingX, account: FakeAccount, *, timeout_ms: int = 5000, **options: Any) -> ccxt.pro.bingx:
    """An async ccxt.pro client; call ``await client.load_markets()`` and ``await client.close()``."""
    return _point_at(ccxt.pro.bingx(_config(account, None, timeout_ms, options)), bingx)


def signed_request(
    bingx: FakeBingX,
    account: FakeAccount,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    timestamp_ms: int | None = None,
) -> tuple[int, Any]:
    """One request signed exactly as BingX specifies, without ccxt: (HTTP status, parsed JSON body or None)."""
    import json
    import time
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    from tests.fakes.bingx import bingx_signature

    query = {**(params or {}), "timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)}
    payload = "&".join(f"{key}={value}" for key, value in query.items())
    encoded = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in query.items())
    url = f"{bingx.base_url}{path}?{encoded}&signature={bingx_signature(account.api_secret, payload)}"
    request = urllib.request.Request(url, method=method, headers={"X-BX-APIKEY": account.api_key})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body) if body else None
