"""The simulated exchange: accounts, orders, positions, marks, listen keys. No HTTP, no asyncio.

Everything is guarded by one re-entrant lock (``FakeBingXState.lock``): HTTP handlers call in from the
server's loop thread, tests call in from the main thread. Reads hand out snapshots (copies), so a test can
keep what it read while the exchange moves on.

Choices where BingX's behaviour is not pinned down by the reference:
- Positions are keyed ``(symbol, "LONG"|"SHORT")`` in both modes; ``qty`` is always >= 0. In one-way mode a
  symbol holds at most one of the two (a sell beyond the long flips it to a short), and REST reports it as
  BingX does in the recorded fixtures: ``positionSide`` LONG/SHORT, positive ``positionAmt``,
  ``onlyOnePosition: true``. Orders in one-way mode carry ``position_side == "BOTH"``.
- Default leverage 10 (capped at the contract's maximum), default margin mode cross, one-way mode.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from .faults import Fault, FaultRule, FiredFault

DEFAULT_LEVERAGE = 10
LISTEN_KEY_LIFETIME_MS = 60 * 60 * 1000
MAX_CLIENT_ORDER_ID_LENGTH = 40

LONG, SHORT, BOTH = "LONG", "SHORT", "BOTH"
BUY, SELL = "BUY", "SELL"
NEW, PARTIALLY_FILLED, FILLED, CANCELLED = "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELLED"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)

MARKET, LIMIT = "MARKET", "LIMIT"
# trigger type -> (rests as a limit order once fired?, family)
TRIGGER_TYPES = {
    "STOP_MARKET": (False, "stop"),
    "TAKE_PROFIT_MARKET": (False, "take_profit"),
    "TRIGGER_MARKET": (False, "trigger"),
    "STOP": (True, "stop"),
    "TAKE_PROFIT": (True, "take_profit"),
    "TRIGGER_LIMIT": (True, "trigger"),
}
ORDER_TYPES = (MARKET, LIMIT, *TRIGGER_TYPES)
PRICED_TYPES = (LIMIT, "STOP", "TAKE_PROFIT", "TRIGGER_LIMIT")

# BingX error codes and messages the fake answers with (reference §1; the choices are documented above each).
MSG_ONE_WAY_POSITION_SIDE = "In the One-way mode, the 'PositionSide' field can only be set to BOTH."
MSG_HEDGE_POSITION_SIDE = "In the Hedge mode, the 'PositionSide' field can only be set to LONG or SHORT."
MSG_HEDGE_REDUCE_ONLY = "In the Hedge mode, the 'ReduceOnly' field can not be filled."
MSG_ONE_WAY_SIDE = "In the One-way mode, the 'Side' field can only be set to BOTH."
MSG_HEDGE_SIDE = "In the Hedge mode, the 'Side' field can only be set to LONG or SHORT."


class BingXError(Exception):
    """A refusal BingX answers with HTTP 200 and {code, msg}."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


def symbol_id(symbol: str) -> str:
    """``BTC/USDT:USDT`` or ``BTC-USDT`` -> ``BTC-USDT``."""
    if "/" not in symbol:
        return symbol
    base, rest = symbol.split("/", 1)
    return f"{base}-{rest.split(':', 1)[0]}"


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Contract:
    """The trading rules of one BingX contract, read from its raw ``quote/contracts`` item."""

    symbol: str
    quantity_places: int
    price_places: int
    min_quantity: Decimal
    min_notional: Decimal
    max_long_leverage: int
    max_short_leverage: int
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Contract:
        return cls(
            symbol=raw["symbol"],
            quantity_places=int(raw.get("quantityPrecision", 0)),
            price_places=int(raw.get("pricePrecision", 0)),
            min_quantity=dec(raw.get("tradeMinQuantity", 0)),
            min_notional=dec(raw.get("tradeMinUSDT", 0)),
            max_long_leverage=int(dec(raw.get("maxLongLeverage", 125))),
            max_short_leverage=int(dec(raw.get("maxShortLeverage", 125))),
            maker_fee_rate=dec(raw.get("makerFeeRate", "0.0002")),
            taker_fee_rate=dec(raw.get("takerFeeRate", "0.0005")),
        )

    @property
    def quantity_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.quantity_places)

    def max_leverage(self, position_side: str) -> int:
        return self.max_short_leverage if position_side == SHORT else self.max_long_leverage


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str  # lowercased, "" when none was given
    symbol: str
    side: str  # BUY / SELL
    position_side: str  # BOTH (one-way) / LONG / SHORT
    type: str
    qty: Decimal
    price: Decimal  # the limit price; for MARKET the mark at acceptance; 0 for trigger-market orders
    stop_price: Decimal
    reduce_only: bool
    status: str = NEW
    executed_qty: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    profit: Decimal = Decimal(0)  # realized PnL of this order's fills, fees excluded
    commission: Decimal = Decimal(0)  # <= 0, BingX's sign
    time_ms: int = 0
    update_time_ms: int = 0
    accepted_at: float = 0.0  # time.time() when accepted (latency benchmarks)
    time_in_force: str = "GTC"
    working_type: str = "MARK_PRICE"
    leverage: int = DEFAULT_LEVERAGE
    stop_loss: str = ""  # the attached stopLoss JSON string as sent ("" when none)
    take_profit: str = ""
    triggered: bool = False  # a STOP / TAKE_PROFIT / TRIGGER_LIMIT whose trigger fired: now a resting limit
    trigger_when_above: bool | None = None  # TRIGGER_* direction, fixed at acceptance
    parent_order_id: int | None = None  # attached SL/TP: the entry order it came from
    frozen_margin: Decimal = Decimal(0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.executed_qty

    @property
    def is_trigger(self) -> bool:
        return self.type in TRIGGER_TYPES

    @property
    def closes_position(self) -> bool:
        """Reduce-only in effect: explicit reduceOnly, or a hedge-mode order on the closing side."""
        if self.reduce_only:
            return True
        return (self.position_side == LONG and self.side == SELL) or (self.position_side == SHORT and self.side == BUY)


@dataclass
class FakePosition:
    position_id: int
    symbol: str
    position_side: str  # LONG / SHORT (also in one-way mode; see the module docstring)
    qty: Decimal  # always >= 0
    avg_price: Decimal
    leverage: int
    margin_mode: str  # "cross" / "isolated"
    one_way: bool
    realized_profit: Decimal = Decimal(0)  # closing PnL minus fees, like BingX's realisedProfit
    update_time_ms: int = 0

    @property
    def side_sign(self) -> int:
        return 1 if self.position_side == LONG else -1

    @property
    def side(self) -> str:
        return self.position_side.lower()

    @property
    def initial_margin(self) -> Decimal:
        return self.qty * self.avg_price / self.leverage

    def unrealized_profit(self, mark: Decimal | None) -> Decimal:
        if mark is None:
            return Decimal(0)
        return (mark - self.avg_price) * self.qty * self.side_sign


@dataclass
class ListenKey:
    key: str
    api_key: str
    expires_at_ms: int


class FakeAccount:
    """One API key's futures account. Properties return snapshots; setters change the live state."""

    def __init__(self, state: FakeBingXState, *, api_key: str, api_secret: str, balance: Decimal, hedge: bool):
        self._state = state
        self.api_key = api_key
        self.api_secret = api_secret
        self._wallet = dec(balance)
        self._realised = Decimal(0)
        self._hedge = hedge
        self._orders: list[FakeOrder] = []
        self._positions: dict[tuple[str, str], FakePosition] = {}
        self._leverage: dict[tuple[str, str], int] = {}
        self._margin_mode: dict[str, str] = {}
        self._events: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"FakeAccount(api_key={self.api_key!r})"

    # --- reads (snapshots) ---
    @property
    def orders(self) -> list[FakeOrder]:
        with self._state.lock:
            return [copy.copy(order) for order in self._orders]

    def order(self, order_id: int) -> FakeOrder | None:
        with self._state.lock:
            found = self._find_order(order_id=order_id)
            return copy.copy(found) if found else None

    def order_by_client_id(self, client_order_id: str) -> FakeOrder | None:
        with self._state.lock:
            found = self._find_order(client_order_id=client_order_id)
            return copy.copy(found) if found else None

    @property
    def open_orders(self) -> list[FakeOrder]:
        return [order for order in self.orders if order.is_open]

    @property
    def positions(self) -> dict[tuple[str, str], FakePosition]:
        with self._state.lock:
            return {key: copy.copy(position) for key, position in self._positions.items()}

    def position(self, symbol: str, side: str = "long") -> FakePosition | None:
        with self._state.lock:
            found = self._positions.get((symbol_id(symbol), side.upper()))
            return copy.copy(found) if found else None

    @property
    def wallet_balance(self) -> Decimal:
        with self._state.lock:
            return self._wallet

    @property
    def realised_profit(self) -> Decimal:
        with self._state.lock:
            return self._realised

    @property
    def unrealized_profit(self) -> Decimal:
        with self._state.lock:
            return sum(
                (p.unrealized_profit(self._state.marks.get(p.symbol)) for p in self._positions.values()), Decimal(0)
            )

    @property
    def used_margin(self) -> Decimal:
        with self._state.lock:
            return sum((p.initial_margin for p in self._positions.values()), Decimal(0))

    @property
    def frozen_margin(self) -> Decimal:
        with self._state.lock:
            return sum((o.frozen_margin for o in self._orders if o.is_open), Decimal(0))

    @property
    def equity(self) -> Decimal:
        with self._state.lock:
            return self._wallet + self.unrealized_profit

    @property
    def available_margin(self) -> Decimal:
        with self._state.lock:
            return self._wallet + self.unrealized_profit - self.used_margin - self.frozen_margin

    @property
    def hedge(self) -> bool:
        with self._state.lock:
            return self._hedge

    def leverage(self, symbol: str, side: str = LONG) -> int:
        with self._state.lock:
            symbol = symbol_id(symbol)
            default = min(DEFAULT_LEVERAGE, self._state.contract(symbol).max_leverage(side.upper()))
            return self._leverage.get((symbol, side.upper()), default)

    def margin_mode(self, symbol: str) -> str:
        with self._state.lock:
            return self._margin_mode.get(symbol_id(symbol), "cross")

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every user-data event pushed (or that would have been pushed) for this account, in order."""
        with self._state.lock:
            return copy.deepcopy(self._events)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("e") == kind]

    # --- direct setters for test set-up (no checks, no events) ---
    def set_hedge(self, hedge: bool) -> None:
        with self._state.lock:
            self._hedge = hedge

    def set_leverage(self, symbol: str, side: str, leverage: int) -> None:
        with self._state.lock:
            symbol = symbol_id(symbol)
            sides = (LONG, SHORT) if side.upper() == BOTH else (side.upper(),)
            for one in sides:
                self._leverage[(symbol, one)] = int(leverage)
                position = self._positions.get((symbol, one))
                if position:
                    position.leverage = int(leverage)

    def set_margin_mode(self, symbol: str, mode: str) -> None:
        with self._state.lock:
            mode = {"CROSSED": "cross", "ISOLATED": "isolated"}.get(mode.upper(), mode.lower())
            self._margin_mode[symbol_id(symbol)] = mode

    def set_wallet_balance(self, balance: Decimal) -> None:
        with self._state.lock:
            self._wallet = dec(balance)

    def fill_order(self, order_id: int, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """Fill a resting order now (``qty`` of it: a partial fill), at its limit price (or ``price``), as maker."""
        with self._state.lock:
            order = self._find_order(order_id=order_id)
            if order is None or not order.is_open:
                raise ValueError(f"order {order_id} is not open")
            fill_price = dec(price) if price is not None else (order.price or self._state.marks[order.symbol])
            self._state._fill(self, order, dec(qty) if qty is not None else order.remaining_qty, fill_price, False)

    # --- internals (callers hold the lock) ---
    def _find_order(self, *, order_id: Any = None, client_order_id: str | None = None) -> FakeOrder | None:
        for order in self._orders:
            if order_id is not None and str(order.order_id) == str(order_id):
                return order
            if client_order_id and order.client_order_id and order.client_order_id == client_order_id.lower():
                return order
        return None

    def _symbol_positions(self, symbol: str) -> list[FakePosition]:
        return [p for (s, _), p in self._positions.items() if s == symbol]

    def _has_exposure(self, symbol: str | None = None) -> bool:
        positions = self._positions.values() if symbol is None else self._symbol_positions(symbol)
        orders = [o for o in self._orders if o.is_open and (symbol is None or o.symbol == symbol)]
        return bool(list(positions) or orders)


class FakeBingXState:
    """What the fake exchange knows. Tests may change it while the server runs (take ``lock`` for compound edits)."""

    def __init__(self, swap_contracts: list[dict[str, Any]]) -> None:
        self.lock = threading.RLock()
        self.swap_contracts = swap_contracts
        # When set, every market endpoint answers with this BingX error (code, msg), as BingX does: HTTP 200.
        self.market_error: tuple[int, str] | None = None
        # Seconds every answer is held back: a slow or hanging BingX.
        self.response_delay_seconds: float = 0
        self.requests: list[Any] = []
        self.clock_offset_ms = 0
        self.marks: dict[str, Decimal] = {}
        self.accounts: dict[str, FakeAccount] = {}
        self.fault_rules: list[FaultRule] = []
        self.fired_faults: list[FiredFault] = []
        self.listen_keys: dict[str, ListenKey] = {}
        # Called (under the lock) with (account, event) for every user-data event; the WS layer hooks in here.
        self.on_event: Callable[[FakeAccount, dict[str, Any]], None] | None = None
        # Called (under the lock) with the listen key when it expires or is deleted.
        self.on_listen_key_gone: Callable[[str, dict[str, Any] | None], None] | None = None
        self._last_id = 0

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    # --- clock and ids ---
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def next_id(self) -> int:
        """An int64 like BingX's (a millisecond timestamp in the high bits), unique and increasing."""
        with self.lock:
            self._last_id = max(self._last_id + 1, int(time.time() * 1000) << 20)
            return self._last_id

    # --- markets ---
    def contract(self, symbol: str) -> Contract:
        symbol = symbol_id(symbol)
        for raw in self.swap_contracts:
            if raw.get("symbol") == symbol:
                return Contract.from_raw(raw)
        raise BingXError(109400, f"symbol {symbol} does not exist")

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        with self.lock:
            symbol = symbol_id(symbol)
            self.contract(symbol)
            self.marks[symbol] = dec(price)
            for account in list(self.accounts.values()):
                self._work_resting_orders(account, symbol)

    # --- accounts and auth ---
    def add_account(self, *, api_key: str, api_secret: str, balance: Decimal, hedge: bool) -> FakeAccount:
        with self.lock:
            account = FakeAccount(self, api_key=api_key, api_secret=api_secret, balance=balance, hedge=hedge)
            self.accounts[api_key] = account
            return account

    # --- faults ---
    def add_fault(self, method: str, path: str, fault: Fault, times: int | None) -> None:
        with self.lock:
            self.fault_rules.append(FaultRule(method.upper(), path, fault, times))

    def clear_faults(self) -> None:
        with self.lock:
            self.fault_rules.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for rule in self.fault_rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    self.fired_faults.append(FiredFault(method.upper(), path, rule.fault, time.time()))
                    return rule.fault
            return None

    # --- listen keys ---
    def listen_key_create(self, account: FakeAccount) -> str:
        import secrets

        with self.lock:
            key = secrets.token_hex(32)
            self.listen_keys[key] = ListenKey(key, account.api_key, self.now_ms() + LISTEN_KEY_LIFETIME_MS)
            return key

    def listen_key_account(self, key: str) -> FakeAccount | None:
        with self.lock:
            entry = self.listen_keys.get(key)
            if entry is None:
                return None
            if entry.expires_at_ms < self.now_ms():
                self.listen_key_expire(key)
                return None
            return self.accounts.get(entry.api_key)

    def listen_key_extend(self, key: str) -> bool:
        with self.lock:
            if self.listen_key_account(key) is None:
                return False
            self.listen_keys[key].expires_at_ms = self.now_ms() + LISTEN_KEY_LIFETIME_MS
            return True

    def listen_key_delete(self, key: str) -> bool:
        with self.lock:
            if self.listen_keys.pop(key, None) is None:
                return False
            if self.on_listen_key_gone:
                self.on_listen_key_gone(key, None)
            return True

    def listen_key_expire(self, key: str) -> None:
        with self.lock:
            self.listen_keys.pop(key, None)
            if self.on_listen_key_gone:
                self.on_listen_key_gone(key, {"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key})

    # --- account settings through the API ---
    def api_set_leverage(self, account: FakeAccount, symbol: str, side: str, leverage: str) -> int:
        with self.lock:
            contract = self.contract(symbol)
            side = (side or "").upper()
            if account._hedge and side not in (LONG, SHORT):
                raise BingXError(109400, MSG_HEDGE_SIDE)
            if not account._hedge and side != BOTH:
                raise BingXError(109400, MSG_ONE_WAY_SIDE)
            value = _parse_positive_int(leverage, "leverage")
            sides = (LONG, SHORT) if side == BOTH else (side,)
            for one in sides:
                if value > contract.max_leverage(one):
                    raise BingXError(
                        109400, f"leverage {value} exceeds the maximum {contract.max_leverage(one)} for {symbol}"
                    )
            account.set_leverage(contract.symbol, side, value)
            self._emit(
                account,
                {
                    "e": "ACCOUNT_CONFIG_UPDATE",
                    "E": self.now_ms(),
                    "ac": {
                        "s": contract.symbol,
                        "l": account.leverage(contract.symbol, LONG),
                        "S": account.leverage(contract.symbol, SHORT),
                        "mt": account.margin_mode(contract.symbol),
                    },
                },
            )
            return value

    def api_set_margin_type(self, account: FakeAccount, symbol: str, margin_type: str) -> None:
        with self.lock:
            contract = self.contract(symbol)
            margin_type = (margin_type or "").upper()
            if margin_type not in ("CROSSED", "ISOLATED"):
                raise BingXError(109400, "marginType: must be CROSSED or ISOLATED")
            if account._has_exposure(contract.symbol):
                raise BingXError(
                    109400, "The margin mode cannot be changed while there are positions or open orders on the symbol."
                )
            account.set_margin_mode(contract.symbol, margin_type)

    def api_set_position_mode(self, account: FakeAccount, dual: str) -> None:
        with self.lock:
            value = (dual or "").lower()
            if value not in ("true", "false"):
                raise BingXError(109400, "dualSidePosition: must be true or false")
            if (value == "true") != account._hedge and account._has_exposure():
                raise BingXError(
                    109400, "The position mode cannot be changed while there are positions or open orders."
                )
            account._hedge = value == "true"

    # --- orders ---
    def place_order(self, account: FakeAccount, params: dict[str, str], *, test: bool = False) -> FakeOrder:
        with self.lock:
            order = self._validated_order(account, params)
            if test:
                return order
            order.time_ms = order.update_time_ms = self.now_ms()
            order.accepted_at = time.time()
            account._orders.append(order)
            self._emit_order(account, order, "NEW")
            if order.type == MARKET:
                self._fill(account, order, order.qty, self.marks[order.symbol], True)
            elif order.type == LIMIT:
                mark = self.marks.get(order.symbol)
                if mark is not None and (mark <= order.price if order.side == BUY else mark >= order.price):
                    self._fill(account, order, order.qty, mark, True)  # marketable: takes liquidity at the mark
                else:
                    order.frozen_margin = self._opening_qty(account, order) * order.price / order.leverage
            else:
                self._work_resting_orders(account, order.symbol)
            return order

    def find_order(self, account: FakeAccount, order_id: str | None, client_order_id: str | None) -> FakeOrder:
        with self.lock:
            if not order_id and not client_order_id:
                raise BingXError(80014, "Invalid parameters, orderId or clientOrderID is required")
            order = account._find_order(
                order_id=order_id or None, client_order_id=None if order_id else client_order_id
            )
            if order is None:
                raise BingXError(80016, "order not exist")
            return order

    def cancel_order(self, account: FakeAccount, order_id: str | None, client_order_id: str | None) -> FakeOrder:
        with self.lock:
            order = self.find_order(account, order_id, client_order_id)
            if order.status == FILLED:
                raise BingXError(80018, "order is already filled")
            if order.status == CANCELLED:
                raise BingXError(80016, "order not exist")
            self._cancel(account, order)
            return order

    def cancel_all_orders(self, account: FakeAccount, symbol: str | None) -> list[FakeOrder]:
        with self.lock:
            cancelled = [o for o in account._orders if o.is_open and (symbol is None or o.symbol == symbol)]
            for order in cancelled:
                self._cancel(account, order)
            return cancelled

    def close_all_positions(self, account: FakeAccount, symbol: str | None) -> list[int]:
        with self.lock:
            order_ids = []
            for position in [p for p in account._positions.values() if symbol is None or p.symbol == symbol]:
                if position.symbol not in self.marks:
                    continue
                side = SELL if position.position_side == LONG else BUY
                params = {
                    "symbol": position.symbol,
                    "side": side,
                    "type": MARKET,
                    "quantity": str(position.qty),
                    "positionSide": position.position_side if account._hedge else BOTH,
                }
                if not account._hedge:
                    params["reduceOnly"] = "true"
                order_ids.append(self.place_order(account, params).order_id)
            return order_ids

    def liquidate(self, account: FakeAccount, symbol: str) -> list[int]:
        """BingX closes the account's positions on ``symbol`` by force at the mark (set it first): orders it
        places itself, filled at once. Their stream events are in the shape Binance documents and BingX's
        stream follows (our consumer's reading, ``trading/exchange/stream.py``): a client id ``autoclose-...``
        of the exchange's own. The consumer has never seen one of ours for them: it records them on sight."""
        with self.lock:
            order_ids = []
            for position in [p for p in account._positions.values() if p.symbol == symbol]:
                params = {
                    "symbol": position.symbol,
                    "side": SELL if position.position_side == LONG else BUY,
                    "type": MARKET,
                    "quantity": str(position.qty),
                    "positionSide": position.position_side if account._hedge else BOTH,
                    "clientOrderID": f"autoclose-{self.next_id()}",
                }
                if not account._hedge:
                    params["reduceOnly"] = "true"
                order_ids.append(self.place_order(account, params).order_id)
            return order_ids

    # --- internals (callers hold the lock) ---
    def _validated_order(self, account: FakeAccount, params: dict[str, str]) -> FakeOrder:
        if not params.get("symbol"):
            raise BingXError(80014, "Invalid parameters, symbol: This field is required.")
        contract = self.contract(params["symbol"])
        symbol = contract.symbol
        side = params.get("side", "").upper()
        if side not in (BUY, SELL):
            raise BingXError(80014, "Invalid parameters, side: must be BUY or SELL")
        order_type = params.get("type", "").upper()
        if order_type not in ORDER_TYPES:
            raise BingXError(80014, f"Invalid parameters, type: unsupported order type {order_type!r}")
        qty = _parse_decimal(params.get("quantity"), "quantity")
        if qty <= 0:
            raise BingXError(80014, "Invalid parameters, quantity: must be greater than 0")
        price = Decimal(0)
        if order_type in PRICED_TYPES:
            price = _parse_decimal(params.get("price"), "price")
            if price <= 0:
                raise BingXError(80014, "Invalid parameters, price: must be greater than 0")
        stop_price = Decimal(0)
        if order_type in TRIGGER_TYPES:
            stop_price = _parse_decimal(params.get("stopPrice"), "stopPrice")
            if stop_price <= 0:
                raise BingXError(80014, "Invalid parameters, stopPrice: must be greater than 0")
        position_side = (params.get("positionSide") or (BOTH if not account._hedge else "")).upper()
        if account._hedge and position_side not in (LONG, SHORT):
            raise BingXError(109400, MSG_HEDGE_POSITION_SIDE)
        if not account._hedge and position_side != BOTH:
            raise BingXError(109400, MSG_ONE_WAY_POSITION_SIDE)
        reduce_only = params.get("reduceOnly", "").lower() == "true"
        if account._hedge and "reduceOnly" in params:
            raise BingXError(109400, MSG_HEDGE_REDUCE_ONLY)
        client_order_id = (params.get("clientOrderID") or params.get("clientOrderId") or "").lower()
        if len(client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
            raise BingXError(109400, "clientOrderID: the length must be between 1 and 40 characters")
        if client_order_id and account._find_order(client_order_id=client_order_id):
            raise BingXError(101481, "clientOrderID cannot be repeated")
        if qty % contract.quantity_step:
            raise BingXError(
                101400, f"quantity {qty} is not a multiple of the step {contract.quantity_step} for {symbol}"
            )
        if qty < contract.min_quantity:
            raise BingXError(101400, f"quantity {qty} is below the minimum {contract.min_quantity} for {symbol}")
        mark = self.marks.get(symbol)
        if order_type == MARKET and mark is None:
            raise BingXError(80001, f"no market price for {symbol} yet (fake BingX: call set_mark_price first)")
        reference_price = price if order_type in PRICED_TYPES else (stop_price or mark)
        direction = LONG if side == BUY else SHORT
        order = FakeOrder(
            order_id=self.next_id(),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            position_side=position_side,
            type=order_type,
            qty=qty,
            price=mark if order_type == MARKET else price,
            stop_price=stop_price,
            reduce_only=reduce_only,
            time_in_force=params.get("timeInForce") or "GTC",
            working_type=params.get("workingType") or "MARK_PRICE",
            stop_loss=params.get("stopLoss") or "",
            take_profit=params.get("takeProfit") or "",
        )
        order.leverage = account.leverage(symbol, position_side if account._hedge else direction)
        if order_type.startswith("TRIGGER"):
            order.trigger_when_above = (stop_price > mark) if mark is not None else side == BUY
        if order.closes_position and self._closable_qty(account, order) == 0:
            raise BingXError(101205, "No position to close")
        opening_qty = self._opening_qty(account, order)
        if opening_qty > 0 and qty * reference_price < contract.min_notional:
            raise BingXError(
                110425,
                f"the order value {qty * reference_price} USDT is below the minimum {contract.min_notional} USDT",
            )
        if opening_qty > 0 and order_type in (MARKET, LIMIT):
            notional = opening_qty * reference_price
            required = notional / order.leverage + notional * contract.taker_fee_rate
            if required > account.available_margin:
                raise BingXError(101204, "Insufficient margin")
        return order

    def _position_for(self, account: FakeAccount, order: FakeOrder) -> FakePosition | None:
        """The position this order would reduce (None if it only opens)."""
        if account._hedge or order.position_side in (LONG, SHORT):
            if order.closes_position:
                return account._positions.get((order.symbol, order.position_side))
            return None
        opposite = SHORT if order.side == BUY else LONG
        return account._positions.get((order.symbol, opposite))

    def _closable_qty(self, account: FakeAccount, order: FakeOrder) -> Decimal:
        position = self._position_for(account, order)
        return position.qty if position else Decimal(0)

    def _opening_qty(self, account: FakeAccount, order: FakeOrder) -> Decimal:
        if order.closes_position:
            return Decimal(0)
        return max(order.remaining_qty - self._closable_qty(account, order), Decimal(0))

    def _work_resting_orders(self, account: FakeAccount, symbol: str) -> None:
        """Fill crossing limits and fire crossed triggers at the current mark, until nothing changes."""
        mark = self.marks.get(symbol)
        if mark is None:
            return
        for _ in range(100):
            changed = False
            for order in [o for o in account._orders if o.is_open and o.symbol == symbol]:
                if not order.is_open:
                    continue
                if order.type == LIMIT or order.triggered:
                    crossed = mark <= order.price if order.side == BUY else mark >= order.price
                    if crossed:  # a resting limit fills at its own price, as maker
                        self._fill(account, order, order.remaining_qty, order.price, False)
                        changed = True
                elif order.is_trigger and self._trigger_crossed(order, mark):
                    order.update_time_ms = self.now_ms()
                    if TRIGGER_TYPES[order.type][0]:
                        order.triggered = True
                    else:
                        self._fill(account, order, order.remaining_qty, mark, True)
                    changed = True
            if not changed:
                return

    @staticmethod
    def _trigger_crossed(order: FakeOrder, mark: Decimal) -> bool:
        family = TRIGGER_TYPES[order.type][1]
        if family == "trigger":
            return mark >= order.stop_price if order.trigger_when_above else mark <= order.stop_price
        stop_rises = (family == "stop") == (order.side == BUY)  # buy stop and sell take-profit fire on a rise
        return mark >= order.stop_price if stop_rises else mark <= order.stop_price

    def _fill(self, account: FakeAccount, order: FakeOrder, qty: Decimal, price: Decimal, taker: bool) -> None:
        contract = self.contract(order.symbol)
        if order.closes_position:
            qty = min(qty, self._closable_qty(account, order))
            if qty <= 0:
                self._cancel(account, order)
                return
        now = self.now_ms()
        fee = qty * price * (contract.taker_fee_rate if taker else contract.maker_fee_rate)
        realized, touched = self._apply_to_positions(account, order, qty, price, fee, now)
        if order.remaining_qty > 0 and order.frozen_margin:
            order.frozen_margin -= order.frozen_margin * min(qty / order.remaining_qty, Decimal(1))
        order.avg_price = (order.avg_price * order.executed_qty + price * qty) / (order.executed_qty + qty)
        order.executed_qty += qty
        order.profit += realized
        order.commission -= fee
        order.update_time_ms = now
        if order.closes_position and order.executed_qty < order.qty and self._closable_qty(account, order) == 0:
            order.qty = order.executed_qty  # reduce-only capped to the position: nothing left to do
        order.status = FILLED if order.executed_qty >= order.qty else PARTIALLY_FILLED
        if order.status == FILLED:
            order.frozen_margin = Decimal(0)
        account._wallet += realized - fee
        account._realised += realized - fee
        self._emit_order(account, order, "TRADE", last_qty=qty, last_price=price, realized=realized)
        self._emit_account_update(account, touched)
        if order.status == FILLED and (order.stop_loss or order.take_profit):
            self._place_attached(account, order)
        for position_key in touched:
            if position_key not in account._positions:
                self._cancel_position_triggers(account, *position_key)

    def _apply_to_positions(
        self, account: FakeAccount, order: FakeOrder, qty: Decimal, price: Decimal, fee: Decimal, now: int
    ) -> tuple[Decimal, list[tuple[str, str]]]:
        realized = Decimal(0)
        touched: list[tuple[str, str]] = []
        closing = self._position_for(account, order)
        remaining = qty
        if closing is not None:
            closed = min(remaining, closing.qty)
            pnl = (price - closing.avg_price) * closed * closing.side_sign
            realized += pnl
            closing.qty -= closed
            closing.realized_profit += pnl - fee * closed / qty
            closing.update_time_ms = now
            remaining -= closed
            key = (closing.symbol, closing.position_side)
            touched.append(key)
            if closing.qty == 0:
                del account._positions[key]
        if remaining > 0 and not order.closes_position:
            direction = (
                order.position_side if order.position_side in (LONG, SHORT) else (LONG if order.side == BUY else SHORT)
            )
            key = (order.symbol, direction)
            position = account._positions.get(key)
            if position is None:
                position = FakePosition(
                    position_id=self.next_id(),
                    symbol=order.symbol,
                    position_side=direction,
                    qty=Decimal(0),
                    avg_price=Decimal(0),
                    leverage=account.leverage(order.symbol, direction),
                    margin_mode=account.margin_mode(order.symbol),
                    one_way=not account._hedge,
                )
                account._positions[key] = position
            position.avg_price = (position.avg_price * position.qty + price * remaining) / (position.qty + remaining)
            position.qty += remaining
            position.realized_profit -= fee * remaining / qty
            position.update_time_ms = now
            touched.append(key)
        return realized, touched

    def _place_attached(self, account: FakeAccount, entry: FakeOrder) -> None:
        """The entry's attached stopLoss / takeProfit become reduce-only trigger orders on its position."""
        for raw, default_type in ((entry.stop_loss, "STOP_MARKET"), (entry.take_profit, "TAKE_PROFIT_MARKET")):
            if not raw:
                continue
            try:
                spec = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                continue
            order_type = str(spec.get("type") or default_type).upper()
            if order_type not in TRIGGER_TYPES:
                order_type = default_type
            child = FakeOrder(
                order_id=self.next_id(),
                client_order_id="",
                symbol=entry.symbol,
                side=SELL if entry.side == BUY else BUY,
                position_side=entry.position_side,
                type=order_type,
                qty=dec(spec.get("quantity") or entry.executed_qty),
                price=dec(spec.get("price") or 0) if order_type in PRICED_TYPES else Decimal(0),
                stop_price=dec(spec.get("stopPrice") or 0),
                reduce_only=True,
                working_type=str(spec.get("workingType") or "MARK_PRICE"),
                leverage=entry.leverage,
                parent_order_id=entry.order_id,
                time_ms=self.now_ms(),
                update_time_ms=self.now_ms(),
                accepted_at=time.time(),
            )
            if order_type.startswith("TRIGGER"):
                child.trigger_when_above = child.stop_price > self.marks.get(entry.symbol, child.stop_price)
            account._orders.append(child)
            self._emit_order(account, child, "NEW")

    def _cancel_position_triggers(self, account: FakeAccount, symbol: str, position_side: str) -> None:
        """BingX cancels a position's stop-loss / take-profit orders once the position is gone."""
        closing_side = SELL if position_side == LONG else BUY
        for order in account._orders:
            if not (order.is_open and order.is_trigger and order.symbol == symbol and order.closes_position):
                continue
            if order.position_side in (position_side, BOTH) and order.side == closing_side:
                self._cancel(account, order)

    def _cancel(self, account: FakeAccount, order: FakeOrder) -> None:
        order.status = CANCELLED
        order.frozen_margin = Decimal(0)
        order.update_time_ms = self.now_ms()
        self._emit_order(account, order, "CANCELED")

    # --- events ---
    def _emit(self, account: FakeAccount, event: dict[str, Any]) -> None:
        account._events.append(event)
        if self.on_event:
            self.on_event(account, event)

    def _emit_order(self, account: FakeAccount, order: FakeOrder, execution: str, **fill: Any) -> None:
        from .wire import order_event

        self._emit(account, order_event(self, order, execution, **fill))

    def _emit_account_update(self, account: FakeAccount, touched: list[tuple[str, str]]) -> None:
        from .wire import account_update_event

        self._emit(account, account_update_event(self, account, touched))


def _parse_decimal(value: str | None, name: str) -> Decimal:
    if value is None or value == "":
        raise BingXError(80014, f"Invalid parameters, {name}: This field is required.")
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise BingXError(80014, f"Invalid parameters, {name}: {value!r} is not a number") from None
    if not parsed.is_finite():
        raise BingXError(80014, f"Invalid parameters, {name}: {value!r} is not a number")
    return parsed


def _parse_positive_int(value: str | None, name: str) -> int:
    parsed = _parse_decimal(value, name)
    if parsed != parsed.to_integral_value(ROUND_DOWN) or parsed < 1:
        raise BingXError(109400, f"{name} must be a whole number >= 1")
    return int(parsed)
