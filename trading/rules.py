"""Pure trading rules (no ORM, no I/O): allowed status transitions for orders and positions."""

from trading.models import Order, Position

O = Order.Status

# An order's status only moves forward. `unknown` is where a timed-out submission waits until a
# lookup by client order id tells what the exchange did; `new` again means it proved absent.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    O.NEW: frozenset({O.SUBMITTED, O.REJECTED, O.CANCELED, O.UNKNOWN}),
    O.SUBMITTED: frozenset({O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.REJECTED, O.EXPIRED, O.UNKNOWN}),
    O.OPEN: frozenset({O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.EXPIRED, O.UNKNOWN}),
    O.PARTIALLY_FILLED: frozenset({O.FILLED, O.CANCELED, O.EXPIRED, O.UNKNOWN}),
    O.UNKNOWN: frozenset({O.NEW, O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.REJECTED, O.EXPIRED}),
    O.FILLED: frozenset(),
    O.CANCELED: frozenset(),
    O.REJECTED: frozenset(),
    O.EXPIRED: frozenset(),
}

POSITION_TRANSITIONS: dict[str, frozenset[str]] = {
    Position.Status.OPEN: frozenset({Position.Status.CLOSED}),
    Position.Status.CLOSED: frozenset(),
}
