"""The Telegram back-office: finding a whitelisted user by the numeric Telegram id, and audited whitelist edits.

That the whitelist is editable, that bot sessions are read-only, and that staff can open every page while
anonymous visitors are sent to the login page, is tested with every other registered model in
tests/tvbingx/test_admin_site.py.
"""

from __future__ import annotations

import pytest

from telegram_bot.models import TelegramUser
from tests.admin_helpers import admin_url, audit_events, form_errors, run_action, submit_add_form, submit_change_form
from tests.factories import TelegramUserFactory
from trading.models import AuditEvent

pytestmark = pytest.mark.django_db


def searched(client, term: str) -> list[TelegramUser]:
    response = client.get(admin_url(TelegramUser, "changelist"), {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


# --- the whitelist: search ------------------------------------------------------------------------


def test_it_finds_a_user_by_numeric_telegram_id(staff_client):
    wanted = TelegramUserFactory(telegram_id=424242, username="alice")
    TelegramUserFactory(telegram_id=515151, username="bob")

    assert searched(staff_client, "424242") == [wanted]


def test_it_still_finds_a_user_by_a_number_in_the_username(staff_client):
    wanted = TelegramUserFactory(telegram_id=1, username="trader2024")

    assert searched(staff_client, "2024") == [wanted]


@pytest.mark.parametrize("term", ["9999999999999999999", "99999999999999999999"])
def test_it_finds_nobody_for_a_number_beyond_the_telegram_id_range(staff_client, term):
    TelegramUserFactory()

    assert searched(staff_client, term) == []


def test_it_keeps_the_list_filters_when_searching_by_telegram_id(staff_client):
    TelegramUserFactory(telegram_id=424242, is_active=False)

    response = staff_client.get(admin_url(TelegramUser, "changelist"), {"q": "424242", "is_active__exact": "1"})

    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("term", ["²", "--5"])
def test_it_searches_for_a_term_that_only_looks_numeric_without_error(staff_client, term):
    TelegramUserFactory()

    assert searched(staff_client, term) == []


# --- the whitelist: audited edits ---------------------------------------------------------------


def test_it_adds_a_user_to_the_whitelist(staff_client):
    response = submit_add_form(staff_client, TelegramUser, telegram_id="777001", username="carol", role="trader")

    assert response.status_code == 302, form_errors(response)
    user = TelegramUser.objects.get(telegram_id=777001)
    assert (user.username, user.role, user.is_active) == ("carol", "trader", True)


def test_it_audits_a_user_added_to_the_whitelist(staff_client):
    submit_add_form(staff_client, TelegramUser, telegram_id="777001", role="trader")

    user = TelegramUser.objects.get(telegram_id=777001)
    [event] = audit_events("telegramuser.created", user)
    assert (event.actor_type, event.actor_id) == ("admin", str(staff_client.user.pk))
    assert event.actor_label == staff_client.user.username
    assert event.before == {}
    assert (event.after["telegram_id"], event.after["role"]) == (777001, "trader")


def test_it_audits_a_whitelist_edit_with_before_and_after(staff_client):
    user = TelegramUserFactory(role=TelegramUser.Role.VIEWER, is_active=True)

    response = submit_change_form(staff_client, TelegramUser, user, role="admin", is_active=None)

    assert response.status_code == 302, form_errors(response)
    user.refresh_from_db()
    assert (user.role, user.is_active) == ("admin", False)
    [event] = audit_events("telegramuser.changed", user)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert (event.before["role"], event.after["role"]) == ("viewer", "admin")
    assert (event.before["is_active"], event.after["is_active"]) == (True, False)


def test_it_rejects_a_duplicate_telegram_id_and_audits_nothing(staff_client):
    TelegramUserFactory(telegram_id=777001)

    response = submit_add_form(staff_client, TelegramUser, telegram_id="777001")

    assert response.status_code == 200
    assert "telegram_id" in response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(action="telegramuser.created").exists()


def test_it_audits_a_user_removed_from_the_whitelist(staff_client):
    user = TelegramUserFactory(telegram_id=777002)

    response = staff_client.post(admin_url(TelegramUser, "delete", user.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not TelegramUser.objects.filter(pk=user.pk).exists()
    [event] = audit_events("telegramuser.deleted", user)
    assert (event.actor_type, event.actor_label) == ("admin", staff_client.user.username)
    assert event.before["telegram_id"] == 777002


def test_it_audits_each_user_removed_by_bulk_delete(staff_client):
    users = [TelegramUserFactory(), TelegramUserFactory()]

    response = run_action(staff_client, TelegramUser, "delete_selected", users, post="yes")

    assert response.status_code == 302
    assert not TelegramUser.objects.filter(pk__in=[user.pk for user in users]).exists()
    for user in users:
        [event] = audit_events("telegramuser.deleted", user)
        assert event.before["telegram_id"] == user.telegram_id
