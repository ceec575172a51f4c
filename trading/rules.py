"""Pure trading rules (no ORM, no I/O): allowed status transitions for orders and positions."""

import base64
import hashlib

from trading.models import Order, Position

OS = Order.Status

# An order's status only moves forward. `unknown` is where a timed-out submission waits until a
# lookup by client order id tells what the exchange did; `new` again means it proved absent.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    OS.NEW: frozenset({OS.SUBMITTED, OS.REJECTED, OS.CANCELED, OS.UNKNOWN}),
    OS.SUBMITTED: frozenset(
        {OS.OPEN, OS.PARTIALLY_FILLED, OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED, OS.UNKNOWN}
    ),
    OS.OPEN: frozenset({OS.PARTIALLY_FILLED, OS.FILLED, OS.CANCELED, OS.EXPIRED, OS.UNKNOWN}),
    OS.PARTIALLY_FILLED: frozenset({OS.FILLED, OS.CANCELED, OS.EXPIRED, OS.UNKNOWN}),
    OS.UNKNOWN: frozenset({OS.NEW, OS.OPEN, OS.PARTIALLY_FILLED, OS.FILLED, OS.CANCELED, OS.REJECTED, OS.EXPIRED}),
    OS.FILLED: frozenset(),
    OS.CANCELED: frozenset(),
    OS.REJECTED: frozenset(),
    OS.EXPIRED: frozenset(),
}

POSITION_TRANSITIONS: dict[str, frozenset[str]] = {
    Position.Status.OPEN: frozenset({Position.Status.CLOSED}),
    Position.Status.CLOSED: frozenset(),
}


def client_order_id_for(*, account_id: int, signal_id: int, leg: str) -> str:
    """Deterministic per signal and leg, so a retried submission reuses the id and cannot place twice.

    BingX accepts 1-40 characters and lowercases them: "tv" + 30 lowercase base32 characters.
    """
    digest = hashlib.sha256(f"{account_id}:{signal_id}:{leg}".encode()).digest()
    return "tv" + base64.b32encode(digest).decode().lower().rstrip("=")[:30]
