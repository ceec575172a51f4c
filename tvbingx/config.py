"""Reads TVBingX's configuration from the environment and an optional `.env` file.

Everything the platform reads from its environment is declared once in ``VARIABLES``; the same
list drives parsing, validation, the `_FILE` variants and the test that `.env.example` documents
every variable. ``load_config`` is pure (it takes a mapping, not ``os.environ``) so the rules can
be tested without reloading Django settings. Any invalid value stops start-up with one message that
lists every problem, each naming its variable and the accepted values.
"""

from __future__ import annotations

import base64
import binascii
import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

TRADING_MODES = ("dry_run", "demo", "live")
MARGIN_MODES = ("isolated", "cross")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_EXCHANGE_LEVERAGE = 125  # BingX's highest leverage on any perpetual.
# TradingView's published webhook source addresses.
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str  # str | bool | int | decimal | list | int_list | choice | fernet_keys
    default: Any = None
    help: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


VARIABLES: tuple[Variable, ...] = (
    Variable("SECRET_KEY", "str", "", "Django's signing key; required when DEBUG is off.", secret=True),
    Variable("DEBUG", "bool", False, "Development mode; never true in production."),
    Variable("ALLOWED_HOSTS", "list", ["127.0.0.1", "localhost"], "Host names this server answers to."),
    Variable("CSRF_TRUSTED_ORIGINS", "list", [], "Origins trusted for admin form posts behind a proxy."),
    Variable("HTTPS", "bool", False, "Served over HTTPS behind a proxy: secure cookies, HSTS."),
    Variable("HOST", "str", "127.0.0.1", "Address the ASGI server listens on."),
    Variable("PORT", "int", 8000, "Port the ASGI server listens on.", minimum=1, maximum=65535),
    Variable("TIME_ZONE", "str", "UTC", "Time zone for display and reports."),
    Variable("LOG_LEVEL", "choice", "INFO", "Root log level.", choices=LOG_LEVELS),
    Variable("DATABASE_URL", "str", "", "Database DSN, e.g. postgres://user:pass@host:5432/tvbingx.", secret=True),
    Variable("DATABASE_HOST", "str", "", "PostgreSQL host, used when DATABASE_URL is absent."),
    Variable("DATABASE_PORT", "int", 5432, "PostgreSQL port.", minimum=1, maximum=65535),
    Variable("DATABASE_NAME", "str", "tvbingx", "PostgreSQL database name."),
    Variable("DATABASE_USER", "str", "postgres", "PostgreSQL user."),
    Variable("DATABASE_PASSWORD", "str", "", "PostgreSQL password.", secret=True),
    Variable("DATABASE_POOL_SIZE", "int", 10, "PostgreSQL connections per process at most.", minimum=1, maximum=200),
    Variable("SQLITE_PATH", "str", "", "SQLite file for the embedded default (default: db.sqlite3)."),
    Variable("REDIS_URL", "str", "", "Redis DSN; switches on Redis cache, channel layer and Celery.", secret=True),
    Variable("TRADING_MODE", "choice", "dry_run", "Default trading mode for new accounts.", choices=TRADING_MODES),
    Variable("DEFAULT_MARGIN_MODE", "choice", "isolated", "Margin mode for new symbols.", choices=MARGIN_MODES),
    Variable("DEFAULT_LEVERAGE", "int", 5, "Leverage for new symbols.", minimum=1, maximum=MAX_EXCHANGE_LEVERAGE),
    Variable("BINGX_API_KEY", "str", "", "API key of the default trading account.", secret=True),
    Variable("BINGX_API_SECRET", "str", "", "API secret of the default trading account.", secret=True),
    Variable("BINGX_SUBACCOUNT_ID", "str", "", "Label of the BingX sub-account the key pair belongs to."),
    Variable("TRADING_DEFAULT_USERNAME", "str", "default", "Name of the default trading account."),
    Variable("TRADING_DEFAULT_SESSION", "str", "default", "Name of the default Telegram bot session."),
    Variable("TRADINGVIEW_WEBHOOK_TOKEN", "str", "", "Webhook secret of the default account.", secret=True),
    Variable(
        "WEBHOOK_IP_ALLOWLIST_ENABLED", "bool", False, "Accept webhooks only from WEBHOOK_IP_ALLOWLIST addresses."
    ),
    Variable(
        "WEBHOOK_IP_ALLOWLIST",
        "list",
        list(TRADINGVIEW_IPS),
        "Addresses allowed to post alerts (default: TradingView's published ones).",
    ),
    Variable("WEBHOOK_TRUSTED_PROXIES", "list", [], "Proxy addresses/networks whose X-Forwarded-For is believed."),
    Variable(
        "WEBHOOK_DEDUPE_WINDOW_SECONDS",
        "int",
        300,
        "Alerts without alert_id: identical payloads within this window are one alert.",
        minimum=1,
        maximum=86400,
    ),
    Variable(
        "WEBHOOK_AUTH_FAILURES_PER_MINUTE",
        "int",
        10,
        "Failed webhook logins allowed per source address per minute.",
        minimum=1,
        maximum=10000,
    ),
    Variable(
        "SIGNAL_SWEEP_AFTER_SECONDS",
        "int",
        30,
        "Signals left unprocessed this long are picked up again by the sweeper.",
        minimum=1,
        maximum=3600,
    ),
    Variable(
        "DRY_RUN_STARTING_EQUITY", "int", 10000, "Simulated USDT wallet of a dry-run account.", minimum=1, maximum=10**9
    ),
    Variable(
        "DRY_RUN_FEE_RATE",
        "decimal",
        Decimal("0.0005"),
        "Fee per dry-run fill, as a fraction of its value (BingX taker).",
        minimum=0,
        maximum=1,
    ),
    Variable(
        "DRY_RUN_SLIPPAGE_PCT",
        "decimal",
        Decimal("0"),
        "Adverse slippage on dry-run market fills, in percent of the price.",
        minimum=0,
        maximum=10,
    ),
    Variable(
        "BINGX_BASE_URL", "str", "https://open-api.bingx.com", "BingX REST endpoint (backup domain, proxy, fake)."
    ),
    Variable("BINGX_WS_URL", "str", "", "BingX user-data WebSocket endpoint; empty: BingX's own for the mode."),
    Variable(
        "STREAM_DOWN_ALERT_SECONDS",
        "int",
        60,
        "How long an account's user-data stream (run_stream) may be down before alerts.stream_down is raised.",
        minimum=1,
        maximum=86400,
    ),
    Variable(
        "EXCHANGE_TIMEOUT_SECONDS", "decimal", Decimal("10"), "Timeout of one BingX request.", minimum=0, maximum=120
    ),
    Variable(
        "EXCHANGE_RETRY_ATTEMPTS",
        "int",
        3,
        "Attempts for a safe-to-repeat BingX call (reads, lookups, cancels) and for rate-limited orders.",
        minimum=1,
        maximum=10,
    ),
    Variable(
        "EXCHANGE_RETRY_BACKOFF_SECONDS",
        "decimal",
        Decimal("0.5"),
        "First pause before a retry; each next one doubles.",
        minimum=0,
        maximum=30,
    ),
    Variable(
        "EXCHANGE_BREAKER_FAILURES",
        "int",
        5,
        "Consecutive transport failures that open an account's circuit breaker.",
        minimum=1,
        maximum=100,
    ),
    Variable(
        "EXCHANGE_BREAKER_OPEN_SECONDS",
        "int",
        30,
        "How long an open circuit breaker stops sending to BingX.",
        minimum=1,
        maximum=3600,
    ),
    Variable(
        "EXCHANGE_CLOCK_SYNC_SECONDS",
        "int",
        300,
        "How often the offset to BingX's clock is measured.",
        minimum=10,
        maximum=86400,
    ),
    Variable(
        "EXCHANGE_ORDER_POLL_SECONDS",
        "int",
        5,
        "How often open orders of live/demo accounts are checked for fills.",
        minimum=1,
        maximum=3600,
    ),
    Variable(
        "RESYNC_INTERVAL_SECONDS",
        "int",
        60,
        "How often live/demo accounts are compared with BingX and corrected (resync).",
        minimum=10,
        maximum=86400,
    ),
    Variable(
        "EXCHANGE_FILL_WAIT_SECONDS",
        "decimal",
        Decimal("3"),
        "How long an entry waits for a market order to report its fill before leaving it to the poller.",
        minimum=0,
        maximum=60,
    ),
    Variable(
        "MARKET_DATA_SOURCE",
        "choice",
        "auto",
        "Market list: auto (BingX, else the shipped snapshot) or snapshot (never call out).",
        choices=("auto", "snapshot"),
    ),
    Variable(
        "MARKETS_REFRESH_SECONDS", "int", 3600, "How long the loaded market list is reused.", minimum=10, maximum=86400
    ),
    Variable("TELEGRAM_BOT_TOKEN", "str", "", "Bot token from @BotFather; switches on the bot.", secret=True),
    Variable("TELEGRAM_ADMIN_IDS", "int_list", [], "Telegram user ids bootstrapped as admins."),
    Variable(
        "TELEGRAM_API_BASE_URL",
        "str",
        "https://api.telegram.org",
        "Bot API server the bot and the notification sender talk to (self-hosted or a local fake).",
    ),
    Variable(
        "TELEGRAM_PNL_SWING_PCT",
        "decimal",
        Decimal("5"),
        "Unrealized PnL move, in % of equity, within TELEGRAM_PNL_SWING_MINUTES that is notified; 0 = off.",
        minimum=0,
        maximum=100,
    ),
    Variable(
        "TELEGRAM_PNL_SWING_MINUTES",
        "int",
        15,
        "Window of the unusual-PnL-swing warning (and at most one such warning per window).",
        minimum=1,
        maximum=1440,
    ),
    Variable(
        "FIELD_ENCRYPTION_KEYS",
        "fernet_keys",
        [],
        "Fernet keys for secrets at rest, newest first; older keys still decrypt.",
        secret=True,
    ),
    Variable("ADMIN_USERNAME", "str", "admin", "Admin user created by setup."),
    Variable("ADMIN_PASSWORD", "str", "", "Its password; empty prints a one-time password.", secret=True),
    Variable("ADMIN_EMAIL", "str", "", "Its e-mail address."),
)

VARIABLES_BY_NAME = {variable.name: variable for variable in VARIABLES}
DATABASE_VARIABLES = (
    "DATABASE_POOL_SIZE",
    "DATABASE_URL",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "SQLITE_PATH",
)


class _TrimmedFileAwareMapping(environ.FileAwareMapping):
    """`NAME_FILE` support that names the variable when the file is missing.

    Container secrets are usually written with a trailing newline; it is never part of the secret.
    """

    def __getitem__(self, key: str) -> str:
        try:
            value = super().__getitem__(key)
        except OSError as error:
            raise ImproperlyConfigured(
                f"{key}_FILE names {self.env.get(key + '_FILE')!r}, which cannot be read: {error.strerror}."
            ) from error
        if self.env.get(key + "_FILE"):
            value = value.rstrip("\r\n")
        return value


def _scoped_env(environ_mapping: Mapping[str, str], env_file: Path | None) -> environ.Env:
    """An ``environ.Env`` over a private copy of the environment plus the `.env` file.

    Real environment variables win over the file, as django-environ does by default.
    """
    base = dict(environ_mapping)
    scoped = type("ScopedEnv", (environ.Env,), {"ENVIRON": base})
    if env_file is not None and env_file.is_file():
        scoped.read_env(str(env_file), overwrite=False)
    scoped.ENVIRON = _TrimmedFileAwareMapping(env=base, cache=False)
    return scoped()


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def _parse(env: environ.Env, variable: Variable) -> Any:
    name = variable.name
    # Read the mapping directly: environ.Env.str() would expand values starting with "$" as references
    # to other variables, and secrets (Django's generated keys included) may start with "$".
    raw = env.ENVIRON.get(name, "").strip()
    if raw == "":
        # A copy: callers may extend the returned lists without changing the declared defaults.
        return copy.deepcopy(variable.default)
    if variable.kind == "str":
        return raw
    if variable.kind == "bool":
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={raw!r} is not a boolean; accepted: true, false, 1, 0, yes, no, on, off.")
    if variable.kind == "int":
        try:
            number = int(raw)
        except ValueError:
            raise ValueError(
                f"{name}={raw!r} is not a whole number; accepted: {variable.minimum} to {variable.maximum}."
            ) from None
        low, high = variable.minimum, variable.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"{name}={number} is out of range; accepted: {low} to {high}.")
        return number
    if variable.kind == "decimal":
        try:
            number = Decimal(raw)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or not variable.minimum <= number <= variable.maximum:
            raise ValueError(
                f"{name}={raw!r} is not valid; accepted: a number from {variable.minimum} to {variable.maximum}."
            )
        return number
    if variable.kind == "choice":
        if raw not in variable.choices:
            raise ValueError(f"{name}={raw!r} is not valid; accepted: {', '.join(variable.choices)}.")
        return raw
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if variable.kind == "list":
        return items
    if variable.kind == "int_list":
        bad = [item for item in items if not re.fullmatch(r"-?[0-9]+", item)]
        if bad:
            raise ValueError(
                f"{name} has values that are not numeric Telegram ids: {', '.join(bad)}; "
                "accepted: comma-separated whole numbers."
            )
        return [int(item) for item in items]
    if variable.kind == "fernet_keys":
        bad_positions = [str(index + 1) for index, key in enumerate(items) if not _is_fernet_key(key)]
        if bad_positions:
            raise ValueError(
                f"{name} key(s) at position {', '.join(bad_positions)} are not Fernet keys; accepted: "
                "comma-separated url-safe base64 keys of 32 bytes (make one with `make field-key`)."
            )
        return items
    raise AssertionError(f"unknown variable kind {variable.kind}")


def _database_config(values: dict[str, Any], env: environ.Env, base_dir: Path) -> dict[str, Any]:
    if values["DATABASE_URL"]:
        url = values["DATABASE_URL"]
        if url.split(":", 1)[0] not in ("postgres", "postgresql", "pgsql", "sqlite"):
            raise ValueError(
                f"DATABASE_URL has an unsupported scheme {url.split(':', 1)[0]!r}; accepted: postgres://, "
                "postgresql://, sqlite:///."
            )
        config = env.db_url_config(url)
    elif values["DATABASE_HOST"]:
        user = quote(values["DATABASE_USER"], safe="")
        password = quote(values["DATABASE_PASSWORD"], safe="")
        credentials = f"{user}:{password}@" if password else f"{user}@"
        config = env.db_url_config(
            f"postgres://{credentials}{values['DATABASE_HOST']}:{values['DATABASE_PORT']}/"
            f"{quote(values['DATABASE_NAME'], safe='')}"
        )
    else:
        # A relative path is taken from the project folder, not from wherever the command runs.
        path = str(base_dir / (values["SQLITE_PATH"] or "db.sqlite3"))
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("connect_timeout", 5)
        # Under ASGI every request may run on another thread, so per-thread persistent connections pile up
        # (Django's docs: use the driver's pool instead). One psycopg pool per process, shared by its threads.
        config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": values["DATABASE_POOL_SIZE"], "timeout": 10}
        config["CONN_MAX_AGE"] = 0
        # With a pool, Django turns this into the pool's check before lending a connection, so one a
        # database restart killed is replaced instead of failing a request.
        config["CONN_HEALTH_CHECKS"] = True
    else:
        # The webhook and the in-process pipeline write concurrently. IMMEDIATE takes the write lock when a
        # transaction begins, so a writer waits its turn (up to the timeout) instead of failing at once with
        # "database is locked" when a read transaction tries to become a write; WAL lets readers go on.
        options = config.setdefault("OPTIONS", {})
        options.setdefault("timeout", 20)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    return config


def _dev_secret(base_dir: Path, filename: str, make: Any) -> str:
    """A development-only secret kept under var/ so restarts keep sessions and encrypted data."""
    path = base_dir / "var" / filename
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return value


def load_config(environ_mapping: Mapping[str, str], *, env_file: Path | None, base_dir: Path) -> dict[str, Any]:
    """Parse and validate every variable; raise ImproperlyConfigured listing all problems."""
    env = _scoped_env(environ_mapping, env_file)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for variable in VARIABLES:
        try:
            values[variable.name] = _parse(env, variable)
        except (ImproperlyConfigured, ValueError) as error:
            problems.append(str(error))
    # Each derived check runs when its own inputs parsed, so one start-up lists every problem.
    if all(name in values for name in DATABASE_VARIABLES):
        try:
            values["DATABASES"] = {"default": _database_config(values, env, base_dir)}
        except ValueError as error:
            problems.append(str(error))
    if all(name in values for name in ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS")):
        problems.extend(_production_problems(values))
    if problems:
        raise ImproperlyConfigured(
            "TVBingX cannot start; fix these settings (see .env.example):\n- " + "\n- ".join(problems)
        )
    if not values["SECRET_KEY"]:
        from django.core.management.utils import get_random_secret_key

        values["SECRET_KEY"] = _dev_secret(base_dir, "dev-secret-key", get_random_secret_key)
    if not values["FIELD_ENCRYPTION_KEYS"]:
        from cryptography.fernet import Fernet

        values["FIELD_ENCRYPTION_KEYS"] = [
            _dev_secret(base_dir, "dev-field-key", lambda: Fernet.generate_key().decode())
        ]
    return values


def _production_problems(values: dict[str, Any]) -> list[str]:
    """Outside DEBUG, secrets must be given: a generated one would silently differ per machine."""
    if values["DEBUG"]:
        return []
    problems = []
    if not values["SECRET_KEY"]:
        problems.append("SECRET_KEY is required when DEBUG is off; accepted: any long random string.")
    if not values["FIELD_ENCRYPTION_KEYS"]:
        problems.append(
            "FIELD_ENCRYPTION_KEYS is required when DEBUG is off; accepted: comma-separated Fernet keys "
            "(make one with `make field-key`)."
        )
    return problems
