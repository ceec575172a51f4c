"""The signals back-office: every alert as it arrived and what became of it, read-only evidence.

Staff can list, search, filter, view and export signals; nobody can add, edit or delete one from
the admin, and anonymous visitors are sent to the login page.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.db import models
from django.urls import reverse
from django.utils import timezone

from signals_app.models import Signal
from tests.factories import OrderFactory, SignalFactory

pytestmark = pytest.mark.django_db


# --- helpers -------------------------------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


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


def _signal_with_an_order() -> Signal:
    return OrderFactory(signal__strategy="trend", signal__confidence=80).signal


OBJECT_MAKERS = {Signal: _signal_with_an_order}
READ_ONLY = [Signal]
REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "signals_app"),
    key=lambda m: m._meta.model_name,
)


def model_id(model) -> str:
    return model.__name__


# --- every page of every model ------------------------------------------------------------------


def test_every_registered_model_is_classified_as_read_only():
    assert set(REGISTERED) == set(READ_ONLY) == set(OBJECT_MAKERS)


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


# --- signals are read-only evidence -------------------------------------------------------------


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

    response = staff_client.post(
        admin_url(model, "change", obj.pk), {"symbol": "HACKED", "status": "executed", "raw_body": "{}"}
    )

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


# --- what a signal's pages show -----------------------------------------------------------------


def test_it_shows_the_raw_alert_body_as_received(staff_client):
    signal = SignalFactory(raw_body='{"symbol": "ETHUSDT.P", "action": "sell", "comment": "probe-7781"}')

    html = staff_client.get(admin_url(Signal, "change", signal.pk)).content.decode()

    assert "probe-7781" in html
    assert "<textarea" not in html  # shown, not editable


def test_it_escapes_the_raw_alert_body(staff_client):
    signal = SignalFactory(raw_body='<script>alert("x")</script>')

    html = staff_client.get(admin_url(Signal, "change", signal.pk)).content.decode()

    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;" in html


def test_it_shows_a_signals_orders_inline(staff_client):
    order = OrderFactory()

    response = staff_client.get(admin_url(Signal, "change", order.signal.pk))

    [inline] = response.context["inline_admin_formsets"]
    assert [form.instance for form in inline.formset.forms] == [order]
    assert order.client_order_id in response.content.decode()


def test_it_shortens_a_long_rejection_reason_in_the_changelist(staff_client):
    reason = "risk limit breached: " + "r" * 100
    SignalFactory(status=Signal.Status.REJECTED, rejection_reason=reason)

    html = staff_client.get(admin_url(Signal, "changelist")).content.decode()

    assert reason[:80] + "..." in html
    assert reason not in html
