"""Texts of the bot core's screens (HTML parse mode): pure functions of plain values, every value escaped.

No HTML element spans a line break, so a long text can be split at any line (replies.split_text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from telegram_bot.access import BotUser

# What the client lists when "/" is typed (setMyCommands at start-up) and what Help shows.
COMMANDS = (
    ("start", "Main menu"),
    ("status", "Mode, balances, positions, orders, health"),
    ("positions", "Open positions, with a Close button each"),
    ("close", "Close a position: /close SYMBOL"),
    ("report", "Daily and weekly PnL, volume and hit rate"),
    ("auto", "Auto-trade on or off: /auto on|off [ACCOUNT]"),
    ("botstop", "Kill switch: no new entries (exits still allowed)"),
    ("botstart", "Allow new entries again"),
    ("help", "Every command and the FAQ"),
)

MAX_ORDERS_SHOWN = 10
MODE_WORDS = {"dry_run": "dry run", "demo": "demo", "live": "LIVE"}
SIDE_WORDS = {"long": "LONG", "short": "SHORT"}


def number(value: Decimal | str | None) -> str:
    """A Decimal as plain digits without trailing zeros; None as a dash."""
    if value is None or value == "":
        return "–"
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money(value: Decimal) -> str:
    return f"{Decimal(value):+,.2f}"


def clock(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S UTC") if value else "–"


def who(user: BotUser) -> str:
    return f"@{user.username}" if user.username else str(user.telegram_id)


def mode_word(mode: str) -> str:
    return MODE_WORDS.get(mode, escape(mode))


def account_state(account) -> str:
    return (
        f"{mode_word(account.mode)} · {'auto' if account.auto_trade else 'manual'} · "
        f"{'trading' if account.trading_enabled else '⛔ STOPPED (kill switch)'}"
    )


# --- main menu ---------------------------------------------------------------------------------------


def main_menu(user: BotUser, accounts: list) -> str:
    lines = ["<b>TVBingX</b>", f"Signed in as {escape(who(user))} ({escape(user.role)})."]
    if not accounts:
        lines.append("No active trading account.")
    lines += [f"• <b>{escape(account.name)}</b>: {account_state(account)}" for account in accounts]
    return "\n".join(lines)


# --- Auto-Trade -------------------------------------------------------------------------------------


def auto_trade(accounts: list, *, editable: bool) -> str:
    lines = [
        "<b>Auto-Trade</b>",
        "Auto on: valid signals are executed at once. Off (manual): each waits for approval here.",
        "Kill switch: no new entries on any account; closing positions is still allowed.",
        "",
    ]
    if not accounts:
        lines.append("No active trading account.")
    lines += [f"• <b>{escape(account.name)}</b>: {account_state(account)}" for account in accounts]
    if not editable:
        lines += ["", "Only admins can change these."]
    return "\n".join(lines)


def changed(what: str, names: list[str], *, unchanged_note: str) -> str:
    if not names:
        return unchanged_note
    return f"{what}: {escape(', '.join(names))}."


# --- Manual -----------------------------------------------------------------------------------------


def waiting_signals(signals: list) -> str:
    if not signals:
        return "<b>Manual</b>\nNo signal is waiting for confirmation."
    lines = ["<b>Manual</b>: signals waiting for confirmation (tap one to open its card)"]
    for signal in signals:
        expires = f" · expires {clock(signal.expires_at)}" if signal.expires_at else ""
        lines.append(
            f"#{signal.pk} {escape(signal.symbol)} {escape(signal.action)} on {escape(signal.account)}"
            f" · received {clock(signal.received_at)}{expires}"
        )
    return "\n".join(lines)


# --- Status -----------------------------------------------------------------------------------------


def status(view: dict) -> str:
    worker = view["worker"]
    detail = f" ({escape(worker['detail'])})" if worker["detail"] else ""
    lines = [f"<b>Status</b> · worker: {escape(worker['status'])}{detail}"]
    if not view["accounts"]:
        lines.append("No active trading account.")
    for account in view["accounts"]:
        lines += ["", *_account_status(account)]
    lines += ["", f"Updated {clock(view['now'])}"]
    return "\n".join(lines)


def _account_status(account: dict) -> list[str]:
    mode = "auto" if account["auto_trade"] else "manual"
    stopped = "" if account["trading_enabled"] else " · ⛔ STOPPED (kill switch)"
    lines = [f"<b>{escape(account['name'])}</b> — {mode_word(account['mode'])} · {mode}{stopped}"]
    balance = account["balance"]
    if balance:
        lines.append(
            f"Equity {number(balance['equity'])} {escape(balance['asset'])} · available {number(balance['available'])}"
        )
    else:
        lines.append("Equity: no balance recorded yet")
    lines.append(f"Today: {_pnl_line(account['today'])}")
    health = account["health"]
    lines.append(
        f"Exchange: {escape(health['exchange']['status'])} · stream: {escape(health['stream']['status'])}"
        + (f" ({escape(health['exchange']['detail'])})" if health["exchange"]["status"] == "degraded" else "")
    )
    positions = account["positions"]
    lines.append(f"Positions: {len(positions) or 'none'}")
    lines += [_position_line(position) for position in positions]
    orders = account["open_orders"]
    lines.append(f"Open orders: {len(orders) or 'none'}")
    lines += [_order_line(order) for order in orders[:MAX_ORDERS_SHOWN]]
    if len(orders) > MAX_ORDERS_SHOWN:
        lines.append(f"… and {len(orders) - MAX_ORDERS_SHOWN} more (see the admin dashboard)")
    return lines


def _pnl_line(summary) -> str:
    hit = (
        f"hit rate {summary.hit_rate_pct}% ({summary.winning_positions}/{summary.closed_positions})"
        if summary.hit_rate_pct is not None
        else "no position closed"
    )
    return f"net PnL {money(summary.net_pnl)} USDT · {hit}"


def _position_line(position: dict) -> str:
    roe = f" ({number(position['roe_pct'])}%)" if position["roe_pct"] is not None else ""
    take_profits = ", ".join(number(price) for price in position["take_profits"]) or "–"
    return (
        f"• {escape(position['symbol'])} {SIDE_WORDS.get(position['side'], escape(position['side']))} "
        f"{number(position['qty'])} · entry {number(position['entry_price'])} · mark {number(position['mark_price'])}"
        f" · uPnL {number(position['unrealized_pnl'])}{roe} · {position['leverage']}x "
        f"{escape(position['margin_mode'])} · SL {number(position['stop_loss'])} · TP {take_profits}"
        f" · liq {number(position['liquidation_price'])}"
    )


def _order_line(order: dict) -> str:
    price = order["price"] or order["trigger_price"]
    return (
        f"• {escape(order['symbol'])} {escape(order['side'])} {escape(order['purpose_label'].lower())} "
        f"{number(order['qty'])}" + (f" @ {number(price)}" if price else "") + f" · {escape(order['status_label'])}"
    )


# --- Reports ----------------------------------------------------------------------------------------

FILES_NOTE = "CSV and PDF files come with the reports feature; it is not available yet."


def report(period) -> str:
    lines = [
        f"<b>Report: {escape(period.title)}</b>",
        f"{period.since.astimezone(UTC):%Y-%m-%d %H:%M} – {period.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
    ]
    if not period.accounts:
        lines.append("No active trading account.")
    for account, summary in period.accounts:
        lines += [
            "",
            f"<b>{escape(account.name)}</b> ({mode_word(account.mode)})",
            f"Net PnL {money(summary.net_pnl)} USDT (realized {money(summary.realized_pnl)}, "
            f"fees {number(summary.fees)})",
            f"Volume {Decimal(summary.volume):,.2f} USDT in {summary.fills} fill(s)",
            "Hit rate: "
            + (
                f"{summary.hit_rate_pct}% ({summary.winning_positions} of {summary.closed_positions} closed "
                "positions in profit)"
                if summary.hit_rate_pct is not None
                else "no position closed"
            ),
        ]
    lines += ["", FILES_NOTE]
    return "\n".join(lines)


# --- Positions and closing --------------------------------------------------------------------------


def position_short(position) -> str:
    return (
        f"{escape(position.symbol)} {SIDE_WORDS.get(position.side, escape(position.side))} {number(position.qty)} "
        f"on {escape(position.account)}"
    )


def positions(items: list, *, can_close: bool) -> str:
    if not items:
        return "<b>Positions</b>\nNo open position."
    lines = ["<b>Positions</b>"]
    for position in items:
        lines.append(
            f"• {position_short(position)} ({mode_word(position.mode)}) · entry {number(position.entry_price)}"
            f" · mark {number(position.mark_price)} · uPnL {number(position.unrealized_pnl)} · {position.leverage}x"
        )
    if can_close:
        lines.append("Tap a position to close it (you confirm first).")
    return "\n".join(lines)


def close_confirm(position) -> str:
    return (
        f"Close <b>{position_short(position)}</b> ({mode_word(position.mode)}) at market now?\n"
        f"Entry {number(position.entry_price)} · mark {number(position.mark_price)} · "
        f"uPnL {number(position.unrealized_pnl)}"
    )


def close_done(position, summary: str) -> str:
    return f"✅ Closed {position_short(position)}: {escape(summary)}"


# --- Help -------------------------------------------------------------------------------------------


def help_text(commands) -> str:
    lines = ["<b>Commands</b>"]
    lines += [f"/{name} — {escape(text)}" for name, text in commands]
    lines += [
        "",
        "<b>FAQ</b>",
        "<b>Who can do what?</b> Viewers see; traders also approve signals and close positions; "
        "admins also change auto-trade, the kill switch and margin &amp; leverage.",
        "<b>What does the kill switch do?</b> /botstop refuses every new entry on every account until /botstart; "
        "closing positions still works. It survives restarts.",
        "<b>Auto or manual?</b> Auto executes each valid signal at once; manual sends it here as a card to "
        "approve, edit or reject before it expires.",
        "<b>Why did the bot ignore my command?</b> Commands older than 60 s (sent while the bot was down) are "
        "dropped on purpose.",
        "<b>Are the numbers live?</b> Status shows what the platform last recorded; tap Refresh for the latest.",
    ]
    return "\n".join(lines)
