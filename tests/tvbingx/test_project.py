"""The project as a whole: checks pass, migrations match the models, entry points are wired."""

from io import StringIO

import pytest
from channels.routing import ProtocolTypeRouter
from django.core.management import call_command


def test_manage_py_check_is_clean():
    out = StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


@pytest.mark.django_db
def test_migrations_match_the_models():
    # Raises SystemExit(1) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def test_the_asgi_application_routes_http_and_websocket():
    from tvbingx.asgi import application

    assert isinstance(application, ProtocolTypeRouter)
    assert set(application.application_mapping) == {"http", "websocket"}


def test_the_celery_app_reads_django_settings():
    from tvbingx.celery import app

    assert app.conf.task_serializer == "json"
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.django_db
def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


@pytest.mark.django_db
def test_api_endpoints_are_staff_only_unless_they_say_otherwise(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == ["rest_framework.permissions.IsAdminUser"]


@pytest.mark.django_db
def test_the_admin_login_page_loads(client):
    assert client.get("/admin/login/").status_code == 200


@pytest.mark.django_db
def test_admin_static_files_are_served_by_the_app(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("mode", "label"), [("dry_run", "DRY RUN"), ("demo", "DEMO"), ("live", "LIVE")])
def test_every_admin_page_shows_the_trading_mode(staff_client, settings, mode, label):
    settings.TRADING_MODE = mode
    html = staff_client.get("/admin/").content.decode()
    assert f'tvbingx-mode-{mode}"' in html
    assert label in html
