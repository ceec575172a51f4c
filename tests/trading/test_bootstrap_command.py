"""`manage.py bootstrap`: a fresh install gets an admin user, the default account and the Telegram admins."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from telegram_bot.models import BotSession, TelegramUser
from trading.models import TradingAccount

pytestmark = pytest.mark.django_db


def run_bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_without_admin_password_a_working_one_time_password_is_printed(settings, client):
    settings.CONFIG = {**settings.CONFIG, "ADMIN_USERNAME": "boss", "ADMIN_PASSWORD": ""}
    output = run_bootstrap()
    password = re.search(r"one-time password: (\S+)", output).group(1)
    assert client.login(username="boss", password=password)
    assert get_user_model().objects.get(username="boss").is_superuser


def test_admin_password_from_the_environment_is_used(settings, client):
    settings.CONFIG = {**settings.CONFIG, "ADMIN_USERNAME": "boss", "ADMIN_PASSWORD": "documented-password-1"}
    output = run_bootstrap()
    assert "one-time" not in output
    assert client.login(username="boss", password="documented-password-1")


def test_a_changed_admin_password_is_applied_on_the_next_start(settings, client):
    settings.CONFIG = {**settings.CONFIG, "ADMIN_USERNAME": "boss", "ADMIN_PASSWORD": "first-password-11"}
    run_bootstrap()
    settings.CONFIG = {**settings.CONFIG, "ADMIN_PASSWORD": "second-password-22"}
    run_bootstrap()
    assert client.login(username="boss", password="second-password-22")


def test_rerunning_without_a_password_leaves_the_admin_user_alone(settings, client):
    settings.CONFIG = {**settings.CONFIG, "ADMIN_USERNAME": "boss", "ADMIN_PASSWORD": "kept-password-333"}
    run_bootstrap()
    settings.CONFIG = {**settings.CONFIG, "ADMIN_PASSWORD": ""}
    output = run_bootstrap()
    assert "one-time" not in output
    assert client.login(username="boss", password="kept-password-333")


def test_the_default_account_and_session_are_created_once(settings):
    settings.TRADING_DEFAULT_USERNAME, settings.TRADING_DEFAULT_SESSION = "main", "auto"
    run_bootstrap()
    run_bootstrap()
    account = TradingAccount.objects.get()
    assert account.name == "main"
    assert BotSession.objects.get().name == "auto"
    assert BotSession.objects.get().account == account


def test_it_warns_when_the_default_account_has_no_webhook_secret():
    assert "no webhook secret" in run_bootstrap()


def test_telegram_admin_ids_become_whitelisted_admins(settings):
    settings.TELEGRAM_ADMIN_IDS = [111, 222]
    run_bootstrap()
    assert set(TelegramUser.objects.values_list("telegram_id", "role")) == {(111, "admin"), (222, "admin")}


def test_a_demoted_telegram_admin_stays_demoted(settings):
    settings.TELEGRAM_ADMIN_IDS = [111]
    run_bootstrap()
    TelegramUser.objects.filter(telegram_id=111).update(role="viewer", is_active=False)
    run_bootstrap()
    user = TelegramUser.objects.get(telegram_id=111)
    assert (user.role, user.is_active) == ("viewer", False)
