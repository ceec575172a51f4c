"""Every page of every model the back-office registers for trading, signals and Telegram.

Each registered model is either editable (staff add, change and delete it, every edit audited) or
read-only evidence (viewable and exportable, never added, edited or deleted). Every changelist has
columns, filters, search and a date hierarchy, and each of those finds the object it should; anonymous
visitors are sent to the login page. What an app's admin does beyond this is tested in its own
test_admin.py.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

import trading.models as trading
from signals_app.models import Signal
from telegram_bot.models import BotSession, Notification, SignalCard, TelegramUser
from tests.admin_helpers import admin_url, filter_params, follow_path, run_action
from tests.factories import (
    BalanceSnapshotFactory,
    BotSessionFactory,
    FillFactory,
    OrderFactory,
    PositionFactory,
    RiskLimitsFactory,
    TakeProfitLevelFactory,
    TelegramUserFactory,
    TradingAccountFactory,
)
from trading.audit import Actor, audit_record

pytestmark = pytest.mark.django_db

APPS = ("trading", "signals_app", "telegram_bot")


# --- the objects each page is tried with -----------------------------------------------------------


def _audit_event() -> trading.AuditEvent:
    return audit_record(
        actor=Actor.system("test"),
        action="account.test",
        instance=TradingAccountFactory(),
        before={"mode": "demo"},
        after={"mode": "live"},
    )


def _signal_with_an_order() -> Signal:
    return OrderFactory(signal__strategy="trend", signal__confidence=80).signal


def _bot_session() -> BotSession:
    return BotSessionFactory(
        account=TradingAccountFactory(), telegram_user=TelegramUserFactory(), chat_id=555001, state="awaiting_size"
    )


def _notification() -> Notification:
    user = TelegramUserFactory()
    return Notification.objects.create(
        telegram_user=user, chat_id=user.telegram_id, kind="alert", dedupe_key="alert:test", text="Stream down"
    )


def _signal_card() -> SignalCard:
    user = TelegramUserFactory()
    return SignalCard.objects.create(
        signal=_signal_with_an_order(), telegram_user=user, chat_id=user.telegram_id, message_id=7
    )


SAMPLE_MAKERS = {
    trading.TradingAccount: TradingAccountFactory,
    trading.SymbolProfile: lambda: TakeProfitLevelFactory().profile,  # with an inline row to render
    trading.RiskLimits: RiskLimitsFactory,
    trading.Order: lambda: FillFactory().order,  # with a fill in its inline
    trading.Fill: FillFactory,
    trading.Position: PositionFactory,
    trading.BalanceSnapshot: BalanceSnapshotFactory,
    trading.AuditEvent: _audit_event,
    Signal: _signal_with_an_order,  # with an order in its inline
    TelegramUser: TelegramUserFactory,
    BotSession: _bot_session,
    Notification: _notification,
    SignalCard: _signal_card,
}
EDITABLE = [trading.TradingAccount, trading.SymbolProfile, trading.RiskLimits, TelegramUser]
READ_ONLY = [
    trading.Order,
    trading.Fill,
    trading.Position,
    trading.BalanceSnapshot,
    trading.AuditEvent,
    Signal,
    BotSession,
    Notification,
    SignalCard,
]
REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label in APPS), key=lambda m: m._meta.label_lower
)
# Fields of the read-only models, all posted to each one's change page as an attempted edit.
TAMPERED_FIELDS = {
    "symbol": "HACKED",
    "action": "hacked",
    "status": "executed",
    "raw_body": "{}",
    "name": "hacked",
    "state": "idle",
}


def model_id(model) -> str:
    return model._meta.label


every_model = pytest.mark.parametrize("model", REGISTERED, ids=model_id)
editable_models = pytest.mark.parametrize("model", EDITABLE, ids=model_id)
read_only_models = pytest.mark.parametrize("model", READ_ONLY, ids=model_id)


@pytest.fixture
def sample(model):
    """One saved object of the model under test."""
    return SAMPLE_MAKERS[model]()


# --- which models there are ---------------------------------------------------------------------


def test_every_registered_model_is_classified_as_editable_or_read_only_and_has_a_sample():
    assert set(REGISTERED) == set(EDITABLE) | set(READ_ONLY) == set(SAMPLE_MAKERS)
    assert not set(EDITABLE) & set(READ_ONLY)


def test_every_registered_signals_model_is_read_only():
    assert {model for model in REGISTERED if model._meta.app_label == "signals_app"} <= set(READ_ONLY)


# --- every page of every model ------------------------------------------------------------------


@every_model
def test_every_admin_passes_djangos_admin_checks(model):
    assert admin.site._registry[model].check() == []


@every_model
def test_every_changelist_has_columns_filters_search_and_a_date_hierarchy(model):
    model_admin = admin.site._registry[model]

    assert len(model_admin.list_display) >= 4
    assert model_admin.list_filter
    assert model_admin.search_fields
    assert model_admin.date_hierarchy


@every_model
def test_it_lists_objects_for_staff(staff_client, model, sample):
    response = staff_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert sample in response.context["cl"].result_list


@every_model
def test_it_searches_a_changelist(staff_client, model, sample):
    term = str(follow_path(sample, admin.site._registry[model].search_fields[0].lstrip("^=@")))

    any_term = staff_client.get(admin_url(model, "changelist"), {"q": "x"})
    own_term = staff_client.get(admin_url(model, "changelist"), {"q": term})

    assert any_term.status_code == 200
    assert own_term.status_code == 200
    assert sample in own_term.context["cl"].result_list


@every_model
def test_its_filters_and_date_hierarchy_select_the_object(staff_client, model, sample):
    params = filter_params(admin.site._registry[model], sample)

    response = staff_client.get(admin_url(model, "changelist"), params)

    assert response.status_code == 200, response.get("Location")  # an unknown parameter redirects with ?e=1
    assert sample in response.context["cl"].result_list


@editable_models
def test_it_shows_the_change_page_of_an_editable_model(staff_client, model, sample):
    response = staff_client.get(admin_url(model, "change", sample.pk))

    assert response.status_code == 200
    assert response.context["original"] == sample
    assert 'name="_save"' in response.content.decode()


@editable_models
def test_it_shows_the_add_page_of_an_editable_model(staff_client, model):
    response = staff_client.get(admin_url(model, "add"))

    assert response.status_code == 200


@read_only_models
def test_it_refuses_the_add_page_of_a_read_only_model(staff_client, model):
    response = staff_client.get(admin_url(model, "add"))

    assert response.status_code == 403


@every_model
def test_it_sends_anonymous_visitors_to_the_login_page(client, model, sample):
    changelist = client.get(admin_url(model, "changelist"))
    change_page = client.get(admin_url(model, "change", sample.pk))

    for response in (changelist, change_page):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# --- evidence is read-only ----------------------------------------------------------------------


@read_only_models
def test_it_refuses_the_delete_page_of_a_read_only_model(staff_client, model, sample):
    response = staff_client.get(admin_url(model, "delete", sample.pk))

    assert response.status_code == 403
    assert model.objects.filter(pk=sample.pk).exists()


@read_only_models
def test_it_offers_no_bulk_delete_on_a_read_only_model(staff_client, model, sample):
    changelist = staff_client.get(admin_url(model, "changelist"))
    for confirmation in ({}, {"post": "yes"}):  # the action's confirmation page, then the confirmed delete
        response = run_action(staff_client, model, "delete_selected", [sample], **confirmation)
        assert response.status_code in (200, 302)  # the list again: no such action

    assert 'value="delete_selected"' not in changelist.content.decode()
    assert model.objects.filter(pk=sample.pk).exists()


@read_only_models
def test_it_refuses_an_edit_posted_to_a_read_only_model(staff_client, model, sample):
    before = model.objects.filter(pk=sample.pk).values().get()

    response = staff_client.post(admin_url(model, "change", sample.pk), TAMPERED_FIELDS)

    assert response.status_code == 403
    assert model.objects.filter(pk=sample.pk).values().get() == before


@read_only_models
def test_it_shows_a_read_only_object_without_save_or_delete_buttons(staff_client, model, sample):
    response = staff_client.get(admin_url(model, "change", sample.pk))

    assert response.status_code == 200
    assert response.context["original"] == sample
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert admin_url(model, "delete", sample.pk) not in html
