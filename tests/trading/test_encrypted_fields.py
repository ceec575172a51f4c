"""Exchange credentials are encrypted at rest with FIELD_ENCRYPTION_KEYS, and the keys can rotate."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from tests.factories import TradingAccountFactory
from trading.audit import Actor
from trading.models import AuditEvent, TradingAccount
from trading.services import encryption_rotate_keys
from tvbingx.fields import TOKEN_PREFIX

pytestmark = pytest.mark.django_db

OLD_KEY = "sBvtYpO0m3wTH5wi-9R9m8eq0ZzDW9S6rOmZfYi3O8s="  # the suite's key (tests/settings.py)
NEW_KEY = Fernet.generate_key().decode()


def stored_secret(account: TradingAccount) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_secret FROM trading_tradingaccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def decrypt_with(key: str, stored: str) -> str:
    return Fernet(key.encode()).decrypt(stored[len(TOKEN_PREFIX) :].encode()).decode()


def test_the_stored_value_is_not_the_plaintext():
    account = TradingAccountFactory(api_secret="very-secret-api-secret")
    stored = stored_secret(account)
    assert "very-secret-api-secret" not in stored
    assert stored.startswith(TOKEN_PREFIX)


def test_the_model_reads_back_the_plaintext():
    account = TradingAccountFactory(api_key="key-1", api_secret="secret-1")
    reloaded = TradingAccount.objects.get(pk=account.pk)
    assert (reloaded.api_key, reloaded.api_secret) == ("key-1", "secret-1")


def test_an_empty_secret_stays_empty_and_means_not_set():
    account = TradingAccountFactory(api_key="", api_secret="")
    assert stored_secret(account) == ""
    assert TradingAccount.objects.get(pk=account.pk).has_api_credentials is False


def test_the_same_secret_encrypts_differently_each_time():
    first = TradingAccountFactory(api_secret="same")
    second = TradingAccountFactory(api_secret="same")
    assert stored_secret(first) != stored_secret(second)


def test_encryption_does_not_use_secret_key(settings):
    account = TradingAccountFactory(api_secret="s3cret")
    settings.SECRET_KEY = "a-completely-different-django-secret-key-0123456789"
    assert TradingAccount.objects.get(pk=account.pk).api_secret == "s3cret"


def test_a_new_first_key_still_reads_rows_written_with_the_old_key(settings):
    account = TradingAccountFactory(api_secret="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert TradingAccount.objects.get(pk=account.pk).api_secret == "s3cret"


def test_rotation_re_encrypts_every_secret_under_the_newest_key(settings):
    account = TradingAccountFactory(api_key="k", api_secret="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    rewritten = encryption_rotate_keys(actor=Actor.system("test"))

    assert rewritten == 2
    assert decrypt_with(NEW_KEY, stored_secret(account)) == "s3cret"
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]  # the old key can now be dropped
    assert TradingAccount.objects.get(pk=account.pk).api_secret == "s3cret"


def test_rotation_is_audited_without_the_secrets(settings):
    TradingAccountFactory(api_secret="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    encryption_rotate_keys(actor=Actor.system("test"))
    event = AuditEvent.objects.get(action="encryption.keys_rotated")
    assert event.after == {"rows": 1}
    assert "s3cret" not in str(event.before) + str(event.after)


def test_dropping_a_key_before_rotating_fails_loudly(settings):
    account = TradingAccountFactory(api_secret="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS"):
        TradingAccount.objects.get(pk=account.pk)
