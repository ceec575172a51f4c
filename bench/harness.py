"""What the benchmarks share: a throwaway PostgreSQL database and role, a Redis db, the app's environment, the
processes they start and stop, their logs, statistics and machine notes.

Plain functions, parameterised by database name, role and Redis URL; each benchmark keeps its own names (so
two of them never share a database) and its own report. Import it after the benchmark made sure it runs in
the project's virtualenv (it needs psycopg and redis).
"""

from __future__ import annotations

import base64
import math
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"  # every request goes to this address only
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class BenchError(Exception):
    """The benchmark could not run (as opposed to: it ran and a target was missed)."""


# --- Statistics and machine notes ------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 6)))
    return ordered[min(rank, len(ordered)) - 1]


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_cores_line(load_before: str) -> str:
    """The report's first machine line: cores, load average before and now, platform."""
    return (
        f"  {os.cpu_count()} CPU cores; load average {load_before} before the run, {load_average()} after; "
        f"{platform.platform()}"
    )


# --- Database, role and Redis ----------------------------------------------------------------------------


def database_url(db_name: str, db_role: str) -> str:
    return f"postgres://{db_role}@127.0.0.1:5432/{db_name}"


def pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        raise BenchError(f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres: {error}") from error


def database_recreate(db_name: str, db_role: str, connection_limit: int) -> str:
    """A fresh database owned by a fresh role (not a superuser: its connection limit holds); returns the
    server's version and durability settings, for the report."""
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {db_role}")
        conn.execute(f"CREATE ROLE {db_role} LOGIN CONNECTION LIMIT {int(connection_limit)}")
        conn.execute(f"CREATE DATABASE {db_name} OWNER {db_role}")
        version = conn.execute("SHOW server_version").fetchone()[0]
        durability = ", ".join(
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}" for name in ("fsync", "synchronous_commit")
        )
    return f"PostgreSQL {version} ({durability})"


def database_drop(db_name: str, db_role: str) -> None:
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {db_role}")


def redis_flush(redis_url: str) -> None:
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        client.flushdb()
        client.close()
    except redis.RedisError as error:
        raise BenchError(f"Redis is not reachable at {redis_url}: {error}") from error


def environment_cleanup(*, db_name: str, db_role: str, redis_url: str, database_created: bool, keep_db: bool) -> None:
    """Flush the Redis db and drop the database and its role (unless kept); failures are printed, not raised."""
    steps = [lambda: redis_flush(redis_url)]
    if database_created and not keep_db:
        steps.append(lambda: database_drop(db_name, db_role))
    for step in steps:
        try:
            step()
        except (BenchError, psycopg.Error) as error:
            print(f"cleanup: {error}", file=sys.stderr)
    if keep_db and database_created:
        print(
            f"Kept the database {db_name} and the role {db_role} (--keep-db); drop them with: "
            f"psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE {db_name}' -c 'DROP ROLE {db_role}'"
        )


# --- The app's environment and processes -----------------------------------------------------------------


def app_env(*, settings_module: str, database_url: str, redis_url: str, trading_mode: str, **extra: str) -> dict:
    """Only what the app needs: nothing from the caller's environment or a .env file leaks in."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        TVBINGX_ENV_FILE="",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MARKET_DATA_SOURCE="snapshot",
        TRADING_MODE=trading_mode,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def python() -> str:
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def run_python(env: dict[str, str], *command: str, label: str | None = None) -> str:
    """The project's Python on command, in the project's folder; its output, or BenchError naming label."""
    completed = subprocess.run([python(), *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        shown = label if label is not None else " ".join(command)[:60]
        raise BenchError(f"{shown} failed:\n{completed.stdout[-2000:]}{completed.stderr[-4000:]}")
    return completed.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """command in its own session (so it can be stopped with its children), its output to log_path."""
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


def server_start(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """One uvicorn process, configured as `manage.py serve` runs it (uvloop, httptools, no lifespan,
    no proxy headers), with the access log off."""
    command = [
        python(),
        "-m",
        "uvicorn",
        "tvbingx.asgi:application",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-proxy-headers",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return process_start(command, env, log_path)


def server_wait_ready(process: subprocess.Popen, port: int, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}:\n{tail(log_path)}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"the server did not listen within {timeout:g} s:\n{tail(log_path)}")


def process_stop(process: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM to a process this script started (by its pid); after timeout, SIGKILL to its session."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the process and its children
        except OSError:
            process.kill()
        process.wait(timeout=5)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """SIGTERM cleans up like Ctrl+C: the benchmark's finally block runs."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


# --- Logs ------------------------------------------------------------------------------------------------


def log_messages(text: str, line_pattern: re.Pattern) -> Counter:
    """The log's messages at WARNING or above (line_pattern's two groups: level, message; not traceback lines),
    counted; digits folded so repeats group."""
    found: Counter = Counter()
    for line in text.splitlines():
        match = line_pattern.search(line)
        if match:
            found[re.sub(r"\d+", "N", f"{match.group(1)} {match.group(2)}")[:160]] += 1
    return found


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(read_text(path).splitlines()[-lines:])
