"""Texts of the bot core's screens (HTML parse mode): pure functions of plain values, every value escaped."""

from __future__ import annotations

from html import escape

from telegram_bot.access import BotUser


def main_menu(user: BotUser, accounts: list) -> str:
    lines = ["<b>TVBingX</b>", f"Signed in as {escape(_who(user))} ({escape(user.role)})."]
    if not accounts:
        lines.append("No active trading account.")
    for account in accounts:
        lines.append(
            f"• <b>{escape(account.name)}</b>: {escape(account.mode_label)}, "
            f"{'auto' if account.auto_trade else 'manual'}, "
            f"{'trading' if account.trading_enabled else 'STOPPED (kill switch)'}"
        )
    return "\n".join(lines)


def _who(user: BotUser) -> str:
    return f"@{user.username}" if user.username else str(user.telegram_id)
