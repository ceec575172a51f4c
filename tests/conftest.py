"""Shared test set-up: service availability (skip locally, fail under CI=true) and common fixtures."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires this service: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_sessionstart(session):
    if IN_CI and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError("CI=true: the suite must run on PostgreSQL; set DATABASE_URL=postgres://...")


@pytest.fixture(autouse=True)
def _service_markers(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing(
            "needs PostgreSQL: run the suite with DATABASE_URL=postgres://postgres@127.0.0.1:5432/tvbingx "
            f"(it runs on {connection.vendor} now)"
        )
    if request.node.get_closest_marker("redis"):
        request.getfixturevalue("redis_url")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = settings.TEST_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        _missing(f"needs Redis at {url} (set REDIS_URL): {error}")
    return url


@pytest.fixture
def actor():
    from trading.audit import Actor

    return Actor.system("test")


@pytest.fixture
def staff_client(client, db):
    from tests.factories import UserFactory

    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    client.user = user
    return client
