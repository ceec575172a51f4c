"""Who is calling the webhook: the real source address, the allowlist, and the failed-login limit."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable

from django.core.cache import cache


def _networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _in(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(*, remote_addr: str | None, forwarded_for: str | None, trusted_proxies: Iterable[str]) -> str | None:
    """The caller's address. X-Forwarded-For is believed only when it arrives through a trusted proxy.

    Walking the header from the right and skipping our own proxies finds the first address a proxy of
    ours saw; anything to its left was written by the caller and could be forged.
    """
    proxies = _networks(trusted_proxies)
    if not remote_addr or not forwarded_for or not _in(remote_addr, proxies):
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, proxies):
            return hop
    return hops[0] if hops else remote_addr


def ip_allowed(address: str | None, allowlist: Iterable[str]) -> bool:
    return bool(address) and _in(address, _networks(allowlist))


def _failure_key(address: str | None) -> str:
    return f"webhook:auth-failures:{address or 'unknown'}:{int(time.time() // 60)}"


def auth_failures_exceeded(address: str | None, limit: int) -> bool:
    return (cache.get(_failure_key(address)) or 0) >= limit


def auth_failure_record(address: str | None) -> int:
    key = _failure_key(address)
    if cache.add(key, 1, timeout=120):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        return 1
