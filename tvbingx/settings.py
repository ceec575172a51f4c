"""Django settings for TVBingX: one env-driven file (see tvbingx/config.py and .env.example).

With nothing configured it runs embedded: SQLite, an in-memory channel layer, Celery tasks executed
in-process and dry-run trading. DATABASE_URL and REDIS_URL switch on PostgreSQL and Redis.
"""

import os
from decimal import Decimal
from pathlib import Path

from tvbingx.config import load_config

BASE_DIR = Path(__file__).resolve().parent.parent

# TVBINGX_ENV_FILE names another env file; set it empty to read none (the test suite does).
_env_file_setting = os.environ.get("TVBINGX_ENV_FILE", str(BASE_DIR / ".env"))
CONFIG = load_config(os.environ, env_file=Path(_env_file_setting) if _env_file_setting else None, base_dir=BASE_DIR)

SECRET_KEY = CONFIG["SECRET_KEY"]
DEBUG = CONFIG["DEBUG"]
ALLOWED_HOSTS = CONFIG["ALLOWED_HOSTS"]
CSRF_TRUSTED_ORIGINS = CONFIG["CSRF_TRUSTED_ORIGINS"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "import_export",
    "trading",
    "signals_app",
    "telegram_bot",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tvbingx.urls"
WSGI_APPLICATION = "tvbingx.wsgi.application"
ASGI_APPLICATION = "tvbingx.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tvbingx.context_processors.platform",
            ],
        },
    },
]

DATABASES = CONFIG["DATABASES"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = CONFIG["TIME_ZONE"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, a first run) WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = True

# --- Security ----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 60 * 60 * 12
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if CONFIG["HTTPS"]:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 30

# --- Redis-backed services, or their in-process stand-ins ----------------------------------------
REDIS_URL = CONFIG["REDIS_URL"]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "tvbingx.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "tvbingx"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ------------------------------------------------------------------------------------
# Embedded default: no broker; tasks run in-process. The database row stays the source of truth
# either way, so nothing depends on a message surviving in the broker.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# No publish retries: a signal that could not be handed over is stored, and the sweeper delivers it.
CELERY_TASK_PUBLISH_RETRY = False
# One value everywhere (celery/celery#7651): a task not acked within it is redelivered.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    # Lost hand-overs and expired approvals: the database is the queue of record.
    "signals-sweep": {"task": "signals.sweep", "schedule": 10.0},
    "markets-refresh": {"task": "markets.refresh", "schedule": 1800.0},
    "exchange-orders-poll": {"task": "exchange.orders_poll", "schedule": float(CONFIG["EXCHANGE_ORDER_POLL_SECONDS"])},
    "exchange-clock-sync": {"task": "exchange.clock_sync", "schedule": float(CONFIG["EXCHANGE_CLOCK_SYNC_SECONDS"])},
    "exchange-resync": {"task": "exchange.resync", "schedule": float(CONFIG["RESYNC_INTERVAL_SECONDS"])},
}

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    # Closed by default: an endpoint that forgets its permissions is staff-only, never public.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TVBingX API",
    "DESCRIPTION": "TradingView alerts to BingX perpetual-futures orders, under risk limits.",
    "VERSION": "1.0.0",
}

# --- Trading ------------------------------------------------------------------------------------
TRADING_MODE = CONFIG["TRADING_MODE"]
DEFAULT_MARGIN_MODE = CONFIG["DEFAULT_MARGIN_MODE"]
DEFAULT_LEVERAGE = CONFIG["DEFAULT_LEVERAGE"]
TRADING_DEFAULT_USERNAME = CONFIG["TRADING_DEFAULT_USERNAME"]
TRADING_DEFAULT_SESSION = CONFIG["TRADING_DEFAULT_SESSION"]
BINGX_API_KEY = CONFIG["BINGX_API_KEY"]
BINGX_API_SECRET = CONFIG["BINGX_API_SECRET"]
BINGX_SUBACCOUNT_ID = CONFIG["BINGX_SUBACCOUNT_ID"]
TRADINGVIEW_WEBHOOK_TOKEN = CONFIG["TRADINGVIEW_WEBHOOK_TOKEN"]
FIELD_ENCRYPTION_KEYS = CONFIG["FIELD_ENCRYPTION_KEYS"]

# --- Webhook and pipeline -------------------------------------------------------------------------
WEBHOOK_IP_ALLOWLIST_ENABLED = CONFIG["WEBHOOK_IP_ALLOWLIST_ENABLED"]
WEBHOOK_IP_ALLOWLIST = CONFIG["WEBHOOK_IP_ALLOWLIST"]
WEBHOOK_TRUSTED_PROXIES = CONFIG["WEBHOOK_TRUSTED_PROXIES"]
WEBHOOK_DEDUPE_WINDOW_SECONDS = CONFIG["WEBHOOK_DEDUPE_WINDOW_SECONDS"]
WEBHOOK_AUTH_FAILURES_PER_MINUTE = CONFIG["WEBHOOK_AUTH_FAILURES_PER_MINUTE"]
SIGNAL_SWEEP_AFTER_SECONDS = CONFIG["SIGNAL_SWEEP_AFTER_SECONDS"]
# How stored signals reach processing: Celery with a broker, else an in-process thread pool.
SIGNAL_PROCESSING = "celery" if REDIS_URL else "thread"
WEBHOOK_MAX_BODY_BYTES = 64 * 1024

DRY_RUN_STARTING_EQUITY = Decimal(CONFIG["DRY_RUN_STARTING_EQUITY"])
DRY_RUN_FEE_RATE = CONFIG["DRY_RUN_FEE_RATE"]
DRY_RUN_SLIPPAGE_PCT = CONFIG["DRY_RUN_SLIPPAGE_PCT"]

# --- BingX ----------------------------------------------------------------------------------------
BINGX_WS_URL = CONFIG["BINGX_WS_URL"]
STREAM_DOWN_ALERT_SECONDS = CONFIG["STREAM_DOWN_ALERT_SECONDS"]
EXCHANGE_TIMEOUT_SECONDS = CONFIG["EXCHANGE_TIMEOUT_SECONDS"]
EXCHANGE_RETRY_ATTEMPTS = CONFIG["EXCHANGE_RETRY_ATTEMPTS"]
EXCHANGE_RETRY_BACKOFF_SECONDS = CONFIG["EXCHANGE_RETRY_BACKOFF_SECONDS"]
EXCHANGE_BREAKER_FAILURES = CONFIG["EXCHANGE_BREAKER_FAILURES"]
EXCHANGE_BREAKER_OPEN_SECONDS = CONFIG["EXCHANGE_BREAKER_OPEN_SECONDS"]
EXCHANGE_CLOCK_SYNC_SECONDS = CONFIG["EXCHANGE_CLOCK_SYNC_SECONDS"]
EXCHANGE_ORDER_POLL_SECONDS = CONFIG["EXCHANGE_ORDER_POLL_SECONDS"]
EXCHANGE_FILL_WAIT_SECONDS = CONFIG["EXCHANGE_FILL_WAIT_SECONDS"]
RESYNC_INTERVAL_SECONDS = CONFIG["RESYNC_INTERVAL_SECONDS"]

# --- Market data ----------------------------------------------------------------------------------
BINGX_BASE_URL = CONFIG["BINGX_BASE_URL"]
MARKET_DATA_SOURCE = CONFIG["MARKET_DATA_SOURCE"]
MARKETS_REFRESH_SECONDS = CONFIG["MARKETS_REFRESH_SECONDS"]

# --- Telegram -----------------------------------------------------------------------------------
TELEGRAM_BOT_TOKEN = CONFIG["TELEGRAM_BOT_TOKEN"]
TELEGRAM_ADMIN_IDS = CONFIG["TELEGRAM_ADMIN_IDS"]
TELEGRAM_API_BASE_URL = CONFIG["TELEGRAM_API_BASE_URL"].rstrip("/")
TELEGRAM_PNL_SWING_PCT = CONFIG["TELEGRAM_PNL_SWING_PCT"]
TELEGRAM_PNL_SWING_MINUTES = CONFIG["TELEGRAM_PNL_SWING_MINUTES"]

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": CONFIG["LOG_LEVEL"]},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
