"""The back-office for accounts, limits, symbols and exchange data: what is particular to trading.

API credentials and the webhook secret are write-only: typed in, stored encrypted (or as a digest),
never rendered back. Every edit of an account, its risk limits, symbol profiles and take-profit levels
is audited; the account actions rotate the webhook secret and stop or resume trading. The pages every
registered model has (and that orders, fills, positions, balances and audit events are read-only
evidence) are tested in tests/tvbingx/test_admin_site.py.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from tests.admin_helpers import (
    admin_url,
    audit_events,
    form_errors,
    raw_column,
    run_action,
    submit_add_form,
    submit_change_form,
)
from tests.factories import RiskLimitsFactory, SymbolProfileFactory, TakeProfitLevelFactory, TradingAccountFactory
from trading.audit import Actor
from trading.models import AuditEvent, RiskLimits, SymbolProfile, TakeProfitLevel, TradingAccount
from trading.services import account_rotate_webhook_secret, account_set_api_credentials, account_webhook_secret_valid

pytestmark = pytest.mark.django_db

API_KEY = "ak-plain-7f3e9a1c2b4d5e6f"
API_SECRET = "as-plain-0c9b8a7d6e5f4a3b"
WEBHOOK_SECRET = "wh-plain-1234567890abcdef"


# --- trading accounts: write-only secrets ------------------------------------------------------


NEW_ACCOUNT_POST = {  # the add form as a browser sends it: every field, the secrets typed in
    "name": "main",
    "exchange": "bingx",
    "mode": "dry_run",
    "subaccount_id": "",
    "is_active": "on",
    "trading_enabled": "on",
    "position_mode": "one_way",
    "default_margin_mode": "isolated",
    "default_leverage": "5",
    "new_api_key": API_KEY,
    "new_api_secret": API_SECRET,
    "new_webhook_secret": WEBHOOK_SECRET,
}


@pytest.fixture
def added_account(staff_client) -> TradingAccount:
    """An account created through the add form with an API key pair and a webhook secret."""
    response = staff_client.post(admin_url(TradingAccount, "add"), NEW_ACCOUNT_POST)
    assert response.status_code == 302, form_errors(response)
    return TradingAccount.objects.get(name="main")


def secret_texts(account: TradingAccount) -> list[str]:
    """The plaintexts and everything stored for them: none may ever appear on a page."""
    return [
        API_KEY,
        API_SECRET,
        WEBHOOK_SECRET,
        raw_column(TradingAccount, account.pk, "api_key"),
        raw_column(TradingAccount, account.pk, "api_secret"),
        account.webhook_secret_hash,
    ]


def test_it_creates_an_account_from_its_rendered_add_form(staff_client):
    response = submit_add_form(
        staff_client, TradingAccount, name="second", new_api_key=API_KEY, new_api_secret=API_SECRET
    )

    assert response.status_code == 302, form_errors(response)
    account = TradingAccount.objects.get(name="second")
    assert (account.api_key, account.api_secret) == (API_KEY, API_SECRET)
    assert (account.trading_enabled, account.is_active, account.auto_trade) == (True, True, False)


def test_it_stores_the_api_key_pair_encrypted(added_account):
    stored_key = raw_column(TradingAccount, added_account.pk, "api_key")
    stored_secret = raw_column(TradingAccount, added_account.pk, "api_secret")

    assert (added_account.api_key, added_account.api_secret) == (API_KEY, API_SECRET)
    assert stored_key.startswith("fernet:") and API_KEY not in stored_key
    assert stored_secret.startswith("fernet:") and API_SECRET not in stored_secret


def test_it_stores_the_webhook_secret_only_as_a_digest(added_account):
    stored = raw_column(TradingAccount, added_account.pk, "webhook_secret_hash")

    assert account_webhook_secret_valid(account=added_account, secret=WEBHOOK_SECRET)
    assert not account_webhook_secret_valid(account=added_account, secret="wrong-secret-0123456789")
    assert stored and WEBHOOK_SECRET not in stored


@pytest.mark.parametrize("page", ["changelist", "change", "history"])
def test_it_never_renders_an_accounts_secrets(staff_client, added_account, page):
    url = admin_url(TradingAccount, page) if page == "changelist" else admin_url(TradingAccount, page, added_account.pk)

    response = staff_client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    for text in secret_texts(added_account):
        assert text not in html


def test_it_never_renders_an_accounts_secrets_in_the_audit_trail(staff_client, added_account):
    pages = [admin_url(AuditEvent, "changelist")]
    pages += [admin_url(AuditEvent, "change", event.pk) for event in AuditEvent.objects.all()]

    for url in pages:
        html = staff_client.get(url).content.decode()
        for text in secret_texts(added_account):
            assert text not in html, url


def test_it_keeps_the_stored_secrets_when_an_edit_leaves_them_empty(staff_client, added_account):
    response = submit_change_form(staff_client, TradingAccount, added_account, subaccount_id="sub-2")

    assert response.status_code == 302, form_errors(response)
    added_account.refresh_from_db()
    assert added_account.subaccount_id == "sub-2"
    assert (added_account.api_key, added_account.api_secret) == (API_KEY, API_SECRET)
    assert account_webhook_secret_valid(account=added_account, secret=WEBHOOK_SECRET)


def test_it_rejects_an_api_key_without_its_secret_and_does_not_echo_it(staff_client, added_account):
    response = submit_change_form(staff_client, TradingAccount, added_account, new_api_key="ak-typed-987654321")

    assert response.status_code == 200
    assert "Enter the API key and the API secret together." in response.context["adminform"].form.non_field_errors()
    assert "ak-typed-987654321" not in response.content.decode()
    added_account.refresh_from_db()
    assert (added_account.api_key, added_account.api_secret) == (API_KEY, API_SECRET)


def test_it_rejects_new_credentials_together_with_clearing_them(staff_client, added_account):
    response = submit_change_form(
        staff_client,
        TradingAccount,
        added_account,
        new_api_key="ak-other-123456",
        new_api_secret="as-other-123456",
        clear_api_credentials="on",
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    added_account.refresh_from_db()
    assert (added_account.api_key, added_account.api_secret) == (API_KEY, API_SECRET)


def test_it_replaces_the_api_key_pair(staff_client, added_account):
    response = submit_change_form(
        staff_client, TradingAccount, added_account, new_api_key="ak-second-1111", new_api_secret="as-second-2222"
    )

    assert response.status_code == 302, form_errors(response)
    added_account.refresh_from_db()
    assert (added_account.api_key, added_account.api_secret) == ("ak-second-1111", "as-second-2222")


def test_it_clears_the_api_key_pair_on_request(staff_client, added_account):
    response = submit_change_form(staff_client, TradingAccount, added_account, clear_api_credentials="on")

    assert response.status_code == 302, form_errors(response)
    added_account.refresh_from_db()
    assert (added_account.api_key, added_account.api_secret) == ("", "")
    assert raw_column(TradingAccount, added_account.pk, "api_key") == ""


def test_it_keeps_the_previous_webhook_secret_valid_after_a_new_one_is_entered(staff_client, added_account):
    response = submit_change_form(
        staff_client, TradingAccount, added_account, new_webhook_secret="wh-second-abcdefghijklmnop"
    )

    assert response.status_code == 302, form_errors(response)
    added_account.refresh_from_db()
    assert account_webhook_secret_valid(account=added_account, secret="wh-second-abcdefghijklmnop")
    assert account_webhook_secret_valid(account=added_account, secret=WEBHOOK_SECRET)


def test_it_rejects_a_webhook_secret_shorter_than_16_characters(staff_client, added_account):
    response = submit_change_form(staff_client, TradingAccount, added_account, new_webhook_secret="short")

    assert response.status_code == 200
    assert "new_webhook_secret" in response.context["adminform"].form.errors
    added_account.refresh_from_db()
    assert not account_webhook_secret_valid(account=added_account, secret="short")


# --- trading accounts: audited edits -----------------------------------------------------------


def test_it_audits_an_account_created_in_the_admin(staff_client, added_account):
    [event] = audit_events("tradingaccount.created", added_account)

    assert (event.actor_type, event.actor_id) == ("admin", str(staff_client.user.pk))
    assert event.actor_label == staff_client.user.username
    assert event.before == {}
    assert event.after["name"] == "main"


def test_it_audits_that_the_api_key_pair_was_set_without_its_values(staff_client, added_account):
    [event] = audit_events("tradingaccount.credentials", added_account)

    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.before["api_key"], event.before["api_secret"]) == ("<empty>", "<empty>")
    assert (event.after["api_key"], event.after["api_secret"]) == ("<set>", "<set>")


def test_it_audits_the_webhook_secret_installed_in_the_admin(staff_client, added_account):
    [event] = audit_events("tradingaccount.webhook_secret_rotated", added_account)

    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)


def test_it_audits_an_account_edit_with_before_and_after(staff_client, added_account):
    submit_change_form(staff_client, TradingAccount, added_account, subaccount_id="sub-2", auto_trade="on")

    [event] = audit_events("tradingaccount.changed", added_account)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.before["subaccount_id"], event.after["subaccount_id"]) == ("", "sub-2")
    assert (event.before["auto_trade"], event.after["auto_trade"]) == (False, True)


def test_it_audits_clearing_the_api_key_pair(staff_client, added_account):
    submit_change_form(staff_client, TradingAccount, added_account, clear_api_credentials="on")

    last = audit_events("tradingaccount.credentials", added_account)[-1]
    assert (last.before["api_key"], last.after["api_key"]) == ("<set>", "<empty>")
    assert (last.before["api_secret"], last.after["api_secret"]) == ("<set>", "<empty>")


def test_it_never_writes_a_plaintext_secret_to_the_audit_trail(staff_client, added_account):
    submit_change_form(
        staff_client, TradingAccount, added_account, new_api_key="ak-2-abcdef", new_api_secret="as-2-abcdef"
    )

    for event in AuditEvent.objects.all():
        text = json.dumps([event.before, event.after, event.reason, event.object_repr])
        for secret in (API_KEY, API_SECRET, WEBHOOK_SECRET, "ak-2-abcdef", "as-2-abcdef"):
            assert secret not in text


def test_it_writes_no_empty_changed_row_when_only_the_credentials_change(staff_client, added_account):
    submit_change_form(staff_client, TradingAccount, added_account, new_api_key="ak-3-abc", new_api_secret="as-3-abc")

    assert audit_events("tradingaccount.changed", added_account) == []
    assert len(audit_events("tradingaccount.credentials", added_account)) == 2  # at creation, then this edit


def test_it_writes_no_audit_row_for_a_rejected_edit(staff_client, added_account):
    count = AuditEvent.objects.count()

    submit_change_form(staff_client, TradingAccount, added_account, subaccount_id="sub-9", new_api_key="ak-alone-1")

    assert AuditEvent.objects.count() == count


# --- trading accounts: actions -----------------------------------------------------------------


@pytest.fixture
def account_with_webhook_secret() -> TradingAccount:
    account = TradingAccountFactory()
    account_rotate_webhook_secret(account=account, actor=Actor.system("test"), new_secret=WEBHOOK_SECRET)
    return account


def rotated_secret(response) -> str:
    [secret] = re.findall(r'<code class="webhook-secret">(.+?)</code>', response.content.decode())
    return secret


def test_it_keeps_a_rotated_webhook_secret_out_of_cookies_and_caches(staff_client, account_with_webhook_secret):
    response = run_action(staff_client, TradingAccount, "rotate_webhook_secret", [account_with_webhook_secret])
    new_secret = rotated_secret(response)

    assert all(new_secret not in morsel.value for morsel in response.cookies.values())
    assert "no-store" in response["Cache-Control"]


def test_it_shows_a_rotated_webhook_secret_once(staff_client, account_with_webhook_secret):
    response = run_action(
        staff_client, TradingAccount, "rotate_webhook_secret", [account_with_webhook_secret], follow=True
    )
    new_secret = rotated_secret(response)
    next_page = staff_client.get(admin_url(TradingAccount, "changelist"))

    account_with_webhook_secret.refresh_from_db()
    assert new_secret != WEBHOOK_SECRET
    assert account_webhook_secret_valid(account=account_with_webhook_secret, secret=new_secret)
    assert new_secret not in next_page.content.decode()


def test_it_keeps_the_previous_webhook_secret_valid_after_rotation(staff_client, account_with_webhook_secret):
    run_action(staff_client, TradingAccount, "rotate_webhook_secret", [account_with_webhook_secret])

    account_with_webhook_secret.refresh_from_db()
    assert account_webhook_secret_valid(account=account_with_webhook_secret, secret=WEBHOOK_SECRET)


def test_it_audits_a_webhook_secret_rotation_without_the_secret(staff_client, account_with_webhook_secret):
    response = run_action(
        staff_client, TradingAccount, "rotate_webhook_secret", [account_with_webhook_secret], follow=True
    )
    new_secret = rotated_secret(response)

    event = audit_events("tradingaccount.webhook_secret_rotated", account_with_webhook_secret)[-1]
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert new_secret not in json.dumps([event.before, event.after, event.reason])


def test_it_stops_trading_with_the_kill_switch_action_and_audits_it(staff_client):
    account = TradingAccountFactory(trading_enabled=True)

    run_action(staff_client, TradingAccount, "stop_trading", [account])

    account.refresh_from_db()
    assert account.trading_enabled is False
    [event] = audit_events("tradingaccount.kill_switch", account)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.before, event.after) == ({"trading_enabled": True}, {"trading_enabled": False})


def test_it_resumes_trading_with_the_resume_action(staff_client):
    account = TradingAccountFactory(trading_enabled=False)

    run_action(staff_client, TradingAccount, "resume_trading", [account])

    account.refresh_from_db()
    assert account.trading_enabled is True
    assert audit_events("tradingaccount.trading_enabled", account)


def test_it_shows_whether_an_account_has_credentials_in_the_changelist(staff_client):
    with_keys = TradingAccountFactory(name="with-keys")
    account_set_api_credentials(account=with_keys, api_key=API_KEY, api_secret=API_SECRET, actor=Actor.system())
    TradingAccountFactory(name="without-keys")

    response = staff_client.get(admin_url(TradingAccount, "changelist"))

    html = response.content.decode()
    assert ">set<" in html and ">not set<" in html
    assert API_KEY not in html and API_SECRET not in html


# --- risk limits ------------------------------------------------------------------------------


def test_it_saves_a_risk_limits_edit(staff_client):
    limits = RiskLimitsFactory(max_open_positions=5)

    response = submit_change_form(staff_client, RiskLimits, limits, max_open_positions=2)

    assert response.status_code == 302, form_errors(response)
    limits.refresh_from_db()
    assert limits.max_open_positions == 2


def test_it_audits_a_risk_limits_edit_with_before_and_after(staff_client):
    limits = RiskLimitsFactory(max_open_positions=5)

    submit_change_form(staff_client, RiskLimits, limits, max_open_positions=2, max_daily_loss_usdt="150")

    [event] = audit_events("risklimits.changed", limits)
    assert (event.actor_type, event.actor_id) == ("admin", str(staff_client.user.pk))
    assert event.actor_label == staff_client.user.username
    assert (event.before["max_open_positions"], event.after["max_open_positions"]) == (5, 2)
    assert event.before["max_daily_loss_usdt"] is None
    assert Decimal(event.after["max_daily_loss_usdt"]) == Decimal("150")


def test_it_audits_risk_limits_created_in_the_admin(staff_client):
    account = TradingAccountFactory()

    response = submit_add_form(staff_client, RiskLimits, account=account.pk)

    assert response.status_code == 302, form_errors(response)
    [event] = audit_events("risklimits.created", account.risk_limits)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert event.after["account"] == account.pk


def test_it_rejects_trading_hours_without_an_end_and_audits_nothing(staff_client):
    limits = RiskLimitsFactory()

    response = submit_change_form(staff_client, RiskLimits, limits, trading_hours_start="08:00")

    assert response.status_code == 200
    assert "trading_hours_end" in response.context["adminform"].form.errors
    assert audit_events("risklimits.changed", limits) == []


# --- symbol profiles and their take-profit levels ----------------------------------------------


def test_it_audits_a_symbol_profile_edit_with_before_and_after(staff_client):
    profile = SymbolProfileFactory(leverage=5, max_leverage=20)

    response = submit_change_form(staff_client, SymbolProfile, profile, leverage=10)

    assert response.status_code == 302, form_errors(response)
    [event] = audit_events("symbolprofile.changed", profile)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.before["leverage"], event.after["leverage"]) == (5, 10)


def test_it_rejects_a_leverage_above_the_symbols_maximum(staff_client):
    profile = SymbolProfileFactory(leverage=5, max_leverage=20)

    response = submit_change_form(staff_client, SymbolProfile, profile, leverage=25)

    assert response.status_code == 200
    assert "leverage" in response.context["adminform"].form.errors
    profile.refresh_from_db()
    assert profile.leverage == 5


def new_take_profit_row(profile, *, level: int, value: str, size_pct: str) -> dict:
    """The inline's POST fields for one new take-profit row on a profile that has none yet."""
    prefix = "take_profit_levels"  # the inline's prefix as rendered: the model's related_name
    return {
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-0-profile": str(profile.pk),
        f"{prefix}-0-level": str(level),
        f"{prefix}-0-mode": "pct",
        f"{prefix}-0-value": value,
        f"{prefix}-0-size_pct": size_pct,
    }


def test_it_adds_a_take_profit_level_in_the_inline(staff_client):
    profile = SymbolProfileFactory()

    response = submit_change_form(
        staff_client, SymbolProfile, profile, **new_take_profit_row(profile, level=1, value="2.5", size_pct="50")
    )

    assert response.status_code == 302, form_errors(response)
    [level] = profile.take_profit_levels.all()
    assert (level.level, level.value, level.size_pct) == (1, Decimal("2.5"), Decimal("50"))


def test_it_audits_a_take_profit_level_added_in_the_inline(staff_client):
    profile = SymbolProfileFactory()

    submit_change_form(
        staff_client, SymbolProfile, profile, **new_take_profit_row(profile, level=2, value="4", size_pct="25")
    )

    level = profile.take_profit_levels.get()
    [event] = audit_events("takeprofitlevel.created", level)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.after["profile"], event.after["level"]) == (profile.pk, 2)


def test_it_audits_a_take_profit_level_changed_in_the_inline(staff_client):
    level = TakeProfitLevelFactory(level=1, value=Decimal("1.5"))

    response = submit_change_form(staff_client, SymbolProfile, level.profile, **{"take_profit_levels-0-value": "3"})

    assert response.status_code == 302, form_errors(response)
    [event] = audit_events("takeprofitlevel.changed", level)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (Decimal(event.before["value"]), Decimal(event.after["value"])) == (Decimal("1.5"), Decimal("3"))


def test_it_audits_a_take_profit_level_deleted_in_the_inline(staff_client):
    level = TakeProfitLevelFactory(level=1)

    response = submit_change_form(staff_client, SymbolProfile, level.profile, **{"take_profit_levels-0-DELETE": "on"})

    assert response.status_code == 302, form_errors(response)
    assert not TakeProfitLevel.objects.filter(pk=level.pk).exists()
    [event] = audit_events("takeprofitlevel.deleted", level)
    assert event.before["level"] == 1


def test_it_audits_a_deleted_take_profit_level_as_it_was_stored(staff_client):
    level = TakeProfitLevelFactory(level=1, value=Decimal("1.5"))

    submit_change_form(
        staff_client,
        SymbolProfile,
        level.profile,
        **{"take_profit_levels-0-value": "9", "take_profit_levels-0-DELETE": "on"},
    )

    [event] = audit_events("takeprofitlevel.deleted", level)
    assert Decimal(event.before["value"]) == Decimal("1.5")


def test_it_audits_a_symbol_profile_created_in_the_admin(staff_client):
    account = TradingAccountFactory()

    response = submit_add_form(
        staff_client,
        SymbolProfile,
        account=account.pk,
        symbol="ETH/USDT:USDT",
        **{"take_profit_levels-TOTAL_FORMS": "0", "take_profit_levels-INITIAL_FORMS": "0"},
    )

    assert response.status_code == 302, form_errors(response)
    profile = SymbolProfile.objects.get(account=account, symbol="ETH/USDT:USDT")
    [event] = audit_events("symbolprofile.created", profile)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert event.after["symbol"] == "ETH/USDT:USDT"


def test_it_audits_a_symbol_profile_deleted_in_the_admin(staff_client):
    profile = SymbolProfileFactory()

    response = staff_client.post(admin_url(SymbolProfile, "delete", profile.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not SymbolProfile.objects.filter(pk=profile.pk).exists()
    [event] = audit_events("symbolprofile.deleted", profile)
    assert event.before["symbol"] == profile.symbol
