"""Model fields for secrets at rest.

Values are encrypted with Fernet under FIELD_ENCRYPTION_KEYS (never SECRET_KEY, so rotating the
Django key does not destroy exchange credentials). The first key encrypts; every key decrypts, so a
new key can be prepended and old rows re-encrypted later with `manage.py rotate_field_keys`.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

TOKEN_PREFIX = "fernet:"


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty; secrets cannot be encrypted.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def field_fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_value(plaintext: str) -> str:
    return TOKEN_PREFIX + field_fernet().encrypt(plaintext.encode()).decode()


def decrypt_value(stored: str) -> str:
    if not stored.startswith(TOKEN_PREFIX):
        raise ImproperlyConfigured("An encrypted field holds a value that was never encrypted.")
    try:
        return field_fernet().decrypt(stored[len(TOKEN_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
            "the key it was encrypted with has been removed."
        ) from None


def rotate_value(stored: str) -> str:
    """Re-encrypt a stored token under the first (newest) key."""
    if not stored.startswith(TOKEN_PREFIX):
        raise ImproperlyConfigured("An encrypted field holds a value that was never encrypted.")
    try:
        token = field_fernet().rotate(stored[len(TOKEN_PREFIX) :].encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS."
        ) from None
    return TOKEN_PREFIX + token.decode()


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; the empty string stays empty (means "not set")."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_value(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_value(value)
