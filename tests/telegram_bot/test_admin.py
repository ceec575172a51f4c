"""The Telegram back-office: the bot's whitelist (editable, every change audited) and its sessions (read-only).

Staff can open every page and find a user by the numeric Telegram id; anonymous visitors are sent
to the login page.
"""

from __future__ import annotations

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.db import models
from django.urls import reverse
from django.utils import timezone

from telegram_bot.models import BotSession, TelegramUser
from tests.factories import BotSessionFactory, TelegramUserFactory, TradingAccountFactory
from trading.models import AuditEvent

pytestmark = pytest.mark.django_db


# --- helpers -------------------------------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def form_post_data(response) -> dict:
    """What a browser would POST back for the rendered admin form, left unchanged."""
    data = {}
    for bound in response.context["adminform"].form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.html_name] = "on"
            continue
        data[bound.html_name] = "" if value is None else value
    return data


def form_errors(response) -> object:
    if response.status_code != 200 or not response.context or "adminform" not in response.context:
        return response.status_code
    return response.context["adminform"].form.errors


def submit_change_form(client, model, obj, **changes):
    url = admin_url(model, "change", obj.pk)
    data = form_post_data(client.get(url)) | changes
    return client.post(url, {key: value for key, value in data.items() if value is not None})


def follow_path(obj, path: str):
    value = obj
    for part in path.split("__"):
        value = getattr(value, part)
    return value


def filter_params(model_admin, obj) -> dict:
    """Every list filter and the date hierarchy, set to the object's own values."""
    params = {}
    for path in model_admin.list_filter:
        field = get_fields_from_path(model_admin.model, path)[-1]
        value = follow_path(obj, path)
        if value is None:
            params[f"{path}__isnull"] = "True"
        elif field.is_relation:
            params[f"{path}__id__exact"] = value.pk
        elif isinstance(field, models.BooleanField):
            params[f"{path}__exact"] = "1" if value else "0"
        else:
            params[f"{path}__exact"] = value
    if model_admin.date_hierarchy and follow_path(obj, model_admin.date_hierarchy) is not None:
        moment = timezone.localtime(follow_path(obj, model_admin.date_hierarchy))
        params |= {
            f"{model_admin.date_hierarchy}__year": moment.year,
            f"{model_admin.date_hierarchy}__month": moment.month,
            f"{model_admin.date_hierarchy}__day": moment.day,
        }
    return params


def audit_events(action: str, obj) -> list[AuditEvent]:
    """The audit rows of one action on one object, oldest first."""
    rows = AuditEvent.objects.filter(action=action, object_type=obj._meta.label_lower, object_id=str(obj.pk))
    return list(rows.order_by("id"))


def searched(client, term: str) -> list[TelegramUser]:
    response = client.get(admin_url(TelegramUser, "changelist"), {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def _bot_session() -> BotSession:
    return BotSessionFactory(
        account=TradingAccountFactory(), telegram_user=TelegramUserFactory(), chat_id=555001, state="awaiting_size"
    )


OBJECT_MAKERS = {TelegramUser: TelegramUserFactory, BotSession: _bot_session}
EDITABLE = [TelegramUser]
READ_ONLY = [BotSession]
REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "telegram_bot"),
    key=lambda m: m._meta.model_name,
)


def model_id(model) -> str:
    return model.__name__


# --- every page of every model ------------------------------------------------------------------


def test_every_registered_model_is_classified_as_editable_or_read_only():
    assert set(REGISTERED) == set(EDITABLE) | set(READ_ONLY) == set(OBJECT_MAKERS)


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_every_admin_passes_djangos_admin_checks(model):
    assert admin.site._registry[model].check() == []


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_every_changelist_has_columns_filters_search_and_a_date_hierarchy(model):
    model_admin = admin.site._registry[model]

    assert len(model_admin.list_display) >= 4
    assert model_admin.list_filter
    assert model_admin.search_fields
    assert model_admin.date_hierarchy


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_it_lists_objects_for_staff(staff_client, model):
    obj = OBJECT_MAKERS[model]()

    response = staff_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert obj in response.context["cl"].result_list


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_it_searches_a_changelist(staff_client, model):
    obj = OBJECT_MAKERS[model]()
    term = str(follow_path(obj, admin.site._registry[model].search_fields[0].lstrip("^=@")))

    any_term = staff_client.get(admin_url(model, "changelist"), {"q": "x"})
    own_term = staff_client.get(admin_url(model, "changelist"), {"q": term})

    assert any_term.status_code == 200
    assert own_term.status_code == 200
    assert obj in own_term.context["cl"].result_list


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_its_filters_and_date_hierarchy_select_the_object(staff_client, model):
    obj = OBJECT_MAKERS[model]()
    params = filter_params(admin.site._registry[model], obj)

    response = staff_client.get(admin_url(model, "changelist"), params)

    assert response.status_code == 200, response.get("Location")  # an unknown parameter redirects with ?e=1
    assert obj in response.context["cl"].result_list


@pytest.mark.parametrize("model", EDITABLE, ids=model_id)
def test_it_shows_the_change_page_of_an_editable_model(staff_client, model):
    obj = OBJECT_MAKERS[model]()

    response = staff_client.get(admin_url(model, "change", obj.pk))

    assert response.status_code == 200
    assert response.context["original"] == obj
    assert 'name="_save"' in response.content.decode()


@pytest.mark.parametrize("model", EDITABLE, ids=model_id)
def test_it_shows_the_add_page_of_an_editable_model(staff_client, model):
    response = staff_client.get(admin_url(model, "add"))

    assert response.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY, ids=model_id)
def test_it_refuses_the_add_page_of_a_read_only_model(staff_client, model):
    response = staff_client.get(admin_url(model, "add"))

    assert response.status_code == 403


@pytest.mark.parametrize("model", REGISTERED, ids=model_id)
def test_it_sends_anonymous_visitors_to_the_login_page(client, model):
    obj = OBJECT_MAKERS[model]()

    changelist = client.get(admin_url(model, "changelist"))
    change_page = client.get(admin_url(model, "change", obj.pk))

    for response in (changelist, change_page):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# --- bot sessions are read-only -----------------------------------------------------------------


@pytest.mark.parametrize("model", READ_ONLY, ids=model_id)
def test_it_refuses_the_delete_page_of_a_read_only_model(staff_client, model):
    obj = OBJECT_MAKERS[model]()

    response = staff_client.get(admin_url(model, "delete", obj.pk))

    assert response.status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", READ_ONLY, ids=model_id)
def test_it_offers_no_bulk_delete_on_a_read_only_model(staff_client, model):
    obj = OBJECT_MAKERS[model]()

    changelist = staff_client.get(admin_url(model, "changelist"))
    for confirmation in ({}, {"post": "yes"}):  # the action's confirmation page, then the confirmed delete
        response = staff_client.post(
            admin_url(model, "changelist"),
            {"action": "delete_selected", "_selected_action": [obj.pk], "index": 0} | confirmation,
        )
        assert response.status_code in (200, 302)  # the list again: no such action

    assert 'value="delete_selected"' not in changelist.content.decode()
    assert model.objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", READ_ONLY, ids=model_id)
def test_it_refuses_an_edit_posted_to_a_read_only_model(staff_client, model):
    obj = OBJECT_MAKERS[model]()
    before = model.objects.filter(pk=obj.pk).values().get()

    response = staff_client.post(admin_url(model, "change", obj.pk), {"name": "hacked", "state": "idle"})

    assert response.status_code == 403
    assert model.objects.filter(pk=obj.pk).values().get() == before


@pytest.mark.parametrize("model", READ_ONLY, ids=model_id)
def test_it_shows_a_read_only_object_without_save_or_delete_buttons(staff_client, model):
    obj = OBJECT_MAKERS[model]()

    response = staff_client.get(admin_url(model, "change", obj.pk))

    assert response.status_code == 200
    assert response.context["original"] == obj
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert admin_url(model, "delete", obj.pk) not in html


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
    url = admin_url(TelegramUser, "add")
    data = form_post_data(staff_client.get(url)) | {"telegram_id": "777001", "username": "carol", "role": "trader"}

    response = staff_client.post(url, data)

    assert response.status_code == 302, form_errors(response)
    user = TelegramUser.objects.get(telegram_id=777001)
    assert (user.username, user.role, user.is_active) == ("carol", "trader", True)


def test_it_audits_a_user_added_to_the_whitelist(staff_client):
    url = admin_url(TelegramUser, "add")
    staff_client.post(url, form_post_data(staff_client.get(url)) | {"telegram_id": "777001", "role": "trader"})

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
    url = admin_url(TelegramUser, "add")

    response = staff_client.post(url, form_post_data(staff_client.get(url)) | {"telegram_id": "777001"})

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

    response = staff_client.post(
        admin_url(TelegramUser, "changelist"),
        {"action": "delete_selected", "_selected_action": [user.pk for user in users], "index": 0, "post": "yes"},
    )

    assert response.status_code == 302
    assert not TelegramUser.objects.filter(pk__in=[user.pk for user in users]).exists()
    for user in users:
        [event] = audit_events("telegramuser.deleted", user)
        assert event.before["telegram_id"] == user.telegram_id
