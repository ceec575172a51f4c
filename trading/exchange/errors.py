"""Our own exchange errors: what callers must decide on, not what ccxt happened to raise.

The split that matters for money is between

- ``ExchangeRejected``: BingX answered and refused. Nothing happened; retrying would be refused again
  (insufficient margin, invalid order, bad keys). Never retried.
- ``ExchangeUnavailable``: no usable answer (timeout, 5xx, dropped connection). The request may or may
  not have taken effect, so an order is looked up by its client id before anything else is decided.
- ``RateLimited``: BingX refused to look at the request at all; safe to send again after a pause.

``translate`` maps every ccxt exception onto these; no ccxt type leaves ``trading.exchange``.
"""

from __future__ import annotations

import json
import re

import ccxt


class ExchangeError(Exception):
    """Anything that went wrong talking to BingX. ``code`` is BingX's error code when it sent one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ExchangeUnavailable(ExchangeError):
    """BingX could not be reached or gave no usable answer; the outcome of the request is unknown."""


class RateLimited(ExchangeError):
    """BingX's rate limit: the request was refused unseen, and may be sent again after a pause."""


class ExchangeRejected(ExchangeError):
    """BingX answered and refused the request; it had no effect and would be refused again."""


class InsufficientMargin(ExchangeRejected):
    pass


class AuthenticationFailed(ExchangeRejected):
    """Wrong or missing keys, missing permission, IP not whitelisted, account suspended."""


class OrderNotFound(ExchangeRejected):
    """No order (or position) with that id: a lookup that proves absence."""


class DuplicateClientOrderId(ExchangeRejected):
    """The client order id was used before: the order exists (or existed) and must be looked up."""


class ClockSkew(ExchangeError):
    """BingX refused the request's timestamp (code 100421): our clock is off from BingX's."""


class CircuitOpen(ExchangeError):
    """Sending to BingX is paused for this account after repeated transport failures."""


class NotConfigured(ExchangeError):
    """The account cannot reach BingX as configured (dry run, no keys)."""


CLOCK_SKEW_CODE = 100421

# BingX puts its own JSON envelope in ccxt's message: 'bingx {"code":101204,"msg":"Insufficient margin",...}'.
_ENVELOPE = re.compile(r"\{.*\}", re.DOTALL)


def bingx_code_and_message(error: BaseException) -> tuple[int | None, str]:
    """BingX's error code and message from a ccxt exception, or (None, the text) when there is none."""
    text = str(error)
    match = _ENVELOPE.search(text)
    if match:
        try:
            envelope = json.loads(match.group(0))
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and "code" in envelope:
            try:
                code = int(envelope["code"])
            except (TypeError, ValueError):
                code = None
            return code, str(envelope.get("msg") or "").strip() or text
    return None, text.removeprefix("bingx ").strip()


def translate(error: BaseException, *, action: str) -> ExchangeError:
    """Our error for a ccxt exception raised while doing ``action`` (e.g. "create order")."""
    code, message = bingx_code_and_message(error)
    described = f"BingX {code}: {message}" if code is not None else f"BingX: {message}"
    if code == CLOCK_SKEW_CODE:  # ccxt files it under BadSymbol
        return ClockSkew(f"{action} refused, timestamp out of BingX's window ({described})", code=code)
    if isinstance(error, ccxt.DuplicateOrderId):
        return DuplicateClientOrderId(f"{action}: {described}", code=code)
    if isinstance(error, ccxt.OrderNotFound):
        return OrderNotFound(f"{action}: {described}", code=code)
    if isinstance(error, ccxt.InsufficientFunds):
        return InsufficientMargin(f"{action}: {described}", code=code)
    if isinstance(error, ccxt.AuthenticationError):  # PermissionDenied and AccountSuspended included
        return AuthenticationFailed(f"{action}: {described}", code=code)
    if isinstance(error, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimited(f"{action}: rate limited ({described})", code=code)
    if isinstance(error, ccxt.RequestTimeout):
        return ExchangeUnavailable(f"{action}: no answer in time ({type(error).__name__})", code=code)
    if isinstance(error, ccxt.OperationFailed):  # network errors, 5xx, "system busy", malformed answers
        return ExchangeUnavailable(f"{action}: {type(error).__name__}: {described}", code=code)
    if isinstance(error, ccxt.BaseError):  # BingX answered with a refusal we have no finer class for
        return ExchangeRejected(f"{action}: {described}", code=code)
    return ExchangeUnavailable(f"{action}: {type(error).__name__}: {error}", code=code)
