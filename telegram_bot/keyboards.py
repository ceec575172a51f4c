"""Inline keyboards of the bot core's screens: pure functions of plain values (no I/O, no ORM)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from telegram_bot.callbacks import cb

HOME = InlineKeyboardButton("« Menu", callback_data=cb("m", "home"))


def main_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Auto-Trade", callback_data=cb("m", "auto")),
                InlineKeyboardButton("Manual", callback_data=cb("m", "man")),
            ],
            [
                InlineKeyboardButton("Margin & Leverage", callback_data=cb("lev", "go")),
                InlineKeyboardButton("Reports", callback_data=cb("m", "rep")),
            ],
            [
                InlineKeyboardButton("Status", callback_data=cb("m", "st")),
                InlineKeyboardButton("Help", callback_data=cb("m", "help")),
            ],
        ]
    )


def back_home() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[HOME]])
