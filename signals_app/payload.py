"""Parsing and normalising TradingView alert payloads (pure: no ORM, no I/O).

Version 1 of the payload is documented in the README. The original TVTelegramBingX alerts (actions
LONG_BUY/LONG_SELL/SHORT_SELL/SHORT_BUY, an ``actions`` list, per-symbol ``trade_settings``) are
accepted too, so traders who move over keep their alerts.

Nothing here raises on bad input: every problem is collected as "field: what is wrong" so the
webhook can answer with all of them at once and store the alert as rejected with the same reasons.
Numbers may arrive as JSON numbers or strings; they become ``Decimal`` without passing through float.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tvbingx.config import MAX_EXCHANGE_LEVERAGE

ACTIONS = ("buy", "sell", "close", "close_long", "close_short", "reverse", "cancel", "update")
EXIT_ACTIONS = ("close", "close_long", "close_short", "cancel")
# TVTelegramBingX's words (its trade_executor): LONG_SELL sells the long, SHORT_BUY buys the short back.
LEGACY_ACTIONS = {
    "LONG_BUY": "buy",
    "LONG_OPEN": "buy",
    "LONG_SELL": "close_long",
    "LONG_CLOSE": "close_long",
    "SHORT_SELL": "sell",
    "SHORT_OPEN": "sell",
    "SHORT_BUY": "close_short",
    "SHORT_CLOSE": "close_short",
}
LEGACY_LEVEL_KEYS = (
    "tp1",
    "tp2",
    "tp3",
    "tp4",
    "tp1_move",
    "tp2_move",
    "tp3_move",
    "tp4_move",
    "tp1_sell",
    "tp2_sell",
    "tp3_sell",
    "tp4_sell",
    "sl_to_entry_tp2",
    "margin_usdt",
    "margin",
)
SIZE_MODES = ("qty", "usdt", "margin_usdt", "pct_equity", "pct_available", "risk_pct", "pct_position")
ORDER_TYPES = ("market", "limit")
MARGIN_MODES = ("isolated", "cross")
SETTINGS_CONTAINERS = ("trade_settings", "settings", "webhook_settings")
MAX_TAKE_PROFITS = 6
PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
HUNDRED = Decimal("100")
MAX_EXPONENT = 30  # no price, size or percentage is anywhere near 1e30 or 1e-30


@dataclass(frozen=True)
class TakeProfitLeg:
    price: Decimal | None
    pct: Decimal | None
    size_pct: Decimal


@dataclass(frozen=True)
class StopLoss:
    price: Decimal | None
    pct: Decimal | None


@dataclass
class NormalisedAlert:
    """One alert as the pipeline understands it; ``problems`` lists everything that is wrong with it."""

    action: str = ""
    symbol: str = ""
    account: str = ""
    alert_id: str = ""
    sent_at: datetime | None = None
    max_lag_s: int | None = None
    strategy: str = ""
    timeframe: str = ""
    comment: str = ""
    order_type: str = "market"
    price: Decimal | None = None
    size_mode: str = ""
    size_value: Decimal | None = None
    leverage: int | None = None
    margin_mode: str = ""
    stop_loss: StopLoss | None = None
    take_profits: tuple[TakeProfitLeg, ...] = ()
    breakeven: dict[str, Any] | None = None
    trailing: dict[str, Any] | None = None
    confidence: Decimal | None = None
    symbol_settings: dict[str, Any] = field(default_factory=dict)  # legacy per-symbol overrides
    problems: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """SHA-256 of what the alert asks for: the same request gives the same fingerprint.

        The delivery details (secret, sent_at, max_lag_s) are left out, so a resend of the same bar's alert
        with a later fire time is recognised as the same alert.
        """
        return hashlib.sha256(json.dumps(self._fingerprint_content(), sort_keys=True, default=str).encode()).hexdigest()

    def _fingerprint_content(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives without the delivery details, built directly.

        asdict deep-copies every value on the way (~0.05 ms of CPU per alert, under the GIL every request
        shares); json.dumps only reads them. The result must stay exactly asdict's (stored fingerprints
        decide duplicates across deploys): tests/signals_app/test_payload.py compares the two.
        """
        content = {name: getattr(self, name) for name in _FINGERPRINT_FIELDS}
        stop = self.stop_loss
        content["stop_loss"] = None if stop is None else {"price": stop.price, "pct": stop.pct}
        content["take_profits"] = [
            {"price": leg.price, "pct": leg.pct, "size_pct": leg.size_pct} for leg in self.take_profits
        ]
        return content


# The fields a fingerprint covers: all but the delivery details (and the problems found).
_FINGERPRINT_FIELDS = tuple(
    item.name for item in fields(NormalisedAlert) if item.name not in ("sent_at", "max_lag_s", "problems")
)


@dataclass
class ParsedBody:
    data: dict[str, Any] | None
    problems: list[str]


def parse_body(raw: bytes) -> ParsedBody:
    """JSON from the body whatever the content type (TradingView sends valid JSON as text/plain too)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ParsedBody(None, ["body: not UTF-8 text"])
    if not text.strip():
        return ParsedBody(None, ["body: empty; the alert message must be a JSON object"])
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as error:
        return ParsedBody(None, [f"body: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"])
    except RecursionError:
        return ParsedBody(None, ["body: nested too deeply to be an alert"])
    if not isinstance(data, dict):
        return ParsedBody(None, ["body: must be a JSON object, not " + type(data).__name__])
    if "\x00" in text or re.search(r"\\u0000", text):
        # Valid JSON, and its secret may be right; but no alert needs a NUL and PostgreSQL cannot store one.
        return ParsedBody(data, ["body: contains a NUL character"])
    return ParsedBody(data, [])


class _Reader:
    """Reads typed fields from the payload, collecting problems instead of raising."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.problems: list[str] = []

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{name}: {message}")

    def raw(self, *names: str) -> tuple[str, Any]:
        for name in names:
            if name in self.data and self.data[name] is not None:
                return name, self.data[name]
        return names[0], None

    def unexpanded(self, name: str, value: Any) -> bool:
        if isinstance(value, str) and PLACEHOLDER.search(value):
            self.problem(name, f"TradingView did not expand the placeholder {PLACEHOLDER.search(value).group(0)}")
            return True
        return False

    def text(self, *names: str, required: bool = False, max_length: int = 200) -> str:
        name, value = self.raw(*names)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problem(name, "missing or empty")
            return ""
        if isinstance(value, dict | list):
            self.problem(name, "must be text")
            return ""
        text = str(value).strip()
        if self.unexpanded(name, text):
            return ""
        if len(text) > max_length:
            self.problem(name, f"longer than {max_length} characters")
            return ""
        return text

    def decimal(self, name: str, value: Any, *, positive: bool = True) -> Decimal | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or isinstance(value, dict | list):
            self.problem(name, "must be a number")
            return None
        if self.unexpanded(name, value):
            return None
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            self.problem(name, f"'{value}' is not a number")
            return None
        if not number.is_finite():
            self.problem(name, f"'{value}' is not a number")
            return None
        if number and not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
            self.problem(name, f"'{value}' is out of range")
            return None
        if positive and number <= 0:
            self.problem(name, f"must be greater than 0, got {number}")
            return None
        return number

    def number(self, *names: str, positive: bool = True) -> Decimal | None:
        name, value = self.raw(*names)
        return self.decimal(name, value, positive=positive)

    def integer(self, *names: str, low: int, high: int) -> int | None:
        name, value = self.raw(*names)
        number = self.decimal(name, value)
        if number is None:
            return None
        if number != number.to_integral_value() or not low <= number <= high:
            self.problem(name, f"must be a whole number from {low} to {high}, got {number}")
            return None
        return int(number)

    def choice(self, name: str, choices: tuple[str, ...], *, default: str = "") -> str:
        value = self.text(name)
        if not value:
            return default
        lowered = value.lower()
        if lowered not in choices:
            self.problem(name, f"'{value}' is not valid; accepted: {', '.join(choices)}")
            return default
        return lowered


def _parse_timestamp(reader: _Reader, name: str) -> datetime | None:
    _, value = reader.raw(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if reader.unexpanded(name, value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
        seconds = Decimal(text)
        if seconds > Decimal("100000000000"):  # more digits than seconds have until the year 5138: milliseconds
            seconds /= 1000
        return datetime.fromtimestamp(float(seconds), tz=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        reader.problem(name, f"'{text}' is not an ISO-8601 time or epoch milliseconds")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_size(reader: _Reader, alert: NormalisedAlert) -> None:
    name, size = reader.raw("size")
    if size is None:
        quantity = reader.number("quantity", "qty")
        if quantity is not None:
            alert.size_mode, alert.size_value = "qty", quantity
        return
    if isinstance(size, dict):
        mode = str(size.get("mode", "")).strip().lower()
        if mode not in SIZE_MODES:
            reader.problem("size.mode", f"'{size.get('mode', '')}' is not valid; accepted: {', '.join(SIZE_MODES)}")
            return
        value = reader.decimal("size.value", size.get("value"))
        if value is None:
            if size.get("value") is None:
                reader.problem("size.value", "missing")
            return
        alert.size_mode, alert.size_value = mode, value
        return
    value = reader.decimal(name, size)  # a bare number is a base quantity
    if value is not None:
        alert.size_mode, alert.size_value = "qty", value


def _parse_stop_loss(reader: _Reader, value: Any) -> StopLoss | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        price = reader.decimal("sl.price", value.get("price"))
        pct = reader.decimal("sl.pct", value.get("pct"))
        if price is None and pct is None:
            if value.get("price") is None and value.get("pct") is None:
                reader.problem("sl", "give a price or a pct")
            return None
        if price is not None and pct is not None:
            reader.problem("sl", "give a price or a pct, not both")
            return None
        return StopLoss(price=price, pct=pct)
    price = reader.decimal("sl", value)
    return StopLoss(price=price, pct=None) if price is not None else None


def _parse_take_profits(reader: _Reader, value: Any) -> tuple[TakeProfitLeg, ...]:
    if value is None or value == "" or value == []:
        return ()
    if not isinstance(value, list):
        price = reader.decimal("tp", value)  # a bare number: one take profit for the whole position
        return (TakeProfitLeg(price=price, pct=None, size_pct=HUNDRED),) if price is not None else ()
    if len(value) > MAX_TAKE_PROFITS:
        reader.problem("tp", f"at most {MAX_TAKE_PROFITS} take-profit levels, got {len(value)}")
        return ()
    legs = []
    for index, leg in enumerate(value, start=1):
        name = f"tp[{index}]"
        if not isinstance(leg, dict):
            reader.problem(name, "must be an object with price or pct, and size_pct")
            continue
        price = reader.decimal(f"{name}.price", leg.get("price"))
        pct = reader.decimal(f"{name}.pct", leg.get("pct"))
        if (price is None) == (pct is None):
            if leg.get("price") is None and leg.get("pct") is None or (price is not None and pct is not None):
                reader.problem(name, "give a price or a pct (one of them)")
            continue
        default_share = (HUNDRED / len(value)).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        size_pct = reader.decimal(f"{name}.size_pct", leg.get("size_pct", default_share))
        if size_pct is None:
            continue
        legs.append(TakeProfitLeg(price=price, pct=pct, size_pct=size_pct))
    total = sum((leg.size_pct for leg in legs), Decimal("0"))
    if total > HUNDRED:
        reader.problem("tp", f"the size_pct of all levels adds up to {total}, more than 100")
    return tuple(legs)


def _parse_confidence(reader: _Reader) -> Decimal | None:
    confidence = reader.number("confidence", positive=False)
    if confidence is None:
        return None
    if confidence < 0 or confidence > HUNDRED:
        reader.problem("confidence", f"must be from 0 to 100 (or 0 to 1), got {confidence}")
        return None
    # 0-1 is read as a fraction, so 0.8 and 80 mean the same; 1 therefore means 100.
    return (confidence * HUNDRED if confidence <= 1 else confidence).quantize(Decimal("0.01"))


def _parse_options(reader: _Reader, name: str) -> dict[str, Any] | None:
    _, value = reader.raw(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        reader.problem(name, "must be an object")
        return None
    options = {}
    for key, item in value.items():
        number = reader.decimal(f"{name}.{key}", item, positive=False)
        if number is not None:
            options[key] = str(number)
    return options


def _legacy_word(item: Any) -> str:
    return str(item).strip().upper().replace("-", "_").replace("/", "_")


def _action_items(value: Any) -> list[Any]:
    """A list as it is; a legacy string may hold several actions separated by , ; | or new lines."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and re.search(r"[,;|\n]", value):
        return [part for part in re.split(r"[,;|\n]", value) if part.strip()]
    return [value]


def _actions(reader: _Reader) -> list[str]:
    name, value = reader.raw("actions", "action")
    if value is None:
        reader.problem("action", "missing; accepted: " + ", ".join(ACTIONS))
        return []
    items = _action_items(value)
    problems_before = len(reader.problems)
    actions = []
    for item in items:
        if reader.unexpanded(name, item):
            continue
        text = str(item).strip()
        legacy_word = _legacy_word(text)
        if legacy_word in LEGACY_ACTIONS:
            actions.append(LEGACY_ACTIONS[legacy_word])
        elif text.lower() in ACTIONS:
            actions.append(text.lower())
        else:
            accepted = ", ".join(ACTIONS + tuple(LEGACY_ACTIONS))
            reader.problem(name, f"'{text}' is not an action; accepted: {accepted}")
    if not actions and len(reader.problems) == problems_before:
        reader.problem(name, "no action given")
    return actions


def normalise_alert(data: dict[str, Any]) -> list[NormalisedAlert]:
    """One NormalisedAlert per action (a legacy ``actions`` list gives several), each listing its problems."""
    reader = _Reader(data)
    base = NormalisedAlert()
    base.account = reader.text("account", max_length=64)
    base.alert_id = reader.text("alert_id", max_length=200)
    base.symbol = reader.text("symbol", "ticker", required=True, max_length=64)
    base.strategy = reader.text("strategy", max_length=100)
    base.timeframe = reader.text("timeframe", "interval", max_length=16)
    base.comment = reader.text("comment", max_length=2000)
    base.sent_at = _parse_timestamp(reader, "sent_at")
    base.max_lag_s = reader.integer("max_lag_s", low=1, high=86400)
    base.order_type = reader.choice("order_type", ORDER_TYPES, default="market")
    base.price = reader.number("price")
    base.leverage = reader.integer("leverage", "lev", low=1, high=MAX_EXCHANGE_LEVERAGE)
    base.margin_mode = reader.choice("margin_mode", MARGIN_MODES)
    _parse_size(reader, base)
    if is_legacy(data):
        _parse_legacy_settings(reader, base)
    else:
        base.stop_loss = _parse_stop_loss(reader, reader.raw("sl", "stop_loss")[1])
        base.take_profits = _parse_take_profits(reader, reader.raw("tp")[1])
    base.breakeven = _parse_options(reader, "breakeven")
    base.trailing = _parse_options(reader, "trailing")
    base.confidence = _parse_confidence(reader)
    if base.order_type == "limit" and base.price is None:
        reader.problem("price", "a limit order needs a price")
    actions = _actions(reader)
    problems = reader.problems
    if not actions:
        base.problems = problems
        return [base]
    if len(actions) == 1:  # the usual case: base is nobody else's, so no copy (a deep copy is ~0.03 ms)
        base.action, base.problems = actions[0], list(problems)
        return [base]
    alerts = []
    for action in actions:
        alert = copy.deepcopy(base)  # each action gets its own objects
        alert.action, alert.problems = action, list(problems)
        alerts.append(alert)
    return alerts


# --- TVTelegramBingX compatibility -------------------------------------------------------------------


def is_legacy(data: dict[str, Any]) -> bool:
    """An alert written for TVTelegramBingX: its action words, an `actions` list, settings or tpN keys."""
    _, action = ("actions", data["actions"]) if "actions" in data else ("action", data.get("action"))
    words = [_legacy_word(item) for item in _action_items(action) if item is not None]
    return (
        "actions" in data
        or any(word in LEGACY_ACTIONS for word in words)
        or any(isinstance(data.get(container), dict) for container in SETTINGS_CONTAINERS)
        or any(key in data for key in LEGACY_LEVEL_KEYS)
    )


LEGACY_ALIASES = {
    "margin": "margin_usdt",
    "lev": "leverage",
    "stop_loss": "sl",
    "sl_move_percent": "sl",
    "tp": "tp1",
    "tp1_move": "tp1",
    "tp2_move": "tp2",
    "tp3_move": "tp3",
    "tp4_move": "tp4",
    "tp_sell": "tp1_sell",
    "sl_to_entry_after_tp2": "sl_to_entry_tp2",
}


def _canonical_layer(layer: dict[str, Any]) -> dict[str, Any]:
    """One layer with aliases renamed; within a layer the canonical key wins over its alias."""
    canonical = {LEGACY_ALIASES.get(key, key): value for key, value in layer.items() if key in LEGACY_ALIASES}
    canonical.update({key: value for key, value in layer.items() if key not in LEGACY_ALIASES})
    return canonical


def _legacy_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys, overlaid by trade_settings, settings and webhook_settings in that order (as the original).

    Aliases are renamed per layer before overlaying, so a later layer's alias beats an earlier canonical key.
    """
    merged = _canonical_layer(data)
    for container in SETTINGS_CONTAINERS:
        if isinstance(data.get(container), dict):
            merged.update(_canonical_layer(data[container]))
    return merged


def _parse_legacy_settings(reader: _Reader, alert: NormalisedAlert) -> None:
    """Per-symbol overrides in TVTelegramBingX's units; they apply to this alert and are kept on the symbol.

    - ``sl`` / ``stop_loss``: stop distance in % from entry (1.5 = 1.5 %).
    - ``tpN`` / ``tpN_move``: take profit N as an R-multiple of that stop distance (tp1=2 with sl=1.5: +3 %).
    - ``tpN_sell``: % of the position closed at take profit N.
    - ``margin_usdt`` / ``margin``, ``leverage`` / ``lev``: order margin and leverage.
    - ``sl_to_entry_tp2``: move the stop to the entry price once take profit 2 is hit.
    """
    settings = _legacy_settings(reader.data)
    legacy = _Reader(settings)
    overrides: dict[str, Any] = {}
    margin = legacy.number("margin_usdt")
    if margin is not None:
        overrides["order_size_mode"], overrides["order_size_value"] = "margin_usdt", margin
        if not alert.size_mode:
            alert.size_mode, alert.size_value = "margin_usdt", margin
    leverage = legacy.integer("leverage", low=1, high=MAX_EXCHANGE_LEVERAGE)
    if leverage is not None:
        overrides["leverage"] = alert.leverage = leverage
    stop_pct = legacy.number("sl")
    if stop_pct is not None:
        overrides["stop_loss_pct"] = stop_pct
        alert.stop_loss = StopLoss(price=None, pct=stop_pct)
    legs, levels = [], {}
    for level in range(1, 5):
        names = (f"tp{level}",)
        r_multiple = legacy.number(*names)
        sell_pct = legacy.number(f"tp{level}_sell")
        if sell_pct is not None and sell_pct > HUNDRED:
            legacy.problem(f"tp{level}_sell", f"must be at most 100, got {sell_pct}")
            sell_pct = None
        if r_multiple is None:
            continue
        if stop_pct is None:
            legacy.problem(names[0], "a take profit in R needs sl (the stop distance in %)")
            continue
        levels[level] = {"pct": r_multiple * stop_pct, "size_pct": sell_pct}
    sized = [level for level in levels.values() if level["size_pct"] is not None]
    unsized = [level for level in levels.values() if level["size_pct"] is None]
    rest = HUNDRED - sum((level["size_pct"] for level in sized), Decimal("0"))
    for level in unsized:  # levels without tpN_sell share what the others leave
        level["size_pct"] = (rest / len(unsized)).quantize(Decimal("0.01")) if rest > 0 else Decimal("0")
    numbers = sorted(levels)
    for level in numbers:
        legs.append(TakeProfitLeg(price=None, pct=levels[level]["pct"], size_pct=levels[level]["size_pct"]))
    if legs:
        if sum((leg.size_pct for leg in legs), Decimal("0")) > HUNDRED:
            legacy.problem("tp_sell", "the tpN_sell values add up to more than 100")
        else:
            alert.take_profits = tuple(leg for leg in legs if leg.size_pct > 0)
            # Numbered as tpN, so "breakeven after TP2" still means the alert's tp2.
            overrides["take_profits"] = [
                {"level": level, "pct": str(leg.pct), "size_pct": str(leg.size_pct)}
                for level, leg in zip(numbers, legs, strict=True)
                if leg.size_pct > 0
            ]
    breakeven = settings.get("sl_to_entry_tp2", settings.get("sl_to_entry_after_tp2"))
    if breakeven is not None:
        text = str(breakeven).strip().lower()
        try:
            enabled = Decimal(text) != 0  # any non-zero number counts as on
        except InvalidOperation:
            enabled = text in ("true", "yes", "on", "ja", "an")
        overrides["breakeven_after_tp"] = 2 if enabled else None
    alert.symbol_settings = overrides
    # Top-level keys are read by both readers; report each problem once.
    reader.problems.extend(problem for problem in legacy.problems if problem not in reader.problems)


# --- display -----------------------------------------------------------------------------------------

SECRET_VALUE = re.compile(r'("(?:secret|password)"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)


def redact_secrets(raw_body: str) -> str:
    """The body as received with the webhook secret masked, for screens and exports (the row keeps it all)."""
    return SECRET_VALUE.sub(r'\1"***"', raw_body)
