"""Inline keyboards of the bot core's screens: pure functions of plain values (no I/O, no ORM).

Callback data (see callbacks.cb): ``m:<screen>`` navigation; ``at:<account_id>:1|0`` sets auto-trade to that
value; ``ks:1`` switches the kill switch on (trading stopped), ``ks:0`` off; ``st:r`` refreshes Status;
``rep:d|w`` shows a report; ``cl:<position_id>`` asks to close, ``cl:ok:<position_id>`` closes, ``cl:x`` cancels.
"""

from __future__ import annotations

from html import unescape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from telegram_bot.callbacks import cb
from telegram_bot.texts import position_short

HOME = InlineKeyboardButton("« Menu", callback_data=cb("m", "home"))


def button(text: str, *parts: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=cb(*parts))


def main_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [button("Auto-Trade", "m", "auto"), button("Manual", "m", "man")],
            [button("Margin & Leverage", "lev", "go"), button("Reports", "m", "rep")],
            [button("Status", "m", "st"), button("Help", "m", "help")],
        ]
    )


def back_home() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[HOME]])


def auto_trade(accounts: list, *, editable: bool) -> InlineKeyboardMarkup:
    rows = []
    if editable:
        for account in accounts:
            target = 0 if account.auto_trade else 1
            label = f"{account.name}: switch auto {'OFF' if account.auto_trade else 'ON'}"
            rows.append([button(label, "at", account.pk, target)])
        if any(account.trading_enabled for account in accounts):
            rows.append([button("⛔ Stop all trading (kill switch)", "ks", 1)])
        if any(not account.trading_enabled for account in accounts):
            rows.append([button("▶️ Resume trading", "ks", 0)])
    rows.append([button("Refresh", "m", "auto"), HOME])
    return InlineKeyboardMarkup(rows)


def waiting_signals(signals: list) -> InlineKeyboardMarkup:
    rows = [[button(f"Open #{s.pk} {s.symbol} {s.action}", "sig", "v", s.pk)] for s in signals]
    rows.append([button("Refresh", "m", "man"), HOME])
    return InlineKeyboardMarkup(rows)


def status() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button("Refresh", "st", "r"), HOME]])


def report(period: str) -> InlineKeyboardMarkup:
    other = [button("Last 7 days", "rep", "w")] if period == "d" else [button("Today", "rep", "d")]
    return InlineKeyboardMarkup([[*other, button("Refresh", "rep", period)], [HOME]])


def positions(items: list, *, can_close: bool) -> InlineKeyboardMarkup:
    rows = []
    if can_close:
        rows = [[button(f"Close {_plain(position_short(p))}", "cl", p.pk)] for p in items]
    rows.append([HOME])
    return InlineKeyboardMarkup(rows)


def close_confirm(position_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button("✅ Yes, close it", "cl", "ok", position_id), button("Cancel", "cl", "x")]])


def _plain(text: str) -> str:
    """Button labels are plain text: undo the HTML escaping of a text fragment."""
    return unescape(text)
