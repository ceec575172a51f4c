"""Helpers for driving the Django admin in tests: URLs, forms as a browser posts them, actions, audit rows.

Plain functions, shared by the per-app admin tests and by tests/tvbingx/test_admin_site.py.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.utils import get_fields_from_path
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone

from trading.models import AuditEvent


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
    """The errors of a re-rendered admin form and its inlines, or the status code when no form came back."""
    if response.status_code != 200 or not response.context or "adminform" not in response.context:
        return response.status_code
    errors = [response.context["adminform"].form.errors]
    errors += [inline.formset.errors for inline in response.context["inline_admin_formsets"]]
    errors += [inline.formset.non_form_errors() for inline in response.context["inline_admin_formsets"]]
    return errors


def _submit_rendered_form(client, url: str, fields: dict):
    """Posts the form rendered at the URL with some fields changed; a field set to None is left out."""
    data = form_post_data(client.get(url)) | fields
    return client.post(url, {key: value for key, value in data.items() if value is not None})


def submit_change_form(client, model, obj, **changes):
    return _submit_rendered_form(client, admin_url(model, "change", obj.pk), changes)


def submit_add_form(client, model, **fields):
    return _submit_rendered_form(client, admin_url(model, "add"), fields)


def run_action(client, model, action: str, objects, *, follow: bool = False, **extra):
    """Runs a changelist action on the objects; extra fields (e.g. post="yes") go along with it."""
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], "index": 0} | extra
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
