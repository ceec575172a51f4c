"""What each notification says (HTML, every value escaped). Pure: the caller passes loaded rows.

Each line keeps its tags balanced, so a text can be cut between lines (``text_split``).
"""

from __future__ import annotations

import html
from decimal import Decimal

from signals_app.models import Signal
from telegram_bot.cards import number, plan_lines, risk_lines
from trading.models import Order, Position, TradingAccount


def escape(value: str) -> str:
    """Telegram HTML needs only <, > and & escaped; quotes stay readable in the raw text."""
    return html.escape(value, quote=False)


TEXT_LIMIT = 4096  # Telegram's maximum message length
RESENT_NOTE = "<i>(Sent again after an interruption: you may already have this message.)</i>"

ALERT_TITLES = {
    "alerts.stream_down": "📡 Stream down",
    "alerts.stream_restored": "📡 Stream back",
    "alerts.clock_skew": "🕒 Clock skew",
    "alerts.protection_missing": "🛡️ Protection NOT placed",
    "alerts.flatten_failed": "⚠️ Position not closed after a risk breach",
    "alerts.stream_follow_up_failed": "⚠️ Fill follow-up failed",
    "risk.breach": "⛔ Risk limit hit: auto-trade switched off",
    "signals.outcome_unknown": "❓ Order outcome unknown: being looked up on BingX",
}
SWITCH_TITLES = {
    "tradingaccount.kill_switch": "⛔ Kill switch ON: no new entries (exits still allowed)",
    "tradingaccount.trading_enabled": "✅ Kill switch off: new entries allowed again",
}
CIRCUIT_TITLES = {
    "degraded": "🔌 Circuit breaker OPEN: BingX unreachable",
    "ok": "🔌 Circuit breaker closed: BingX reachable",
}
RULE_WORDS = {"daily_loss": "daily loss limit", "drawdown": "drawdown limit"}
CLOSE_HEADS = {Position.CloseReason.LIQUIDATION: "💥 Position liquidated"}


def _account(account: TradingAccount | None, account_id=None) -> str:
    return escape(account.name) if account is not None else f"account {escape(str(account_id or '?'))}"


def _signal_head(signal: Signal) -> str:
    return f"<b>{escape(signal.get_action_display() or signal.action or '?')} {escape(signal.symbol or '?')}</b>"


def signal_auto_text(signal: Signal) -> str:
    """A new signal the risk engine passed and auto-trade executes."""
    plan = dict((signal.extras or {}).get("plan") or {})
    lines = [f"📥 New signal #{signal.pk}: {_signal_head(signal)}", f"Auto-trade · {_account(signal.account)}"]
    lines += plan_lines(signal, plan) + risk_lines(plan)
    return "\n".join(lines)


def signal_waiting_text(signal: Signal) -> str:
    """A viewer's version of the approval card: what waits, without buttons."""
    plan = dict((signal.extras or {}).get("plan") or {})
    lines = [
        f"📥 New signal #{signal.pk}: {_signal_head(signal)}",
        f"⏳ Awaiting a trader's approval · {_account(signal.account)}",
    ]
    lines += plan_lines(signal, plan) + risk_lines(plan)
    return "\n".join(lines)


def signal_rejected_text(signal: Signal, reason: str) -> str:
    return "\n".join(
        [
            f"❌ Signal #{signal.pk} rejected: {_signal_head(signal)} · {_account(signal.account)}",
            f"Reason: {escape(reason or signal.rejection_reason or 'not given')}",
        ]
    )


def signal_failed_text(signal: Signal, reason: str) -> str:
    return "\n".join(
        [
            f"⚠️ Signal #{signal.pk} failed: {_signal_head(signal)} · {_account(signal.account)}",
            f"Error: {escape(reason or signal.rejection_reason or 'not given')}",
        ]
    )


def _purpose(order: Order) -> str:
    if order.purpose.startswith("take_profit_"):
        return "Take profit " + order.purpose.rsplit("_", 1)[-1]
    return order.get_purpose_display()


def order_placed_text(order: Order) -> str:
    price = order.trigger_price or order.price
    at = f" @ {number(price)}" if price else ""
    return (
        f"📝 {escape(_purpose(order))} order placed: {escape(order.side)} {number(order.qty)} "
        f"{escape(order.symbol)}{at} · {_account(order.account)}"
    )


def order_filled_text(order: Order) -> str:
    head = {"stop_loss": "🛑 Stop loss hit", "trailing": "🛑 Trailing stop hit"}.get(order.purpose)
    if head is None and order.purpose.startswith("take_profit_"):
        head = f"🎯 {_purpose(order)} hit"
    head = head or f"✅ {escape(_purpose(order))} filled"
    return (
        f"{head}: {escape(order.side)} {number(order.filled_qty)} {escape(order.symbol)} "
        f"@ {number(order.average_price)} · {_account(order.account)}"
    )


def order_failed_text(order: Order, reason: str) -> str:
    return (
        f"❌ {escape(_purpose(order))} order {escape(order.status)}: {escape(order.side)} {number(order.qty)} "
        f"{escape(order.symbol)} · {_account(order.account)}\nReason: {escape(reason or order.error_text or '-')}"
    )


def position_closed_text(position: Position) -> str:
    head = CLOSE_HEADS.get(position.close_reason, "📕 Position closed")
    pnl = position.realized_pnl
    sign = "+" if pnl is not None and pnl > 0 else ""
    return "\n".join(
        [
            f"{head}: {escape(position.symbol)} {escape(position.side)} closed · {_account(position.account)}",
            f"Realized PnL: <b>{sign}{number(pnl)} USDT</b> · {escape(position.get_close_reason_display() or '-')}",
        ]
    )


def alert_text(topic: str, details: dict, account: TradingAccount | None) -> str:
    title = ALERT_TITLES.get(topic, "⚠️ " + escape(topic.split(".", 1)[-1].replace("_", " ").capitalize()))
    account_id = details.get("account_id")
    lines = [f"<b>{title}</b>" + (f" · {_account(account, account_id)}" if account_id else "")]
    if topic == "risk.breach":
        rule = str(details.get("rule") or "")
        lines.append(f"Rule: {escape(RULE_WORDS.get(rule, rule) or '-')}")
    message = details.get("message") or details.get("summary") or details.get("reason")
    if details.get("signal_id"):
        lines.append(f"Signal #{escape(str(details['signal_id']))}")
    if details.get("symbol"):
        lines.append(f"Symbol: {escape(str(details['symbol']))}")
    if message:
        lines.append(escape(str(message)))
    return "\n".join(lines)


def circuit_text(status: str, reason: str, account: TradingAccount | None, account_id) -> str:
    title = CIRCUIT_TITLES.get(status, f"Exchange health: {escape(status)}")
    lines = [f"<b>{title}</b> · {_account(account, account_id)}"]
    if reason:
        lines.append(escape(reason))
    return "\n".join(lines)


def text_split(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut between lines where possible; a longer line is
    cut before a tag or an entity it would otherwise split."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = limit
            for opener, closer in (("<", ">"), ("&", ";")):
                start = line.rfind(opener, 0, cut)
                if start > 0 and line.find(closer, start) >= cut:
                    cut = min(cut, start)
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        parts.append(current)
    return parts


def pnl_swing_text(snapshot, *, start, move, minutes: int) -> str:
    share = (abs(move) * 100 / snapshot.equity).quantize(Decimal("0.1"))
    sign = "+" if move > 0 else ""
    return "\n".join(
        [
            f"<b>{'📈' if move > 0 else '📉'} Unusual PnL swing</b> · {_account(snapshot.account)}",
            f"Unrealized PnL {number(start)} → {number(snapshot.unrealized_pnl)} USDT "
            f"({sign}{number(move)}, {share}% of equity {number(snapshot.equity)}) within {minutes} min",
        ]
    )


def kill_switch_text(action: str, account: TradingAccount | None, account_id, *, by: str, reason: str) -> str:
    lines = [f"<b>{SWITCH_TITLES[action]}</b> · {_account(account, account_id)}"]
    if by:
        lines.append(f"By {escape(by)}")
    if reason:
        lines.append(escape(reason))
    return "\n".join(lines)
