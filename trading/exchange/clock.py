"""Our clock against BingX's.

BingX refuses a signed request whose timestamp is more than ``recvWindow`` (5 s) from its own clock,
and ccxt's bingx stamps requests with the host clock, uncorrected. So we measure the offset to BingX's
server time (at start, periodically, and after a timestamp refusal) and stamp requests with the corrected
time. Readings are shared between processes through the cache, per REST root (live and demo may differ).

Trading is refused when the offset cannot be known well enough: no reading and none can be taken, or a
round trip so slow that the offset's uncertainty (half the round trip) eats the window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from trading.exchange.errors import ClockSkew, ExchangeError

logger = logging.getLogger(__name__)

# BingX's default recvWindow; ccxt sends none, so this is the window every signed request gets.
RECV_WINDOW_MS = 5000
# How often a process re-reads the shared reading (another process may have measured since).
LOCAL_REUSE_SECONDS = 10


@dataclass(frozen=True)
class ClockReading:
    offset_ms: int  # BingX's clock minus ours
    round_trip_ms: int
    measured_at: float  # time.time()

    @property
    def uncertainty_ms(self) -> int:
        return self.round_trip_ms // 2 + 1

    def age_seconds(self, now: float | None = None) -> float:
        return (now or time.time()) - self.measured_at


_local: dict[str, tuple[float, ClockReading | None]] = {}
_lock = threading.Lock()


def _cache_key(root: str) -> str:
    return f"exchange:clock:{root}"


def clock_reading(root: str) -> ClockReading | None:
    """The latest reading for ``root`` (process memory, refreshed from the shared cache every few seconds)."""
    now = time.monotonic()
    with _lock:
        seen = _local.get(root)
    if seen is not None and now - seen[0] < LOCAL_REUSE_SECONDS:
        return seen[1]
    try:
        reading = cache.get(_cache_key(root))
    except Exception:  # a cache outage must not stop trading: keep what this process knows
        logger.warning("clock: shared reading unavailable; using this process's", exc_info=True)
        reading = seen[1] if seen else None
    with _lock:
        _local[root] = (now, reading)
    return reading


def clock_store(root: str, reading: ClockReading) -> None:
    with _lock:
        _local[root] = (time.monotonic(), reading)
    try:
        cache.set(_cache_key(root), reading, timeout=None)
    except Exception:
        logger.warning("clock: could not share the reading", exc_info=True)


def clock_forget(root: str | None = None) -> None:
    """Drop readings (tests; or after the endpoint changed)."""
    with _lock:
        roots = [root] if root else list(_local)
        for name in roots:
            _local.pop(name, None)
    for name in roots:
        try:
            cache.delete(_cache_key(name))
        except Exception:
            pass


def clock_measure(root: str, server_time_ms: Callable[[], int]) -> ClockReading:
    """One round trip to BingX's server time; the offset assumes the answer was stamped mid-way."""
    sent = time.time()
    server = server_time_ms()
    received = time.time()
    round_trip_ms = int((received - sent) * 1000)
    offset_ms = int(server - (sent + received) * 500)
    reading = ClockReading(offset_ms=offset_ms, round_trip_ms=round_trip_ms, measured_at=received)
    clock_store(root, reading)
    if abs(offset_ms) > RECV_WINDOW_MS // 2:
        logger.warning(
            "clock: BingX's clock is %+d ms from ours (round trip %d ms); correcting", offset_ms, round_trip_ms
        )
    return reading


def clock_usable(root: str, server_time_ms: Callable[[], int]) -> ClockReading:
    """A reading good enough to trade on, measuring anew when there is none or it is too old.

    Raises ``ClockSkew`` with the reason when the offset cannot be known within the window.
    """
    reading = clock_reading(root)
    max_age = settings.EXCHANGE_CLOCK_SYNC_SECONDS * 3
    if reading is None or reading.age_seconds() > max_age:
        try:
            reading = clock_measure(root, server_time_ms)
        except ExchangeError as error:
            raise ClockSkew(f"cannot read BingX's clock, so request times cannot be corrected: {error}") from error
    window = RECV_WINDOW_MS
    if reading.uncertainty_ms * 2 > window:
        raise ClockSkew(
            f"BingX's clock offset is uncertain by ±{reading.uncertainty_ms} ms"
            f" (round trip {reading.round_trip_ms} ms), more than its {window} ms window allows;"
            " not trading until a faster reading"
        )
    return reading
