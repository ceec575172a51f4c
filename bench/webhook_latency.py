#!/usr/bin/env python
"""Acknowledgement latency and throughput of POST /webhook/tradingview on PostgreSQL, beside a baseline.

    .venv/bin/python bench/webhook_latency.py [--seconds 20] [--rate 100] [--concurrency 32]

Creates a fresh PostgreSQL database, migrates and bootstraps it, starts one uvicorn process on a free
loopback port (bench.settings: the project's settings plus POST /bench/baseline, which only inserts the
raw body), and loads each endpoint twice:

- open loop at a fixed rate: sends follow a fixed timetable and latency is measured from each request's
  scheduled time, so a slow answer cannot hold back the next sends (no coordinated omission);
- saturation: a closed loop of --concurrency workers, each sending its next request when the last answers.

It prints p50/p95/p99/max, errors and requests/s per endpoint, and the ratios against the targets (webhook
p99 <= 25 ms at 100 requests/s; webhook throughput >= 0.6 x the baseline's). Missing a target is reported,
not failed: the exit status is 0 when the benchmark ran, 1 when a phase got no successful answer at all,
2 when it could not run (no PostgreSQL or Redis, migrate failed, the server did not start).
Everything it creates (database, Redis db, server process, temporary files) is removed at the end.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:
    import aiohttp
    import psycopg
    import redis
except ImportError:  # started with a Python outside the project's virtualenv: use the virtualenv's
    if VENV_PYTHON.exists() and os.path.abspath(sys.executable) != str(VENV_PYTHON):
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    raise

if str(ROOT) not in sys.path:  # started as a script: make the bench package importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - after the virtualenv check above
    HOST,
    PG_ADMIN_URL,  # noqa: F401 - webhook_cpu.py reads it from here
    BenchError,
    app_env,
    database_recreate,
    database_url,
    environment_cleanup,
    free_port,
    load_average,
    log_messages,
    machine_cores_line,
    percentile,
    process_stop,
    read_text,
    redis_flush,
    run_python,
    server_start,
    server_wait_ready,
    sigterm_as_interrupt,
    tail,
)

DB_NAME = "tvbingx_bench"
# The server connects as its own role, not as a superuser, so the role's connection limit holds: whatever the
# server does with connections, it cannot take all of PostgreSQL's max_connections from others on this cluster.
DB_ROLE = "tvbingx_bench"
DB_URL = database_url(DB_NAME, DB_ROLE)
DB_ADMIN_BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/14"
WEBHOOK_PATH = "/webhook/tradingview"
BASELINE_PATH = "/bench/baseline"
TARGET_P99_MS = 25.0
TARGET_THROUGHPUT_RATIO = 0.6
BASELINE_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS bench_raw_body ("
    "id bigserial PRIMARY KEY, body text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
)
MAX_REQUESTS_PER_PHASE = 500_000  # a hard bound whatever the arguments


# --- Load generation -------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    endpoint: str
    load: str
    attempted: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    max_send_lag: float = 0.0  # open loop: how late the client started a send, at worst
    started_drained: bool = True  # the server had finished the previous phase's requests when this one began

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Nearest-rank percentile, in milliseconds."""
        value = percentile(self.latencies, fraction)
        return None if value is None else value * 1000

    def max_ms(self) -> float | None:
        return max(self.latencies) * 1000 if self.latencies else None


class AlertBodies:
    """A realistic, valid alert per call, each with its own alert_id (so each one is stored and handed over)."""

    def __init__(self, secret: str, run_id: str):
        self.secret = secret
        self.run_id = run_id
        self.count = 0

    def __call__(self) -> bytes:
        self.count += 1
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps(
            {
                "secret": self.secret,
                "alert_id": f"bench|{self.run_id}|BTCUSDT.P|5|{self.count}",
                "sent_at": sent_at,
                "symbol": "BTCUSDT.P",
                "action": "buy",
                "order_type": "market",
                "price": "97250.5",
                "size": {"mode": "usdt", "value": "100"},
                "leverage": 5,
                "sl": {"pct": "1.5"},
                "tp": [{"pct": "1", "size_pct": 50}, {"pct": "2.5", "size_pct": 50}],
                "strategy": "bench-ema-cross",
                "timeframe": "5",
            }
        ).encode()


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, result: PhaseResult) -> bool:
    """One request; True when it got the expected 202. Failures are counted by kind."""
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            text = await response.text()
            if response.status == 202:
                return True
            kind = f"HTTP {response.status}"
            if len(result.error_samples) < 3:
                result.error_samples.append(f"{kind}: {' '.join(text.split())[:200]}")
    except TimeoutError:
        kind = "timeout"
    except aiohttp.ClientError as error:
        kind = type(error).__name__
        if len(result.error_samples) < 3:
            result.error_samples.append(f"{kind}: {error}")
    result.errors[kind] += 1
    return False


async def open_loop(
    session: aiohttp.ClientSession, url: str, make_body: Callable[[], bytes], *, rate: float, seconds: float, name: str
) -> PhaseResult:
    """Fixed-rate load: request i is due at start + i / rate, whatever happened to the earlier ones."""
    loop = asyncio.get_running_loop()
    total = min(int(rate * seconds), MAX_REQUESTS_PER_PHASE)
    result = PhaseResult(name, f"open loop {rate:g}/s")
    last_done = 0.0

    async def one(due: float) -> None:
        nonlocal last_done
        result.max_send_lag = max(result.max_send_lag, loop.time() - due)
        if await _post(session, url, make_body(), result):
            done = loop.time()
            result.latencies.append(done - due)  # from the scheduled send time: no coordinated omission
            last_done = max(last_done, done)

    start = loop.time() + 0.05
    tasks = []
    for index in range(total):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
        result.attempted += 1
    await asyncio.gather(*tasks)
    result.elapsed = (last_done or loop.time()) - start
    return result


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    make_body: Callable[[], bytes],
    *,
    concurrency: int,
    seconds: float,
    name: str,
) -> PhaseResult:
    """Saturation: each worker sends its next request as soon as the previous one is answered."""
    loop = asyncio.get_running_loop()
    result = PhaseResult(name, f"closed loop c={concurrency}")
    deadline = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < deadline and result.attempted < MAX_REQUESTS_PER_PHASE:
            result.attempted += 1
            sent = loop.time()
            if await _post(session, url, make_body(), result):
                result.latencies.append(loop.time() - sent)

    start = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = loop.time() - start
    return result


async def run_load(base_url: str, secret: str, args: argparse.Namespace) -> tuple[list[PhaseResult], dict]:
    run_id = secrets.token_hex(4)
    alerts = AlertBodies(secret, run_id)
    endpoints = [("webhook", base_url + WEBHOOK_PATH), ("baseline", base_url + BASELINE_PATH)]
    results: list[PhaseResult] = []
    warmup: dict[str, PhaseResult] = {}

    def session() -> aiohttp.ClientSession:
        # A fresh session per phase: no keep-alive connection left idle by one phase (and closed by the server
        # meanwhile) is reused by the next.
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=args.timeout),
            connector=aiohttp.TCPConnector(limit=max(256, args.concurrency), force_close=args.new_connections),
        )

    for name, url in endpoints:  # warm-up: imports, market snapshot, connections, caches
        async with session() as client:
            warmup[name] = await closed_loop(client, url, alerts, concurrency=4, seconds=args.warmup, name=name)
        if not warmup[name].ok:
            samples = "; ".join(warmup[name].error_samples) or dict(warmup[name].errors)
            raise BenchError(f"{name} answered no warm-up request with 202: {samples}")
    for name, url in endpoints:
        for load in ("open", "closed"):
            drained = await server_drained()
            if load == "open":
                print(f"  {name}: open loop at {args.rate:g} requests/s for {args.seconds:g} s ...", flush=True)
                async with session() as client:
                    phase = await open_loop(client, url, alerts, rate=args.rate, seconds=args.seconds, name=name)
            else:
                print(f"  {name}: closed loop, {args.concurrency} workers for {args.seconds:g} s ...", flush=True)
                async with session() as client:
                    phase = await closed_loop(
                        client, url, alerts, concurrency=args.concurrency, seconds=args.seconds, name=name
                    )
            phase.started_drained = drained
            results.append(phase)
    await server_drained()
    sent = {name: phase.ok for name, phase in warmup.items()}
    for phase in results:
        sent[phase.endpoint] += phase.ok
    return results, sent


async def server_drained(quiet_seconds: float = 1.0, limit_seconds: float = 30.0) -> bool:
    """Wait until the server stops writing: requests the client gave up on (timeouts) still run on the server,
    and must not spill into the next phase. True when the row counts stayed still for quiet_seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_seconds
    last, still_since = None, loop.time()
    try:
        with psycopg.connect(DB_ADMIN_BENCH_URL, autocommit=True, connect_timeout=5) as conn:
            while loop.time() < deadline:
                count = conn.execute(
                    "SELECT (SELECT count(*) FROM signals_app_signal) + (SELECT count(*) FROM bench_raw_body)"
                ).fetchone()[0]
                if count != last:
                    last, still_since = count, loop.time()
                elif loop.time() - still_since >= quiet_seconds:
                    return True
                await asyncio.sleep(0.25)
    except psycopg.Error as error:
        print(f"  (could not watch the server drain: {error})", flush=True)
    return False


# --- Environment: database, Redis, server ----------------------------------------------------------------


def server_env(token: str, settings_module: str) -> dict[str, str]:
    """Only what the server needs: nothing from the caller's environment or a .env file leaks in."""
    return app_env(
        settings_module=settings_module,
        database_url=DB_URL,
        redis_url=REDIS_URL,
        trading_mode="dry_run",
        TRADINGVIEW_WEBHOOK_TOKEN=token,
        ADMIN_PASSWORD=secrets.token_urlsafe(18),
    )


def manage(env: dict[str, str], *command: str) -> None:
    run_python(env, "manage.py", *command, label=f"manage.py {' '.join(command)}")


def baseline_table_create() -> None:
    with psycopg.connect(DB_URL.replace("postgres://", "postgresql://"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(BASELINE_TABLE_SQL)


LOG_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d [\d:,]+ )?(WARNING|ERROR|CRITICAL):? +(.*)$")


def stored_counts() -> dict[str, object]:
    """What the run left behind (read after the server stopped): signals by status, baseline rows, hand-overs."""
    counts: dict[str, object] = {"signals": {}, "baseline_rows": "?", "handovers": "?"}
    try:
        with psycopg.connect(DB_ADMIN_BENCH_URL, connect_timeout=5) as conn:
            counts["signals"] = dict(
                conn.execute("SELECT status, count(*) FROM signals_app_signal GROUP BY status").fetchall()
            )
            counts["baseline_rows"] = conn.execute("SELECT count(*) FROM bench_raw_body").fetchone()[0]
    except psycopg.Error as error:
        counts["error"] = f"database: {error}"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
        counts["handovers"] = client.llen("celery")
        client.close()
    except redis.RedisError as error:
        counts["error"] = f"redis: {error}"
    return counts


# --- Report ----------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(
    results: list[PhaseResult],
    args: argparse.Namespace,
    *,
    pg_version: str,
    stored: dict,
    sent: dict,
    server_log: str,
    load_before: str,
) -> None:
    header = (
        f"{'endpoint':<9} {'load':<18} {'sent':>7} {'ok':>7} {'errors':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}"
    )
    print()
    print(f"Results ({args.seconds:g} s per phase)")
    print(header)
    print("-" * len(header))
    for phase in results:
        print(
            f"{phase.endpoint:<9} {phase.load:<18} {phase.attempted:>7} {phase.ok:>7} {sum(phase.errors.values()):>6} "
            f"{_ms(phase.percentile_ms(0.50)):>8} {_ms(phase.percentile_ms(0.95)):>8} "
            f"{_ms(phase.percentile_ms(0.99)):>8} {_ms(phase.max_ms()):>8} {phase.throughput:>8.1f}"
        )
    for phase in results:
        if phase.load.startswith("open") and phase.throughput < 0.95 * args.rate:
            print(
                f"  {phase.endpoint} {phase.load}: the server answered only {phase.throughput:.1f} of the "
                f"{args.rate:g} requests/s offered: it is past saturation, and the latencies are queueing time"
            )
        if not phase.started_drained:
            print(f"  {phase.endpoint} {phase.load}: the server was still busy with the previous phase at its start")
        if phase.errors:
            print(f"  {phase.endpoint} {phase.load} errors: {dict(phase.errors)}")
            for sample in phase.error_samples:
                print(f"    e.g. {sample}")

    by_key = {(phase.endpoint, phase.load.split()[0]): phase for phase in results}
    webhook_open, baseline_open = by_key[("webhook", "open")], by_key[("baseline", "open")]
    webhook_sat, baseline_sat = by_key[("webhook", "closed")], by_key[("baseline", "closed")]
    p99 = webhook_open.percentile_ms(0.99)
    base_p99 = baseline_open.percentile_ms(0.99)
    ratio = webhook_sat.throughput / baseline_sat.throughput if baseline_sat.throughput else 0.0

    def verdict(met: bool) -> str:
        return "MET" if met else "MISSED"

    print()
    print("Targets")
    p99_note = "" if args.rate == 100 else f" (measured at {args.rate:g}/s, not 100/s)"
    print(
        f"  webhook p99 at {args.rate:g} req/s:     {_ms(p99):>7} ms    target <= {TARGET_P99_MS:g} ms   "
        f"{verdict(p99 is not None and p99 <= TARGET_P99_MS and not webhook_open.errors)}{p99_note}"
    )
    print(
        f"  throughput webhook/baseline:  {webhook_sat.throughput:.1f} / {baseline_sat.throughput:.1f} req/s "
        f"= {ratio:.2f}    target >= {TARGET_THROUGHPUT_RATIO:g}   {verdict(ratio >= TARGET_THROUGHPUT_RATIO)}"
    )
    if p99 is not None and base_p99:
        print(
            f"  p99 webhook/baseline at {args.rate:g} req/s: {_ms(p99)} / {_ms(base_p99)} ms "
            f"= {p99 / base_p99:.2f}x (for information)"
        )

    print()
    print("Run notes")
    signals = stored["signals"]
    if "error" in stored:
        print(f"  could not count what was stored: {stored['error']}")
    print(
        f"  stored: {sum(signals.values())} signals {signals} for {sent['webhook']} webhook 202s; "
        f"{stored['baseline_rows']} baseline rows for {sent['baseline']} baseline 202s (warm-up included)"
    )
    print(
        f"  hand-overs published to Redis ({REDIS_URL}, queue 'celery'): {stored['handovers']}; no Celery worker "
        "runs, and the acknowledgement never waits for one (the publish happens on a background thread)"
    )
    lag = max(phase.max_send_lag for phase in results if phase.load.startswith("open"))
    print(
        f"  client: worst send lag behind the timetable {lag * 1000:.1f} ms (counted in the latencies); "
        f"{'new connection per request' if args.new_connections else 'keep-alive connections'}; "
        f"timeout {args.timeout:g} s"
    )
    messages = log_messages(server_log, LOG_LINE)
    print(f"  server log: {sum(messages.values())} messages at WARNING or above" + (":" if messages else ""))
    for message, count in messages.most_common(5):
        print(f"    {count} x {message}")

    print()
    print("Machine")
    print(machine_cores_line(load_before))
    print(f"  Python {platform.python_version()}; {pg_version}; Redis at {REDIS_URL}")
    print(
        "  client (aiohttp, one process) and server (one uvicorn process: uvloop + httptools, Django ASGI, "
        "each request's sync code on its own thread) share these cores with PostgreSQL and Redis (and with "
        "anything else running, see the load average): absolute figures are pessimistic; the webhook/baseline "
        "ratios are the comparable part"
    )


# --- Main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each measured phase (default 20)")
    parser.add_argument("--rate", type=float, default=100, help="open-loop requests per second (default 100)")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop workers at saturation (default 32)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per endpoint (default 3)")
    parser.add_argument("--timeout", type=float, default=10, help="per-request timeout in seconds (default 10)")
    parser.add_argument(
        "--new-connections", action="store_true", help="open a new connection per request (default: keep-alive)"
    )
    parser.add_argument(
        "--db-connection-limit",
        type=int,
        default=40,
        help=f"connection limit of the server's database role {DB_ROLE} (default 40)",
    )
    parser.add_argument(
        "--settings",
        default="bench.settings",
        help="settings module of the server (default bench.settings); it must route /bench/baseline (bench.urls)",
    )
    parser.add_argument("--server-log", metavar="PATH", help="keep the server's log in this file (default: discarded)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DB_NAME} database for inspection")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be more than 0 and at most 600")
    if not 0 < args.rate <= 5000:
        parser.error("--rate must be more than 0 and at most 5000")
    if not 1 <= args.concurrency <= 512:
        parser.error("--concurrency must be from 1 to 512")
    if not 1 <= args.db_connection_limit <= 1000:
        parser.error("--db-connection-limit must be from 1 to 1000")
    if not 0 < args.warmup <= 60 or not 0 < args.timeout <= 60:
        parser.error("--warmup and --timeout must be more than 0 and at most 60")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sigterm_as_interrupt()
    workdir = Path(tempfile.mkdtemp(prefix="tvbingx-bench-"))
    log_path = Path(args.server_log).resolve() if args.server_log else workdir / "server.log"
    server = None
    database_created = False
    status = 0
    try:
        load_before = load_average()
        print(f"TVBingX webhook benchmark: database {DB_NAME}, Redis {REDIS_URL}, server settings {args.settings}")
        redis_flush(REDIS_URL)
        pg_version = database_recreate(DB_NAME, DB_ROLE, args.db_connection_limit)
        database_created = True
        token = "wh_bench_" + secrets.token_urlsafe(24)
        env = server_env(token, args.settings)
        print("  migrate + bootstrap ...", flush=True)
        manage(env, "migrate", "--noinput")
        manage(env, "bootstrap")
        baseline_table_create()
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        server = server_start(env, port, log_path)
        server_wait_ready(server, port, log_path)
        print(f"  server up at {base_url} (pid {server.pid}); warm-up {args.warmup:g} s per endpoint ...", flush=True)
        results, sent = asyncio.run(run_load(base_url, token, args))
        if server.poll() is not None:
            raise BenchError(f"the server exited during the run:\n{tail(log_path)}")
        process_stop(server, timeout=15)
        stored = stored_counts()
        report(
            results,
            args,
            pg_version=pg_version,
            stored=stored,
            sent=sent,
            server_log=read_text(log_path),
            load_before=load_before,
        )
        if any(phase.ok == 0 for phase in results):
            status = 1
    except BenchError as error:
        print(f"\nThe benchmark could not run: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("\nInterrupted; cleaning up.", file=sys.stderr)
        status = 130
    finally:
        process_stop(server, timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
        environment_cleanup(
            db_name=DB_NAME,
            db_role=DB_ROLE,
            redis_url=REDIS_URL,
            database_created=database_created,
            keep_db=args.keep_db,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
