"""Specification of TVBingX's settings parsing (tvbingx/config.py).

Every test calls the pure ``load_config`` with a plain dict and ``tmp_path`` as the base directory:
no test reads or changes ``os.environ`` or Django's settings, and development secrets land in tmp_path.
"""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from tvbingx.config import load_config

KEY_A = "sBvtYpO0m3wTH5wi-9R9m8eq0ZzDW9S6rOmZfYi3O8s="  # fixed Fernet keys, for tests only
KEY_B = "x2Vr0vQGd3dR3Xv4bJ3sQFh3o0GkYdJ0m7lZ1c5Qy8o="
PRODUCTION_SECRETS = {
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789abcdef",
    "FIELD_ENCRYPTION_KEYS": KEY_A,
}


@pytest.fixture
def load(tmp_path):
    """``load(mapping=None, env_file=None, **variables)``: load_config over a private dict, base_dir=tmp_path."""

    def _load(mapping=None, *, env_file=None, **variables):
        return load_config({**(mapping or {}), **variables}, env_file=env_file, base_dir=tmp_path)

    return _load


@pytest.fixture
def error(load):
    """``error(**variables)``: the ImproperlyConfigured message load_config raises for these variables."""

    def _error(mapping=None, *, env_file=None, **variables):
        with pytest.raises(ImproperlyConfigured) as raised:
            load(mapping, env_file=env_file, **variables)
        return str(raised.value)

    return _error


@pytest.fixture
def write(tmp_path):
    """``write(name, text)``: a file under tmp_path/files holding text; returns its path."""

    def _write(name, text):
        folder = tmp_path / "files"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_text(text)
        return path

    return _write


# --- Defaults ------------------------------------------------------------------------------------


class TestDefaults:
    def test_it_uses_sqlite_in_the_base_dir(self, load, tmp_path):
        database = load(DEBUG="true")["DATABASES"]["default"]

        assert database["ENGINE"] == "django.db.backends.sqlite3"
        assert database["NAME"] == str(tmp_path / "db.sqlite3")

    def test_it_trades_dry_run(self, load):
        assert load(DEBUG="true")["TRADING_MODE"] == "dry_run"

    def test_new_symbols_get_isolated_margin(self, load):
        assert load(DEBUG="true")["DEFAULT_MARGIN_MODE"] == "isolated"

    def test_new_symbols_get_leverage_5(self, load):
        assert load(DEBUG="true")["DEFAULT_LEVERAGE"] == 5

    def test_it_has_no_redis(self, load):
        assert load(DEBUG="true")["REDIS_URL"] == ""

    def test_it_has_no_telegram_admins(self, load):
        assert load(DEBUG="true")["TELEGRAM_ADMIN_IDS"] == []

    def test_it_answers_to_localhost_only(self, load):
        assert load(DEBUG="true")["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost"]

    def test_debug_is_off(self, load):
        assert load(PRODUCTION_SECRETS)["DEBUG"] is False

    def test_log_level_is_info(self, load):
        assert load(DEBUG="true")["LOG_LEVEL"] == "INFO"

    def test_the_server_listens_on_localhost_port_8000(self, load):
        config = load(DEBUG="true")

        assert (config["HOST"], config["PORT"]) == ("127.0.0.1", 8000)

    def test_each_load_gets_its_own_default_lists(self, load):
        # Checked by identity, not by mutating: mutating a shared default would leak into other tests.
        first, second = load(DEBUG="true"), load(DEBUG="true")

        for name in ("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "TELEGRAM_ADMIN_IDS"):
            assert first[name] is not second[name], f"{name}: a caller appending to it would change every load"


class TestDevelopmentSecrets:
    def test_in_debug_a_secret_key_is_generated(self, load):
        secret_key = load(DEBUG="true")["SECRET_KEY"]

        assert len(secret_key) >= 50

    def test_in_debug_a_valid_fernet_key_is_generated(self, load):
        keys = load(DEBUG="true")["FIELD_ENCRYPTION_KEYS"]

        assert len(keys) == 1
        fernet = Fernet(keys[0])
        assert fernet.decrypt(fernet.encrypt(b"api-secret")) == b"api-secret"

    def test_generated_secrets_are_stored_under_var(self, load, tmp_path):
        config = load(DEBUG="true")

        stored = {path.read_text().strip() for path in (tmp_path / "var").iterdir()}
        assert config["SECRET_KEY"] in stored
        assert config["FIELD_ENCRYPTION_KEYS"][0] in stored

    def test_generated_secret_files_are_private_to_their_owner(self, load, tmp_path):
        load(DEBUG="true")

        for path in (tmp_path / "var").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path

    def test_the_next_load_reuses_the_generated_secrets(self, load):
        first = load(DEBUG="true")
        second = load(DEBUG="true")

        assert second["SECRET_KEY"] == first["SECRET_KEY"]
        assert second["FIELD_ENCRYPTION_KEYS"] == first["FIELD_ENCRYPTION_KEYS"]

    def test_given_secrets_are_used_and_nothing_is_generated(self, load, tmp_path):
        config = load(PRODUCTION_SECRETS, DEBUG="true")

        assert config["SECRET_KEY"] == PRODUCTION_SECRETS["SECRET_KEY"]
        assert config["FIELD_ENCRYPTION_KEYS"] == [KEY_A]
        assert not (tmp_path / "var").exists()


class TestProductionRequiresSecrets:
    def test_without_secret_key_and_encryption_keys_it_names_both(self, error):
        message = error()

        assert "SECRET_KEY" in message
        assert "FIELD_ENCRYPTION_KEYS" in message

    def test_without_secret_key_it_names_it(self, error):
        message = error(FIELD_ENCRYPTION_KEYS=KEY_A)

        assert "SECRET_KEY" in message
        assert "FIELD_ENCRYPTION_KEYS" not in message

    def test_without_encryption_keys_it_names_them(self, error):
        message = error(SECRET_KEY=PRODUCTION_SECRETS["SECRET_KEY"])

        assert "FIELD_ENCRYPTION_KEYS" in message

    def test_with_both_it_loads(self, load):
        config = load(PRODUCTION_SECRETS)

        assert config["DEBUG"] is False
        assert config["SECRET_KEY"] == PRODUCTION_SECRETS["SECRET_KEY"]
        assert config["FIELD_ENCRYPTION_KEYS"] == [KEY_A]

    def test_it_never_generates_secrets(self, load, error, tmp_path):
        error()
        load(PRODUCTION_SECRETS)

        assert not (tmp_path / "var").exists()


# --- The .env file -------------------------------------------------------------------------------


class TestEnvFile:
    def test_values_are_read_from_it(self, load, write):
        env_file = write(".env", "DEBUG=true\nTRADING_MODE=demo\nDEFAULT_LEVERAGE=10\n")

        config = load(env_file=env_file)

        assert (config["TRADING_MODE"], config["DEFAULT_LEVERAGE"]) == ("demo", 10)

    def test_the_real_environment_wins_over_it(self, load, write):
        env_file = write(".env", "DEBUG=true\nTRADING_MODE=demo\n")

        assert load(env_file=env_file, TRADING_MODE="live")["TRADING_MODE"] == "live"

    def test_none_reads_no_file(self, load, tmp_path):
        (tmp_path / ".env").write_text("TRADING_MODE=live\n")

        assert load(env_file=None, DEBUG="true")["TRADING_MODE"] == "dry_run"

    def test_a_missing_file_is_fine(self, load, tmp_path):
        config = load(env_file=tmp_path / "no-such.env", DEBUG="true")

        assert config["TRADING_MODE"] == "dry_run"

    def test_comments_and_blank_lines_are_ignored(self, load, write):
        env_file = write(".env", "# a comment\n\nDEBUG=true\n# TRADING_MODE=live\n")

        assert load(env_file=env_file)["TRADING_MODE"] == "dry_run"

    def test_quotes_around_a_value_are_removed(self, load, write):
        env_file = write(".env", "DEBUG=true\nBINGX_API_SECRET=\"two words\"\nBINGX_API_KEY='k3y'\n")

        config = load(env_file=env_file)

        assert (config["BINGX_API_SECRET"], config["BINGX_API_KEY"]) == ("two words", "k3y")

    def test_its_bad_values_are_reported_like_any_other(self, error, write):
        env_file = write(".env", "DEBUG=true\nTRADING_MODE=paper\n")

        assert "TRADING_MODE" in error(env_file=env_file)

    def test_it_leaves_the_given_mapping_and_os_environ_unchanged(self, tmp_path, write):
        env_file = write(".env", "DEBUG=true\nTVBINGX_PROBE_FROM_FILE=1\n")
        mapping = {"TRADING_MODE": "demo"}
        environ_before = dict(os.environ)

        load_config(mapping, env_file=env_file, base_dir=tmp_path)

        assert mapping == {"TRADING_MODE": "demo"}
        assert dict(os.environ) == environ_before


# --- NAME_FILE (container secrets) ---------------------------------------------------------------


class TestFileVariants:
    @pytest.mark.parametrize(
        "name",
        ["SECRET_KEY", "BINGX_API_KEY", "BINGX_API_SECRET", "TELEGRAM_BOT_TOKEN", "TRADINGVIEW_WEBHOOK_TOKEN"],
    )
    def test_a_secret_is_read_from_the_file_named_by_name_file(self, load, write, name):
        path = write(name.lower(), "s3cr3t-value\n")

        assert load(DEBUG="true", **{f"{name}_FILE": str(path)})[name] == "s3cr3t-value"

    def test_the_trailing_newline_is_not_part_of_the_secret(self, load, write):
        path = write("secret_key", "s3cr3t-value\r\n")

        assert load(DEBUG="true", SECRET_KEY_FILE=str(path))["SECRET_KEY"] == "s3cr3t-value"

    def test_the_file_variant_takes_precedence_over_the_plain_variable(self, load, write):
        path = write("bingx_api_secret", "from-file\n")

        config = load(DEBUG="true", BINGX_API_SECRET="from-env", BINGX_API_SECRET_FILE=str(path))

        assert config["BINGX_API_SECRET"] == "from-file"

    def test_the_database_password_is_read_from_a_file(self, load, write):
        path = write("db_password", "p@ss:w/rd%\n")

        config = load(DEBUG="true", DATABASE_HOST="db", DATABASE_PASSWORD_FILE=str(path))

        assert config["DATABASES"]["default"]["PASSWORD"] == "p@ss:w/rd%"

    def test_the_database_url_is_read_from_a_file(self, load, write):
        path = write("database_url", "postgres://app:pw@db.internal:5432/tvbingx\n")

        database = load(DEBUG="true", DATABASE_URL_FILE=str(path))["DATABASES"]["default"]

        assert (database["ENGINE"], database["HOST"], database["PASSWORD"]) == (
            "django.db.backends.postgresql",
            "db.internal",
            "pw",
        )

    def test_production_secrets_may_come_from_files(self, load, write):
        config = load(
            SECRET_KEY_FILE=str(write("secret_key", PRODUCTION_SECRETS["SECRET_KEY"] + "\n")),
            FIELD_ENCRYPTION_KEYS_FILE=str(write("field_keys", f"{KEY_A},{KEY_B}\n")),
        )

        assert config["SECRET_KEY"] == PRODUCTION_SECRETS["SECRET_KEY"]
        assert config["FIELD_ENCRYPTION_KEYS"] == [KEY_A, KEY_B]

    def test_a_file_variant_may_be_set_in_the_env_file(self, load, write):
        path = write("bot_token", "123:ABC\n")
        env_file = write(".env", f"DEBUG=true\nTELEGRAM_BOT_TOKEN_FILE={path}\n")

        assert load(env_file=env_file)["TELEGRAM_BOT_TOKEN"] == "123:ABC"

    def test_an_empty_file_variant_is_ignored(self, load):
        assert load(DEBUG="true", BINGX_API_KEY="k", BINGX_API_KEY_FILE="")["BINGX_API_KEY"] == "k"

    def test_a_missing_file_is_an_error_naming_the_file_variable(self, error, tmp_path):
        missing = tmp_path / "nowhere" / "secret_key"

        message = error(DEBUG="true", SECRET_KEY_FILE=str(missing))

        assert "SECRET_KEY_FILE" in message
        assert str(missing) in message

    def test_a_missing_file_is_listed_with_other_bad_values(self, error, tmp_path):
        message = error(DEBUG="true", BINGX_API_SECRET_FILE=str(tmp_path / "nope"), TRADING_MODE="paper")

        assert "BINGX_API_SECRET_FILE" in message
        assert "TRADING_MODE" in message


# --- Database DSN --------------------------------------------------------------------------------


class TestDatabaseUrl:
    def test_a_postgres_url_configures_postgresql(self, load):
        database = load(DEBUG="true", DATABASE_URL="postgres://app:pw@db.internal:5433/tvbingx")["DATABASES"]["default"]

        assert database["ENGINE"] == "django.db.backends.postgresql"
        assert database["NAME"] == "tvbingx"
        assert database["USER"] == "app"
        assert database["PASSWORD"] == "pw"
        assert database["HOST"] == "db.internal"
        assert database["PORT"] == 5433

    @pytest.mark.parametrize("scheme", ["postgres", "postgresql", "pgsql"])
    def test_each_postgres_scheme_is_accepted(self, load, scheme):
        database = load(DEBUG="true", DATABASE_URL=f"{scheme}://app@db/tvbingx")["DATABASES"]["default"]

        assert database["ENGINE"] == "django.db.backends.postgresql"

    def test_postgres_connections_time_out_and_are_health_checked(self, load):
        database = load(DEBUG="true", DATABASE_URL="postgres://app@db/tvbingx")["DATABASES"]["default"]

        assert database["OPTIONS"]["connect_timeout"] == 5
        assert database["CONN_HEALTH_CHECKS"] is True

    def test_postgres_connections_come_from_one_pool_per_process_not_one_per_thread(self, load):
        database = load(DEBUG="true", DATABASE_URL="postgres://app@db/tvbingx", DATABASE_POOL_SIZE="7")["DATABASES"][
            "default"
        ]

        assert database["OPTIONS"]["pool"]["max_size"] == 7
        assert database["CONN_MAX_AGE"] == 0

    def test_a_sqlite_url_configures_sqlite_at_that_path(self, load, tmp_path):
        path = tmp_path / "other.sqlite3"

        database = load(DEBUG="true", DATABASE_URL=f"sqlite:///{path}")["DATABASES"]["default"]

        assert (database["ENGINE"], database["NAME"]) == ("django.db.backends.sqlite3", str(path))

    def test_it_wins_over_database_host(self, load):
        config = load(
            DEBUG="true",
            DATABASE_URL="postgres://app@from-url:5432/urldb",
            DATABASE_HOST="from-host",
            DATABASE_NAME="hostdb",
        )

        database = config["DATABASES"]["default"]
        assert (database["HOST"], database["NAME"]) == ("from-url", "urldb")

    def test_an_unsupported_scheme_is_an_error_naming_the_variable_and_the_accepted_schemes(self, error):
        message = error(DEBUG="true", DATABASE_URL="mysql://app:pw@db/tvbingx")

        assert "DATABASE_URL" in message
        assert "mysql" in message
        for accepted in ("postgres://", "postgresql://", "sqlite:///"):
            assert accepted in message

    def test_the_error_does_not_echo_the_password(self, error):
        message = error(DEBUG="true", DATABASE_URL="mysql://app:hunter2-secret@db/tvbingx")

        assert "hunter2-secret" not in message


class TestDatabaseFromParts:
    def test_database_host_builds_a_postgres_config(self, load):
        database = load(
            DEBUG="true",
            DATABASE_HOST="db.internal",
            DATABASE_PORT="6543",
            DATABASE_NAME="trading",
            DATABASE_USER="app",
            DATABASE_PASSWORD="pw",
        )["DATABASES"]["default"]

        assert database["ENGINE"] == "django.db.backends.postgresql"
        assert (database["HOST"], database["PORT"]) == ("db.internal", 6543)
        assert (database["NAME"], database["USER"], database["PASSWORD"]) == ("trading", "app", "pw")

    def test_port_name_and_user_have_defaults(self, load):
        database = load(DEBUG="true", DATABASE_HOST="db")["DATABASES"]["default"]

        assert (database["PORT"], database["NAME"], database["USER"]) == (5432, "tvbingx", "postgres")

    def test_no_password_means_an_empty_password(self, load):
        assert load(DEBUG="true", DATABASE_HOST="db")["DATABASES"]["default"]["PASSWORD"] == ""

    @pytest.mark.parametrize("password", ["p@ss:w/rd%", "a b+c?d#e&f=g", "%40already-quoted", "ünïcødé"])
    def test_a_password_with_special_characters_survives_intact(self, load, password):
        database = load(DEBUG="true", DATABASE_HOST="db", DATABASE_PASSWORD=password)["DATABASES"]["default"]

        assert database["PASSWORD"] == password

    def test_a_user_and_name_with_special_characters_survive_intact(self, load):
        database = load(DEBUG="true", DATABASE_HOST="db", DATABASE_USER="app@corp:x", DATABASE_NAME="my db+1")[
            "DATABASES"
        ]["default"]

        assert (database["USER"], database["NAME"]) == ("app@corp:x", "my db+1")

    def test_a_bad_port_is_an_error_naming_the_variable(self, error):
        message = error(DEBUG="true", DATABASE_HOST="db", DATABASE_PORT="0")

        assert "DATABASE_PORT" in message
        assert "1 to 65535" in message


class TestSqlite:
    def test_without_url_or_host_it_uses_sqlite(self, load):
        database = load(DEBUG="true", DATABASE_NAME="ignored", DATABASE_USER="ignored")["DATABASES"]["default"]

        assert database["ENGINE"] == "django.db.backends.sqlite3"

    def test_sqlite_path_is_honoured(self, load, tmp_path):
        path = tmp_path / "data" / "custom.sqlite3"

        database = load(DEBUG="true", SQLITE_PATH=str(path))["DATABASES"]["default"]

        assert database["NAME"] == str(path)

    def test_a_relative_sqlite_path_is_taken_from_the_project_folder(self, load, tmp_path):
        database = load(DEBUG="true", SQLITE_PATH="var/data.sqlite3")["DATABASES"]["default"]

        assert database["NAME"] == str(tmp_path / "var" / "data.sqlite3")

    def test_sqlite_writers_wait_for_the_lock(self, load):
        assert load(DEBUG="true")["DATABASES"]["default"]["OPTIONS"]["timeout"] == 20

    def test_sqlite_transactions_take_the_write_lock_when_they_begin(self, load):
        # A deferred transaction that reads and then writes fails at once while another thread writes.
        options = load(DEBUG="true")["DATABASES"]["default"]["OPTIONS"]
        assert options["transaction_mode"] == "IMMEDIATE"
        assert "journal_mode=WAL" in options["init_command"]


# --- Bad values ----------------------------------------------------------------------------------

LEVERAGE_RANGE = "1 to 125"
BAD_VALUES = [
    pytest.param("TRADING_MODE", "paper", ["dry_run", "demo", "live"], id="TRADING_MODE=paper"),
    pytest.param("DEFAULT_MARGIN_MODE", "hedge", ["isolated", "cross"], id="DEFAULT_MARGIN_MODE=hedge"),
    pytest.param("DEFAULT_LEVERAGE", "0", [LEVERAGE_RANGE], id="DEFAULT_LEVERAGE=0"),
    pytest.param("DEFAULT_LEVERAGE", "126", [LEVERAGE_RANGE], id="DEFAULT_LEVERAGE=126"),
    pytest.param("DEFAULT_LEVERAGE", "-3", [LEVERAGE_RANGE], id="DEFAULT_LEVERAGE=-3"),
    pytest.param(
        "DEFAULT_LEVERAGE",
        "ten",
        [LEVERAGE_RANGE],
        id="DEFAULT_LEVERAGE=ten",
    ),
    pytest.param(
        "PORT",
        "http",
        ["1 to 65535"],
        id="PORT=http",
    ),
    pytest.param("PORT", "70000", ["1 to 65535"], id="PORT=70000"),
    pytest.param("DEBUG", "maybe", ["true", "false"], id="DEBUG=maybe"),
    pytest.param("HTTPS", "sometimes", ["true", "false"], id="HTTPS=sometimes"),
    pytest.param("TELEGRAM_ADMIN_IDS", "123,abc", ["abc", "whole numbers"], id="TELEGRAM_ADMIN_IDS=123,abc"),
    pytest.param("FIELD_ENCRYPTION_KEYS", "not-a-key", ["Fernet", "32 bytes"], id="FIELD_ENCRYPTION_KEYS=not-a-key"),
    pytest.param("LOG_LEVEL", "verbose", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], id="LOG_LEVEL=verbose"),
]


class TestBadValues:
    @pytest.mark.parametrize("name, value, accepted", BAD_VALUES)
    def test_it_stops_start_up_naming_the_variable_and_the_accepted_values(self, error, name, value, accepted):
        message = error(**{"DEBUG": "true", name: value})

        assert name in message
        for fragment in accepted:
            assert fragment in message

    def test_a_non_numeric_leverage_is_an_error_naming_the_variable(self, error):
        message = error(DEBUG="true", DEFAULT_LEVERAGE="ten")

        assert "DEFAULT_LEVERAGE" in message
        assert "ten" in message

    def test_the_message_points_at_env_example(self, error):
        assert ".env.example" in error(DEBUG="true", TRADING_MODE="paper")

    def test_several_bad_values_are_listed_in_one_error(self, error):
        message = error(
            DEBUG="maybe",
            TRADING_MODE="paper",
            DEFAULT_MARGIN_MODE="hedge",
            DEFAULT_LEVERAGE="126",
            PORT="70000",
            TELEGRAM_ADMIN_IDS="123,abc",
            FIELD_ENCRYPTION_KEYS="not-a-key",
            LOG_LEVEL="verbose",
        )

        for name in (
            "DEBUG",
            "TRADING_MODE",
            "DEFAULT_MARGIN_MODE",
            "DEFAULT_LEVERAGE",
            "PORT",
            "TELEGRAM_ADMIN_IDS",
            "FIELD_ENCRYPTION_KEYS",
            "LOG_LEVEL",
        ):
            assert f"- {name}" in message, name

    def test_a_bad_database_url_is_listed_with_other_bad_values(self, error):
        message = error(DEBUG="true", TRADING_MODE="paper", DATABASE_URL="mysql://app@db/tvbingx")

        assert "TRADING_MODE" in message
        assert "DATABASE_URL" in message

    def test_missing_production_secrets_are_listed_with_other_bad_values(self, error):
        message = error(TRADING_MODE="paper")

        assert "TRADING_MODE" in message
        assert "SECRET_KEY" in message
        assert "FIELD_ENCRYPTION_KEYS" in message

    def test_a_rejected_encryption_key_is_not_echoed(self, error):
        leaked = "this-secret-value-must-not-appear"

        assert leaked not in error(DEBUG="true", FIELD_ENCRYPTION_KEYS=f"{KEY_A},{leaked}")

    def test_a_bad_encryption_key_is_reported_by_position(self, error):
        assert "position 2" in error(DEBUG="true", FIELD_ENCRYPTION_KEYS=f"{KEY_A},not-a-key")

    @pytest.mark.parametrize("value", ["--5", "²"])
    def test_an_odd_telegram_id_is_an_error_naming_the_variable(self, error, value):
        assert "TELEGRAM_ADMIN_IDS" in error(DEBUG="true", TELEGRAM_ADMIN_IDS=f"1,{value}")


# --- Values --------------------------------------------------------------------------------------


class TestValues:
    def test_telegram_admin_ids_are_a_list_of_numbers(self, load):
        assert load(DEBUG="true", TELEGRAM_ADMIN_IDS="1, 2,3")["TELEGRAM_ADMIN_IDS"] == [1, 2, 3]

    def test_a_negative_telegram_id_is_accepted(self, load):
        assert load(DEBUG="true", TELEGRAM_ADMIN_IDS="-100123")["TELEGRAM_ADMIN_IDS"] == [-100123]

    def test_allowed_hosts_are_a_comma_separated_list(self, load):
        config = load(DEBUG="true", ALLOWED_HOSTS="tv.example.com, .example.org,,localhost ,")

        assert config["ALLOWED_HOSTS"] == ["tv.example.com", ".example.org", "localhost"]

    def test_csrf_trusted_origins_are_a_comma_separated_list(self, load):
        config = load(DEBUG="true", CSRF_TRUSTED_ORIGINS="https://tv.example.com,https://b.example.com")

        assert config["CSRF_TRUSTED_ORIGINS"] == ["https://tv.example.com", "https://b.example.com"]

    def test_two_encryption_keys_keep_their_order(self, load):
        assert load(DEBUG="true", FIELD_ENCRYPTION_KEYS=f"{KEY_B}, {KEY_A}")["FIELD_ENCRYPTION_KEYS"] == [KEY_B, KEY_A]

    def test_whitespace_around_values_is_ignored(self, load):
        config = load(
            DEBUG=" true ",
            TRADING_MODE="  live\t",
            DEFAULT_LEVERAGE=" 10 ",
            BINGX_API_KEY=" key ",
            REDIS_URL=" redis://127.0.0.1:6379/0 ",
        )

        assert config["DEBUG"] is True
        assert config["TRADING_MODE"] == "live"
        assert config["DEFAULT_LEVERAGE"] == 10
        assert config["BINGX_API_KEY"] == "key"
        assert config["REDIS_URL"] == "redis://127.0.0.1:6379/0"

    def test_an_empty_or_blank_value_means_the_default(self, load):
        config = load(DEBUG="true", TRADING_MODE="", DEFAULT_LEVERAGE="   ", ALLOWED_HOSTS="")

        assert (config["TRADING_MODE"], config["DEFAULT_LEVERAGE"]) == ("dry_run", 5)
        assert config["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost"]

    @pytest.mark.parametrize("value", ["true", "True", "TRUE", "1", "yes", "on"])
    def test_true_booleans(self, load, value):
        assert load(DEBUG=value)["DEBUG"] is True

    @pytest.mark.parametrize("value", ["false", "False", "0", "no", "off"])
    def test_false_booleans(self, load, value):
        assert load(PRODUCTION_SECRETS, DEBUG=value)["DEBUG"] is False

    @pytest.mark.parametrize("mode", ["dry_run", "demo", "live"])
    def test_every_trading_mode_is_accepted(self, load, mode):
        assert load(DEBUG="true", TRADING_MODE=mode)["TRADING_MODE"] == mode

    @pytest.mark.parametrize("leverage", ["1", "125"])
    def test_leverage_limits_are_inclusive(self, load, leverage):
        assert load(DEBUG="true", DEFAULT_LEVERAGE=leverage)["DEFAULT_LEVERAGE"] == int(leverage)

    def test_cross_margin_is_accepted(self, load):
        assert load(DEBUG="true", DEFAULT_MARGIN_MODE="cross")["DEFAULT_MARGIN_MODE"] == "cross"

    def test_redis_url_is_kept_as_given(self, load):
        assert load(DEBUG="true", REDIS_URL="redis://:pw@redis:6379/1")["REDIS_URL"] == "redis://:pw@redis:6379/1"

    @pytest.mark.parametrize("value", ["$ecret", "$BINGX_API_KEY", "$BINGX_API_SECRET"])
    def test_a_value_starting_with_a_dollar_sign_is_taken_literally(self, load, value):
        config = load(DEBUG="true", BINGX_API_KEY="the-key", BINGX_API_SECRET=value)

        assert config["BINGX_API_SECRET"] == value
