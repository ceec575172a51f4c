"""Per-account circuit breaker over transport failures, shared between processes through the cache.

After EXCHANGE_BREAKER_FAILURES consecutive transport failures (timeouts, 5xx, dropped connections) the
breaker opens for EXCHANGE_BREAKER_OPEN_SECONDS: nothing is sent for the account, callers get
``CircuitOpen`` at once instead of piling more requests onto a sick exchange. When the time is up one
trial request goes through (half-open); a success closes the breaker, a failure opens it again.
Refusals (BingX answered "no") and rate limits are not transport failures and do not count.

State changes are reported to a listener (``breaker_listen``), which the services layer uses to mark the
account degraded and raise an alert; this module itself knows nothing of accounts or alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from trading.exchange.errors import CircuitOpen

logger = logging.getLogger(__name__)

Listener = Callable[[int, bool, str], None]  # (account_id, opened, reason)
_listeners: list[Listener] = []
# A clean state read from the shared cache is trusted this long by the process that read it: an entry
# makes several calls in a row, and each would otherwise cost a cache round trip. A breaker opened by
# another process is thus seen at most this late; failures seen here are always written through.
CLEAN_STATE_REUSE_SECONDS = 1.0
_clean_until: dict[int, float] = {}


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0
    open_until: float = 0.0  # time.time(); 0 = closed
    last_error: str = ""

    def is_open(self, now: float | None = None) -> bool:
        return self.open_until > (now or time.time())


def breaker_listen(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def _key(account_id: int) -> str:
    return f"exchange:breaker:{account_id}"


def breaker_state(account_id: int) -> BreakerState:
    if _clean_until.get(account_id, 0.0) > time.monotonic():
        return BreakerState()
    try:
        return cache.get(_key(account_id)) or BreakerState()
    except Exception:  # without a shared cache the breaker cannot count; sending goes on
        logger.warning("breaker state unavailable for account %s", account_id, exc_info=True)
        return BreakerState()


def _save(account_id: int, state: BreakerState) -> None:
    _clean_until.pop(account_id, None)
    try:
        cache.set(_key(account_id), state, timeout=None)
    except Exception:
        logger.warning("breaker state not saved for account %s", account_id, exc_info=True)


def _notify(account_id: int, opened: bool, reason: str) -> None:
    for listener in list(_listeners):
        try:
            listener(account_id, opened, reason)
        except Exception:  # a failing listener must not turn a request's outcome into another error
            logger.exception("breaker listener failed for account %s", account_id)


def breaker_check(account_id: int) -> None:
    """Raise ``CircuitOpen`` while the breaker is open."""
    state = breaker_state(account_id)
    if not state.failures and not state.open_until:
        _clean_until[account_id] = time.monotonic() + CLEAN_STATE_REUSE_SECONDS
    if state.is_open():
        until = time.strftime("%H:%M:%S", time.gmtime(state.open_until))
        raise CircuitOpen(
            f"sending to BingX is paused until {until} UTC after {state.failures} transport failures in a row"
            f" (last: {state.last_error})"
        )


def breaker_record_success(account_id: int) -> None:
    state = breaker_state(account_id)
    if state.failures == 0 and not state.open_until:
        return
    _save(account_id, BreakerState())
    if state.failures >= settings.EXCHANGE_BREAKER_FAILURES:
        logger.warning("breaker for account %s closed: BingX answered again", account_id)
        _notify(account_id, False, "BingX answers again")


def breaker_record_failure(account_id: int, reason: str) -> None:
    state = breaker_state(account_id)
    failures = state.failures + 1
    threshold = settings.EXCHANGE_BREAKER_FAILURES
    if failures >= threshold:
        open_until = time.time() + settings.EXCHANGE_BREAKER_OPEN_SECONDS
        _save(account_id, BreakerState(failures=failures, open_until=open_until, last_error=reason))
        if failures == threshold:  # a failed half-open trial re-opens quietly: the alert is already out
            logger.error(
                "breaker for account %s open for %ss after %s transport failures: %s",
                account_id,
                settings.EXCHANGE_BREAKER_OPEN_SECONDS,
                failures,
                reason,
            )
            _notify(account_id, True, f"{failures} transport failures in a row; last: {reason}")
    else:
        _save(account_id, BreakerState(failures=failures, last_error=reason))


def breaker_reset(account_id: int) -> None:
    _save(account_id, BreakerState())


def breaker_forget_local() -> None:
    """Drop this process's memo of clean states (tests that reset the shared cache)."""
    _clean_until.clear()
