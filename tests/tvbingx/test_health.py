"""`/health` tells a monitor whether the database, cache, broker and channel layer work."""

import pytest
from django.db import OperationalError, connection
from django.test import Client

from tvbingx.celery import app as celery_app

pytestmark = pytest.mark.django_db

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


@pytest.fixture
def celery_broker():
    """Point the Celery app at a broker for one test, then restore the embedded default."""
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}

    def use(url: str) -> None:
        celery_app.conf.update(broker_url=url, task_always_eager=False)

    yield use
    celery_app.conf.update(saved)


def test_the_embedded_default_is_healthy(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker", "channel_layer"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["broker"]["backend"] == "in-process (no broker)"
    assert body["checks"]["channel_layer"]["backend"] == "InMemoryChannelLayer"


def test_it_needs_no_login(client):
    assert client.get("/health").status_code == 200


def test_an_unreachable_database_answers_503(client):
    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    with connection.execute_wrapper(refuse):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "OperationalError",
        "latency_ms": pytest.approx(0, abs=1000),
    }


def test_an_unreachable_cache_answers_503(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CLOSED_PORT_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


def test_an_unreachable_channel_layer_answers_503(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [CLOSED_PORT_REDIS]}}
    }
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"]["ok"] is False


def test_an_unreachable_broker_answers_503(client, celery_broker):
    celery_broker(CLOSED_PORT_REDIS)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_error_details_are_for_staff_only(staff_client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CLOSED_PORT_REDIS}
    }
    assert "detail" not in Client().get("/health").json()["checks"]["cache"]
    assert "detail" in staff_client.get("/health").json()["checks"]["cache"]


@pytest.mark.redis
def test_with_redis_configured_every_check_uses_it(client, settings, redis_url, celery_broker):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    celery_broker(redis_url)
    response = client.get("/health")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert checks["cache"]["backend"] == "RedisCache"
    assert checks["channel_layer"]["backend"] == "RedisChannelLayer"
    assert checks["broker"]["backend"] == "redis"
