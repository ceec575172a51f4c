"""``manage.py runbot`` as it runs in production: its own process, polling a Bot API (the fake), until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.telegram import fake_telegram

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:TEST"
ADMIN_ID = 4242


def bot_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A production-like environment with its own SQLite file (the test database lives in this process only)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tvbingx.settings",
        "TVBINGX_ENV_FILE": "",
        "DEBUG": "false",
        "DATABASE_URL": "",
        "SQLITE_PATH": str(tmp_path / "bot.sqlite3"),
        "LOG_LEVEL": "INFO",
        "TELEGRAM_ADMIN_IDS": str(ADMIN_ID),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "MARKET_DATA_SOURCE": "snapshot",
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True, **kwargs)


def test_it_refuses_to_start_without_a_token(tmp_path):
    bot = manage("runbot", env=bot_env(tmp_path, TELEGRAM_BOT_TOKEN=""), stderr=subprocess.PIPE)

    _, stderr = bot.communicate(timeout=60)

    assert bot.returncode != 0
    assert "TELEGRAM_BOT_TOKEN is empty" in stderr


@pytest.fixture(scope="module")
def migrated_env(tmp_path_factory):
    env = bot_env(tmp_path_factory.mktemp("runbot"))
    migrate = manage("migrate", "-v0", env=env, stderr=subprocess.PIPE)
    assert migrate.wait(120) == 0, migrate.stderr.read()
    return env


def test_it_says_when_telegram_refuses_the_token(migrated_env):
    with fake_telegram(token="999:OTHER") as tg:
        env = {**migrated_env, "TELEGRAM_API_BASE_URL": tg.base_url, "TELEGRAM_ADMIN_IDS": ""}
        bot = manage("runbot", env=env, stderr=subprocess.PIPE)
        _, stderr = bot.communicate(timeout=60)

    assert bot.returncode == 1
    assert "Telegram refused TELEGRAM_BOT_TOKEN" in stderr
    assert TOKEN not in stderr


def test_it_says_when_the_bot_api_cannot_be_reached(migrated_env):
    # The discard port: connection refused.
    env = {**migrated_env, "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9", "TELEGRAM_ADMIN_IDS": ""}
    bot = manage("runbot", env=env, stderr=subprocess.PIPE)
    _, stderr = bot.communicate(timeout=60)

    assert bot.returncode == 1
    assert "Cannot reach the Bot API at http://127.0.0.1:9" in stderr


def test_it_polls_answers_a_bootstrapped_admin_and_exits_0_on_sigterm(migrated_env):
    with fake_telegram(token=TOKEN, bot_username="tvbingx_bot") as tg:
        env = {**migrated_env, "TELEGRAM_API_BASE_URL": tg.base_url}
        bot = manage("runbot", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first_poll = tg.wait_for_call("getUpdates", timeout=30)
            tg.send_text(ADMIN_ID, "/start")
            tg.send_text(ADMIN_ID + 1, "/start")  # a stranger: no answer
            menu = tg.wait_for_call("sendMessage", after=first_poll["index"])
            bot.send_signal(signal.SIGTERM)
            stdout, stderr = bot.communicate(timeout=30)
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()

    assert bot.returncode == 0, stderr
    assert menu["params"]["chat_id"] == str(ADMIN_ID)
    assert "(admin)" in menu["params"]["text"]
    assert [c["params"]["chat_id"] for c in tg.calls("sendMessage")] == [str(ADMIN_ID)]
    startup = [c["method"] for c in tg.calls() if c["index"] <= first_poll["index"]]
    assert startup == ["getMe", "setMyCommands", "deleteWebhook", "getUpdates"]
    assert [c["command"] for c in tg.commands()][:2] == ["start", "status"]
    assert tg.calls("deleteWebhook")[0]["params"]["drop_pending_updates"] == "true"
    assert first_poll["params"]["allowed_updates"] == ["message", "callback_query"]
    assert f"Whitelisted {ADMIN_ID} as admin" in stdout
    assert TOKEN not in stderr  # httpx would log every request URL, token included, at INFO
