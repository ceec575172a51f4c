"""The test suite's environment: production-like (DEBUG off), embedded services, no `.env`.

Only the environment differs; the settings themselves are tvbingx/settings.py. DATABASE_URL is kept,
so CI runs the whole suite on PostgreSQL. REDIS_URL is set aside as TEST_REDIS_URL: the suite runs
tasks in-process and tests that need Redis point at it explicitly (see tests/conftest.py).
"""

import os

TEST_REDIS_URL = os.environ.pop("REDIS_URL", "") or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

os.environ["TVBINGX_ENV_FILE"] = ""
os.environ["DEBUG"] = "false"
os.environ["SECRET_KEY"] = "test-secret-key-not-for-production-0123456789abcdefghij"
# A fixed Fernet key, for tests only.
os.environ["FIELD_ENCRYPTION_KEYS"] = "sBvtYpO0m3wTH5wi-9R9m8eq0ZzDW9S6rOmZfYi3O8s="
os.environ["TRADING_MODE"] = "dry_run"
# The suite never calls out: tests that need BingX's market endpoint start a local fake.
os.environ["MARKET_DATA_SOURCE"] = "snapshot"
for name in ("BINGX_API_KEY", "BINGX_API_SECRET", "TELEGRAM_BOT_TOKEN", "TRADINGVIEW_WEBHOOK_TOKEN", "ADMIN_PASSWORD"):
    os.environ.pop(name, None)
    os.environ.pop(f"{name}_FILE", None)

from tvbingx.settings import *  # noqa: E402,F403

SIGNAL_PROCESSING = "inline"  # deterministic: processed before the webhook call returns
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; test users only
# No collectstatic in tests: WhiteNoise serves from the app folders (WHITENOISE_USE_FINDERS).
STATIC_ROOT = None
# Skip WhiteNoise's scan of every static file at each test client's first request (about 4 s a run).
WHITENOISE_AUTOREFRESH = True
