"""Sending a screen: a new message for a command, the same message edited for a button press.

Telegram answers an edit that changes nothing with "message is not modified"; for a Refresh that is success.
A text over Telegram's 4096 characters is split at line ends (a new message) or cut with a note (an edit).
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import MessageLimit
from telegram.error import BadRequest

MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH  # 4096
CUT_NOTE = "\n… (cut: too long for one message)"


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` characters, broken after a newline where possible. HTML tags must not span
    lines in texts that may be split (ours never do)."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut + 1 if cut > 0 else limit
        pieces.append(text[:cut].rstrip("\n"))
        text = text[cut:]
    if text.strip() or not pieces:
        pieces.append(text)
    return pieces


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return split_text(text, limit - len(CUT_NOTE))[0] + CUT_NOTE


def is_not_modified(error: BadRequest) -> bool:
    return "message is not modified" in str(error).lower()


async def show(update: Update, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the pressed button's message, or reply to a command; the keyboard goes with the last piece."""
    query = update.callback_query
    if query is not None and query.message is not None:
        try:
            await query.edit_message_text(truncate(text), reply_markup=reply_markup)
        except BadRequest as error:
            if not is_not_modified(error):
                raise
        return
    pieces = split_text(text)
    for index, piece in enumerate(pieces):
        markup = reply_markup if index == len(pieces) - 1 else None
        await update.effective_message.reply_text(piece, reply_markup=markup)
