"""Injected failures: what the fake does instead of (or around) answering one request.

A fault is matched by HTTP method + exact path (``/openApi/swap/v2/trade/order``). ``times=N`` consumes it
after N matching requests; ``times=None`` keeps it until ``clear_faults()``. Every firing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What each kind does to the request (executed = the exchange acts on it):
DELAY = "delay"  # wait `seconds`, then execute and answer normally
TIMEOUT_AFTER_EXECUTE = "timeout_after_execute"  # execute, hold `seconds`, close the connection with no answer
TIMEOUT_BEFORE_EXECUTE = "timeout_before_execute"  # hold `seconds`, close with no answer; never executed
HTTP_ERROR = "http_error"  # HTTP `status` with a short text body; not executed
DROP_CONNECTION = "drop_connection"  # close the TCP connection at once; not executed
RATE_LIMIT = "rate_limit"  # HTTP 429 with a text body, as BingX's gateway sends it; not executed
ERROR = "error"  # HTTP 200 with BingX's error envelope {code, msg, timestamp}; not executed
CANNED = "canned"  # HTTP `status` with exactly `body` (a recorded BingX answer); not executed


@dataclass(frozen=True)
class Fault:
    kind: str
    seconds: float = 0.0
    status: int = 200
    code: int = 0
    msg: str = ""
    body: Any = None

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls(DELAY, seconds=seconds)

    @classmethod
    def timeout_after_execute(cls, hold_seconds: float = 30) -> Fault:
        return cls(TIMEOUT_AFTER_EXECUTE, seconds=hold_seconds)

    @classmethod
    def timeout_before_execute(cls, hold_seconds: float = 30) -> Fault:
        return cls(TIMEOUT_BEFORE_EXECUTE, seconds=hold_seconds)

    @classmethod
    def http_error(cls, status: int = 503) -> Fault:
        return cls(HTTP_ERROR, status=status)

    @classmethod
    def drop_connection(cls) -> Fault:
        return cls(DROP_CONNECTION)

    @classmethod
    def rate_limit(cls) -> Fault:
        return cls(RATE_LIMIT, status=429)

    @classmethod
    def error(cls, code: int, msg: str) -> Fault:
        return cls(ERROR, code=code, msg=msg)

    @classmethod
    def canned(cls, body: Any, status: int = 200) -> Fault:
        """Answer with this exact JSON body (e.g. a recorded BingX response) instead of executing."""
        return cls(CANNED, status=status, body=body)

    @property
    def executes(self) -> bool:
        return self.kind in (DELAY, TIMEOUT_AFTER_EXECUTE)


@dataclass
class FaultRule:
    method: str
    path: str
    fault: Fault
    times: int | None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method == method.upper() and self.path == path and (self.times is None or self.fired < self.times)


@dataclass(frozen=True)
class FiredFault:
    method: str
    path: str
    fault: Fault
    time: float = field(default=0.0)
