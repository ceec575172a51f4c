"""The back-office for accounts, limits, symbols and exchange data.

Staff can open every page; anonymous visitors are sent to the login page. Accounts, risk limits and
symbol profiles are editable and every edit is audited; orders, fills, positions, balances and audit
events are evidence: viewable and exportable, never added, edited or deleted. API credentials and the
webhook secret are write-only: typed in, stored encrypted (or as a digest), never rendered back.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    BalanceSnapshotFactory,
    FillFactory,
    PositionFactory,
    RiskLimitsFactory,
    SymbolProfileFactory,
    TakeProfitLevelFactory,
    TradingAccountFactory,
)
from trading.audit import Actor, audit_record
from trading.models import (
    AuditEvent,
    BalanceSnapshot,
    Fill,
    Order,
    Position,
    RiskLimits,
    SymbolProfile,
    TakeProfitLevel,
    TradingAccount,
)
from trading.services import account_rotate_webhook_secret, account_set_api_credentials, account_webhook_secret_valid

pytestmark = pytest.mark.django_db

API_KEY = "ak-plain-7f3e9a1c2b4d5e6f"
API_SECRET = "as-plain-0c9b8a7d6e5f4a3b"
WEBHOOK_SECRET = "wh-plain-1234567890abcdef"


# --- helpers -------------------------------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def form_post_data(response) -> dict:
    """What a browser would POST back for the rendered admin form (and its inlines), left unchanged."""
    page_forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        page_forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in page_forms:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
                continue
            data[bound.html_name] = "" if value is None else value
            if bound.field.show_hidden_initial:
                data[bound.html_initial_name] = data[bound.html_name]
    return data


def form_errors(response) -> object:
    if response.status_code != 200 or not response.context or "adminform" not in response.context:
        return response.status_code
    errors = [response.context["adminform"].form.errors]
    errors += [inline.formset.errors for inline in response.context["inline_admin_formsets"]]
    errors += [inline.formset.non_form_errors() for inline in response.context["inline_admin_formsets"]]
    return errors


def submit_change_form(client, model, obj, **changes):
    url = admin_url(model, "change", obj.pk)
    data = form_post_data(client.get(url)) | changes
    return client.post(url, {key: value for key, value in data.items() if value is not None})


def submit_add_form(client, model, **fields):
    url = admin_url(model, "add")
    data = form_post_data(client.get(url)) | fields
    return client.post(url, {key: value for key, value in data.items() if value is not None})


def run_action(client, model, action: str, objects, *, follow: bool = False):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], "index": 0}
    return client.post(admin_url(model, "changelist"), data, follow=follow)


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


def raw_column(model, pk, column: str) -> str:
    """The value as stored in the database, before the field decrypts it."""
    table, quoted = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quoted} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


# --- the objects each page is tried with -----------------------------------------------------------


def _audit_event() -> AuditEvent:
    return audit_record(
        actor=Actor.system("test"),
        action="account.test",
        instance=TradingAccountFactory(),
        before={"mode": "demo"},
        after={"mode": "live"},
    )


OBJECT_MAKERS = {
    TradingAccount: TradingAccountFactory,
    SymbolProfile: lambda: TakeProfitLevelFactory().profile,  # with an inline row to render
    RiskLimits: RiskLimitsFactory,
    Order: lambda: FillFactory().order,  # with a fill in its inline
    Fill: FillFactory,
    Position: PositionFactory,
    BalanceSnapshot: BalanceSnapshotFactory,
    AuditEvent: _audit_event,
}
EDITABLE = [TradingAccount, SymbolProfile, RiskLimits]
READ_ONLY = [Order, Fill, Position, BalanceSnapshot, AuditEvent]
REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "trading"), key=lambda m: m._meta.model_name
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


# --- evidence is read-only ----------------------------------------------------------------------


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

    response = staff_client.post(admin_url(model, "change", obj.pk), {"symbol": "HACKED", "action": "hacked"})

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
