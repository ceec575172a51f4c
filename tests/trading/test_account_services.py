"""Account set-up and control: default account, webhook secrets, credentials, kill switch."""

import pytest

from tests.factories import TradingAccountFactory
from trading.audit import Actor
from trading.models import AuditEvent, RiskLimits, TradingAccount
from trading.services import (
    account_ensure_default,
    account_rotate_webhook_secret,
    account_set_api_credentials,
    account_set_trading_enabled,
    account_webhook_secret_valid,
)

pytestmark = pytest.mark.django_db


def test_the_default_account_is_created_with_risk_limits(settings, actor):
    settings.TRADING_DEFAULT_USERNAME = "main"
    result = account_ensure_default(actor=actor)
    assert result.created
    assert result.account.name == "main"
    assert result.account.mode == "dry_run"
    assert RiskLimits.objects.filter(account=result.account).exists()


def test_new_accounts_take_the_mode_margin_and_leverage_from_the_environment(settings):
    settings.TRADING_MODE, settings.DEFAULT_MARGIN_MODE, settings.DEFAULT_LEVERAGE = "demo", "cross", 7
    account = TradingAccount.objects.create(name="fresh")
    assert (account.mode, account.default_margin_mode, account.default_leverage) == ("demo", "cross", 7)


def test_ensuring_the_default_account_twice_changes_nothing(actor):
    account_ensure_default(actor=actor)
    events = AuditEvent.objects.count()
    second = account_ensure_default(actor=actor)
    assert not second.created and second.changes == []
    assert AuditEvent.objects.count() == events
    assert TradingAccount.objects.count() == 1


def test_the_default_account_gets_the_environment_credentials_and_webhook_token(settings, actor):
    settings.BINGX_API_KEY, settings.BINGX_API_SECRET = "env-key", "env-secret"
    settings.TRADINGVIEW_WEBHOOK_TOKEN = "tv-token-from-env-0123456789"
    account = account_ensure_default(actor=actor).account
    account.refresh_from_db()
    assert (account.api_key, account.api_secret) == ("env-key", "env-secret")
    assert account_webhook_secret_valid(account=account, secret="tv-token-from-env-0123456789")


def test_an_admin_edit_of_the_default_account_survives_the_next_start(settings, actor):
    account = account_ensure_default(actor=actor).account
    TradingAccount.objects.filter(pk=account.pk).update(auto_trade=True, default_leverage=3)
    account_ensure_default(actor=actor)
    account.refresh_from_db()
    assert (account.auto_trade, account.default_leverage) == (True, 3)


def test_webhook_secrets_are_stored_as_digests_only(actor):
    account = TradingAccountFactory()
    secret = account_rotate_webhook_secret(account=account, actor=actor)
    account.refresh_from_db()
    assert secret not in (account.webhook_secret_hash, account.webhook_secret_previous_hash)
    assert len(account.webhook_secret_hash) == 64


def test_a_rotated_secret_keeps_the_previous_one_valid_until_the_next_rotation(actor):
    account = TradingAccountFactory()
    first = account_rotate_webhook_secret(account=account, actor=actor)
    second = account_rotate_webhook_secret(account=account, actor=actor)
    assert account_webhook_secret_valid(account=account, secret=second)
    assert account_webhook_secret_valid(account=account, secret=first)
    third = account_rotate_webhook_secret(account=account, actor=actor)
    assert account_webhook_secret_valid(account=account, secret=third)
    assert not account_webhook_secret_valid(account=account, secret=first)


def test_an_account_without_a_webhook_secret_accepts_none(actor):
    account = TradingAccountFactory()
    assert not account_webhook_secret_valid(account=account, secret="")
    assert not account_webhook_secret_valid(account=account, secret="anything")


def test_generated_webhook_secrets_are_long_and_distinct(actor):
    account = TradingAccountFactory()
    secrets = {account_rotate_webhook_secret(account=account, actor=actor) for _ in range(5)}
    assert len(secrets) == 5
    assert all(len(secret) >= 40 for secret in secrets)


def test_setting_credentials_audits_the_change_but_not_the_values(actor):
    account = TradingAccountFactory()
    account_set_api_credentials(account=account, api_key="the-key", api_secret="the-secret", actor=actor)
    event = AuditEvent.objects.get(action="tradingaccount.credentials")
    assert event.before["api_secret"] == "<empty>"
    assert event.after["api_secret"] == "<set>"
    assert "the-secret" not in str(event.after) and "the-key" not in str(event.after)


def test_the_kill_switch_is_audited_with_who_flipped_it():
    account = TradingAccountFactory(trading_enabled=True)
    assert account_set_trading_enabled(
        account=account, enabled=False, actor=Actor.telegram(7, "bob"), reason="/botstop"
    )
    account.refresh_from_db()
    assert account.trading_enabled is False
    event = AuditEvent.objects.get(action="tradingaccount.kill_switch")
    assert (event.actor_type, event.actor_label, event.reason) == ("telegram", "bob", "/botstop")


def test_flipping_the_kill_switch_to_its_current_position_is_a_no_op(actor):
    account = TradingAccountFactory(trading_enabled=True)
    assert account_set_trading_enabled(account=account, enabled=True, actor=actor) is False
    assert not AuditEvent.objects.exists()
