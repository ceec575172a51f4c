"""Callback data for inline buttons: ``ns:action[:arg...]``, ASCII, 1..64 bytes, DB ids never prices.

Telegram refuses a button whose data is outside 1..64 bytes (``BUTTON_DATA_INVALID``) and python-telegram-bot
does not check it, so every button's data is built here and fails at once in our code instead.
"""

from __future__ import annotations

MAX_CALLBACK_BYTES = 64


def cb(*parts: object) -> str:
    """Join ``parts`` with ``:``; ValueError when the result is not ASCII or not 1..64 bytes."""
    data = ":".join(str(part) for part in parts)
    if not data.isascii():
        raise ValueError(f"callback data must be ASCII: {data!r}")
    if not 1 <= len(data.encode()) <= MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data must be 1..{MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data
