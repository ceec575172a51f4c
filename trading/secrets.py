"""Webhook secrets: generated, stored as digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def webhook_secret_generate() -> str:
    # 32 random bytes: far beyond guessing, short enough to paste into a TradingView alert.
    return secrets.token_urlsafe(32)


def webhook_secret_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def webhook_secret_matches(raw: str, *digests: str) -> bool:
    """True if ``raw`` matches any non-empty digest; every digest is compared, in constant time."""
    candidate = webhook_secret_digest(raw)
    matched = False
    for digest in digests:
        if digest:
            matched |= hmac.compare_digest(candidate, digest)
    return matched
