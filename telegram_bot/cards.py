"""A signal's approval card as Telegram shows it: text (HTML) and inline buttons. Pure: no database, no I/O.

The card shows what the pipeline worked out for the signal (``signal.extras["plan"]``, written by
``signals_app.pipeline.Plan.describe``) or, when given, a fresh ``Plan``. C's sender posts
``signal_card_view``; the approval handlers edit it with the same function after an edit, and with
``signal_card_final_view`` once the signal is no longer waiting (approved with the exchange's result,
rejected with the reason, expired, failed), which has no buttons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from html import escape

from signals_app.models import Signal
from telegram_bot.callbacks import cb

S = Signal.Status
# What the risk engine (trading/risk.py) checks before a trade that opens exposure, by rule name, in the
# words the card uses. A plan that passed passed every one of them. tests/telegram_bot/test_cards.py
# checks that this covers every rule the engine can break.
ENTRY_RISK_CHECKS: dict[str, str] = {
    "signal_stale": "fresh alert",
    "signal_from_future": "sane alert clock",
    "kill_switch": "trading on",
    "symbol_not_whitelisted": "symbol whitelisted",
    "outside_trading_days": "trading day",
    "outside_trading_hours": "trading hours",
    "confidence_too_low": "confidence",
    "cooldown": "cooldown",
    "trades_per_day": "trades per day",
    "open_positions": "open positions",
    "notional_per_trade": "order value",
    "notional_per_symbol": "symbol exposure",
    "leverage_symbol": "symbol max leverage",
    "leverage_account": "account max leverage",
    "insufficient_balance": "margin available",
    "daily_loss": "daily loss",
    "drawdown": "drawdown",
}
# A trade that only reduces exposure is checked for staleness alone (exits are never blocked).
EXIT_RISK_CHECKS: dict[str, str] = {"signal_stale": "fresh alert", "signal_from_future": "sane alert clock"}
ENTRY_ACTIONS = ("buy", "sell", "reverse")
FINAL_STATUSES = frozenset({S.EXECUTED, S.REJECTED, S.FAILED, S.EXPIRED})


@dataclass(frozen=True)
class CardView:
    text: str
    keyboard: list[list[dict]] = field(default_factory=list)

    def reply_markup(self) -> dict | None:
        """The Bot API ``reply_markup`` (None without buttons: an edit without it removes the keyboard)."""
        return {"inline_keyboard": self.keyboard} if self.keyboard else None


@dataclass(frozen=True)
class OrderResult:
    """One of the signal's orders as the card reports it (from an ``trading.models.Order`` row)."""

    purpose: str
    side: str
    qty: Decimal
    status: str
    exchange_order_id: str = ""
    filled_qty: Decimal = Decimal("0")
    average_price: Decimal | None = None
    trigger_price: Decimal | None = None
    error_text: str = ""

    @classmethod
    def from_order(cls, order) -> OrderResult:
        return cls(
            purpose=order.purpose,
            side=order.side,
            qty=order.qty,
            status=order.status,
            exchange_order_id=order.exchange_order_id,
            filled_qty=order.filled_qty,
            average_price=order.average_price,
            trigger_price=order.trigger_price,
            error_text=order.error_text,
        )


def button(text: str, data: str) -> dict:
    return {"text": text, "callback_data": data}


# --- formatting helpers --------------------------------------------------------------------------


def number(value: object) -> str:
    """A Decimal (or its text) without exponent or trailing zeros: 0.0100 -> 0.01, 1E+2 -> 100."""
    if value is None or value == "":
        return "-"
    try:
        decimal = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return escape(str(value))
    return f"{decimal.normalize():f}"


def clock(moment: datetime | None) -> str:
    return f"{moment:%H:%M:%S} UTC" if moment else "-"


def _tp_label(purpose: str) -> str:
    return "TP" + purpose.rsplit("_", 1)[-1] if purpose.startswith("take_profit_") else purpose


def _account_label(signal: Signal) -> str:
    """The account's name if it is already loaded; never a query from here."""
    if Signal.account.is_cached(signal):
        return escape(signal.account.name)
    return f"account {signal.account_id}"


def _headline(signal: Signal, plan: dict) -> str:
    side = plan.get("side")
    action = (
        {"long": "🟢 LONG", "short": "🔴 SHORT"}.get(side, "")
        if side
        else signal.get_action_display() or signal.action or "?"
    )
    if signal.action == "reverse":
        action = f"🔁 REVERSE to {action}"
    return f"<b>{escape(action)} {escape(signal.symbol or '?')}</b> · signal #{signal.pk}"


def plan_lines(signal: Signal, plan: dict) -> list[str]:
    """The trade the signal would make: size, value, leverage, margin mode, SL, TP levels."""
    lines = []
    if plan.get("close"):
        lines.append(f"Closes: {escape(', '.join(plan['close']))}")
    if plan.get("qty") is not None:
        lines.append(f"Qty: <b>{number(plan['qty'])}</b> (≈ {number(plan.get('notional'))} USDT)")
        lines.append(f"Leverage: <b>{plan.get('leverage', '-')}x</b> {escape(str(plan.get('margin_mode') or '-'))}")
        order_type = signal.order_type or "market"
        lines.append(
            f"Entry: {escape(order_type)} @ {'~' if order_type == 'market' else ''}{number(plan.get('price'))}"
        )
        protective = plan.get("protective") or []
        stops = [leg for leg in protective if leg.get("purpose") == "stop_loss"]
        takes = [leg for leg in protective if str(leg.get("purpose", "")).startswith("take_profit_")]
        lines.append("SL: " + (", ".join(number(leg["trigger"]) for leg in stops) if stops else "none"))
        if takes:
            lines.extend(
                f"{_tp_label(leg['purpose'])}: {number(leg['trigger'])} (qty {number(leg['qty'])})" for leg in takes
            )
        else:
            lines.append("TP: none")
    elif plan.get("price") is not None:
        lines.append(f"Price: ~{number(plan['price'])}")
    return lines


def risk_lines(plan: dict) -> list[str]:
    checks = plan.get("checks")
    if checks is None:
        return ["Risk checks: not run yet"]
    if checks != "passed":
        return [f"⚠️ Risk checks failed: {escape(str(checks))}"]
    names = ENTRY_RISK_CHECKS if plan.get("qty") is not None else EXIT_RISK_CHECKS
    return ["✅ Risk checks passed: " + ", ".join(dict.fromkeys(names.values()))]


def _plan_of(signal: Signal, plan) -> dict:
    if plan is not None:
        return plan.describe()
    return dict((signal.extras or {}).get("plan") or {})


# --- the card ------------------------------------------------------------------------------------


def signal_card_keyboard(signal_id: int, *, editable: bool = True) -> list[list[dict]]:
    """Approve / Reject, and the edit buttons for an entry (a close, cancel or update has nothing to edit)."""
    decide = [
        button("✅ Approve", cb("sig", "ok", signal_id)),
        button("❌ Reject", cb("sig", "no", signal_id)),
    ]
    if not editable:
        return [decide]
    return [
        decide,
        [
            button("Edit qty", cb("sig", "ed", "q", signal_id)),
            button("Edit SL", cb("sig", "ed", "sl", signal_id)),
        ],
        [
            button("Edit TP", cb("sig", "ed", "tp", signal_id)),
            button("Edit leverage", cb("sig", "ed", "lev", signal_id)),
        ],
    ]


def signal_card_view(signal: Signal, *, plan=None, note: str = "") -> CardView:
    """The card of a signal. While it awaits confirmation it has the approval buttons; otherwise it is the
    final card (``signal_card_final_view``) without them. ``note`` is a line shown under the title
    (e.g. "qty changed 0.01 → 0.02 by @alice")."""
    if signal.status != S.AWAITING_CONFIRMATION:
        return signal_card_final_view(signal)
    data = _plan_of(signal, plan)
    lines = [_headline(signal, data), f"⏳ Awaiting approval · {_account_label(signal)}"]
    if note:
        lines.append(f"<i>{escape(note)}</i>")
    lines.append("")
    lines.extend(plan_lines(signal, data))
    lines.extend(risk_lines(data))
    lines.extend(_origin_lines(signal))
    lines.append(f"Expires at {clock(signal.confirmation_expires_at)}")
    return CardView("\n".join(lines), signal_card_keyboard(signal.pk, editable=signal_card_is_editable(signal)))


def _origin_lines(signal: Signal) -> list[str]:
    parts = []
    if signal.strategy:
        parts.append(escape(signal.strategy))
    if signal.timeframe:
        parts.append(escape(signal.timeframe))
    if signal.confidence is not None:
        parts.append(f"confidence {number(signal.confidence)}")
    return ["Alert: " + " · ".join(parts)] if parts else []


def order_line(order: OrderResult) -> str:
    label = _tp_label(order.purpose) if order.purpose.startswith("take_profit_") else order.purpose.replace("_", " ")
    text = f"{escape(label)} {escape(order.side.upper())} {number(order.qty)}: <b>{escape(order.status)}</b>"
    if order.filled_qty:
        text += f", filled {number(order.filled_qty)}"
        if order.average_price is not None:
            text += f" @ {number(order.average_price)}"
    elif order.trigger_price is not None:
        text += f" at {number(order.trigger_price)}"
    if order.exchange_order_id:
        text += f" · order {escape(order.exchange_order_id)}"
    if order.error_text:
        text += f" ({escape(order.error_text[:200])})"
    return text


def signal_card_final_view(signal: Signal, *, orders: Iterable[OrderResult] = (), actor_label: str = "") -> CardView:
    """The card once the signal no longer waits: approved with what the exchange did, rejected with the
    reason, expired, or failed. No buttons."""
    data = _plan_of(signal, None)
    by = f" by {escape(actor_label)}" if actor_label else ""
    reason = escape(signal.rejection_reason or "")
    status_line = {
        S.EXECUTED: f"✅ Approved{by}: executed",
        S.APPROVED: f"✅ Approved{by}: sending to the exchange…",
        S.EXECUTING: f"✅ Approved{by}: executing, the outcome is being confirmed with the exchange",
        S.REJECTED: (
            f"✅ Approved{by}, then ❌ rejected: {reason or 'no reason given'}"
            if signal.approved_at
            else f"❌ Rejected{by}: {reason or 'no reason given'}"
        ),
        S.FAILED: f"⚠️ Failed{by}: {reason or 'no reason given'}",
        S.EXPIRED: f"⌛ Expired at {clock(signal.expired_at or signal.confirmation_expires_at)}: not traded",
    }.get(signal.status, f"Status: {escape(signal.get_status_display())}")
    lines = [_headline(signal, data), status_line, ""]
    lines.extend(plan_lines(signal, data))
    orders = list(orders)
    if orders:
        lines.append("")
        lines.append("<b>Exchange</b>")
        lines.extend(order_line(order) for order in orders)
    return CardView("\n".join(lines))


def signal_card_is_editable(signal: Signal) -> bool:
    """Only an entry has a qty, stop loss, take profits and leverage to change."""
    return signal.action in ENTRY_ACTIONS


def signal_card_is_final(signal: Signal) -> bool:
    return signal.status in FINAL_STATUSES
