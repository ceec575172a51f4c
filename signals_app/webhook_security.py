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


def _minute() -> int:
    return int(time.time() // 60)


def _failure_key(address: str | None, minute: int) -> str:
    return f"webhook:auth-failures:{address or 'unknown'}:{minute}"


# What this process last learnt of each address's shared failure count: address -> (minute, count).
# The shared counter (the cache, i.e. Redis) stays the one that decides; this only spares a Redis read per
# alert for addresses that are not near the limit (a read per request was ~4% of the webhook's CPU).
#
# Why that still stops brute force: every failed secret goes through auth_failure_record, whose INCR returns
# the shared count, so the process that admitted a wrong guess learns the count at once. A process admits a
# request without reading Redis only while the count it last learnt is below the limit; at or above it, it
# reads Redis (the shared count decides, so a counter reset by an operator or a new minute lifts the block).
# So once an address reaches the limit, each process admits at most one more wrong guess per minute before it
# refuses (plus requests already in flight, as before): the limit + the number of server processes, instead
# of the limit. A view above the shared count (a counter reset) is corrected by that read, never trusted.
_failures_seen: dict[str, tuple[int, int]] = {}
_FAILURES_SEEN_LIMIT = 10_000


def _failures_note(address: str | None, minute: int, count: int) -> None:
    if len(_failures_seen) >= _FAILURES_SEEN_LIMIT:  # many addresses (a spray): keep this minute's only
        for stale in [key for key, (seen_minute, _) in list(_failures_seen.items()) if seen_minute != minute]:
            _failures_seen.pop(stale, None)
        if len(_failures_seen) >= _FAILURES_SEEN_LIMIT:
            _failures_seen.clear()  # forgetting costs at most one more admitted guess per address
    _failures_seen[address or "unknown"] = (minute, count)


def auth_failures_exceeded(address: str | None, limit: int) -> bool:
    """Whether the address has had `limit` failed secrets this minute (across processes; see above)."""
    minute = _minute()
    seen = _failures_seen.get(address or "unknown")
    if seen is None or seen[0] != minute or seen[1] < limit:
        return False
    count = cache.get(_failure_key(address, minute)) or 0
    _failures_note(address, minute, count)
    return count >= limit


def auth_failure_record(address: str | None) -> int:
    """Count a failed secret from the address; returns this minute's count across processes."""
    minute = _minute()
    key = _failure_key(address, minute)
    if cache.add(key, 1, timeout=120):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=120)
            count = 1
    _failures_note(address, minute, count)
    return count
