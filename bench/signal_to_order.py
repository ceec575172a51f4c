#!/usr/bin/env python
"""Signal-to-order latency: a TradingView alert posted to the webhook until the (fake) BingX accepted its order.

    .venv/bin/python bench/signal_to_order.py [--alerts 200] [--interval-ms 50] [--worker-pool solo]

Runs the production path end to end on this machine: one uvicorn process (as `manage.py serve`) takes the
alert, stores it in PostgreSQL and hands it to Celery on Redis; a Celery worker validates it, checks the risk
limits, checks margin mode and leverage on BingX and places the order through our adapter and ccxt. BingX is
the protocol-faithful fake (tests/fakes/bingx), run on a thread of this process, so the time the fake accepted
each order and the time this process sent its alert come from the same clock.

Beside it, the floor: a bare ccxt `create_order` round trip to the same fake, from this process.

It prints p50/p95/p99/max per phase, the ratio to the floor, the targets (p50 <= 30 ms, p99 <= 100 ms),
where the time goes (per-stage p50/p99 from the timestamps the app stores), and machine notes. Missing a
target is reported, not failed: the exit status is 0 when the benchmark ran, 2 when it could not.
Everything it creates (database and role, Redis db, processes, temporary files) is removed at the end.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:
    import aiohttp
    import ccxt
    import psycopg
    import redis
except ImportError:  # started with a Python outside the project's virtualenv: use the virtualenv's
    if VENV_PYTHON.exists() and os.path.abspath(sys.executable) != str(VENV_PYTHON):
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    raise

if str(ROOT) not in sys.path:  # started as a script: make the fake importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - after the virtualenv check above
    HOST,
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
    process_start,
    process_stop,
    python,
    read_text,
    redis_flush,
    run_python,
    server_start,
    server_wait_ready,
    sigterm_as_interrupt,
    tail,
)
from tests.fakes.bingx import fake_bingx  # noqa: E402 - after the virtualenv check above

DB_NAME = "tvbingx_bench_s2o"
DB_ROLE = "tvbingx_bench_s2o"  # not a superuser: its connection limit holds
DB_URL = database_url(DB_NAME, DB_ROLE)
DB_ADMIN_BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/12"
WEBHOOK_PATH = "/webhook/tradingview"

SYMBOL = "BTC/USDT:USDT"  # ccxt's unified symbol, as the symbol profile names it
FAKE_SYMBOL = "BTC-USDT"  # BingX's
ALERT_SYMBOL = "BINANCE:BTCUSDT.P"
MARK_PRICE = Decimal("65000")
QTY = "0.001"
LEVERAGE, MAX_LEVERAGE, MARGIN_MODE = 5, 20, "isolated"
BALANCE = Decimal("10000000")
TARGET_P50_MS, TARGET_P99_MS = 30.0, 100.0
WAIT_FOR_ORDERS_SECONDS = 30.0  # after the last send, at most
ORDER_POLL_SECONDS = 0.02

# Run under the server's environment (django.setup()), after bootstrap: the default account trades live and
# automatically, one-way, BTC at 5x isolated, with limits that let every benchmark entry through.
ACCOUNT_SETUP = f"""
import json
import django
django.setup()
from django.conf import settings
from trading.audit import Actor
from trading.models import RiskLimits, SymbolProfile, TradingAccount
from trading.services import account_set_auto_trade

account = TradingAccount.objects.get(name=settings.TRADING_DEFAULT_USERNAME)
account.position_mode = "one_way"
account.save(update_fields=["position_mode", "updated_at"])
account_set_auto_trade(account=account, enabled=True, actor=Actor.system("bench"), reason="signal-to-order benchmark")
RiskLimits.objects.filter(account=account).update(
    max_open_positions=100, max_trades_per_day=1_000_000, max_notional_per_trade=None, max_daily_loss_usdt=None,
    max_daily_loss_pct=None, max_drawdown_pct=None, max_leverage={MAX_LEVERAGE}, cooldown_seconds=0,
    max_signal_lag_seconds=600, min_confidence=0, auto_min_confidence=0,
)
SymbolProfile.objects.update_or_create(
    account=account, symbol={SYMBOL!r},
    defaults=dict(enabled=True, leverage={LEVERAGE}, max_leverage={MAX_LEVERAGE}, margin_mode={MARGIN_MODE!r},
                  max_position_notional=None),
)
account.refresh_from_db()
print(json.dumps({{"account_id": account.pk, "mode": account.mode, "auto_trade": account.auto_trade,
                   "position_mode": account.position_mode, "has_keys": account.has_api_credentials}}))
"""


def client_order_id_for(*, account_id: int, signal_id: int, leg: str) -> str:
    """Copy of trading.rules.client_order_id_for (this process does not load Django); checked against the
    database at the end, so a change there shows up as a mismatch, not as wrong figures."""
    digest = hashlib.sha256(f"{account_id}:{signal_id}:{leg}".encode()).digest()
    return "tv" + base64.b32encode(digest).decode().lower().rstrip("=")[:30]


# --- Statistics ------------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


# --- Alerts ----------------------------------------------------------------------------------------------


@dataclass
class Alert:
    index: int
    phase: str
    action: str
    alert_id: str
    lag: float = 0.0  # how late the send started behind its timetable slot
    sent: float = 0.0  # time.time() just before the request was handed to the connection
    answered: float = 0.0
    http_status: int | None = None
    signal_id: int | None = None
    client_order_id: str | None = None
    error: str = ""
    accepted_at: float | None = None  # the fake's time.time() when it accepted the entry

    @property
    def latency(self) -> float | None:
        return None if self.accepted_at is None else self.accepted_at - self.sent


class AlertSender:
    """Alerts with their own alert_id, buy and sell alternating (one-way mode: the position nets out)."""

    def __init__(self, base_url: str, secret: str, account_id: int, session: aiohttp.ClientSession):
        self.url = base_url + WEBHOOK_PATH
        self.secret = secret
        self.account_id = account_id
        self.session = session
        self.run_id = secrets.token_hex(4)
        self.count = 0

    def next(self, phase: str) -> Alert:
        self.count += 1
        action = "buy" if self.count % 2 else "sell"
        return Alert(self.count, phase, action, f"s2o|{self.run_id}|{self.count}")

    async def send(self, alert: Alert) -> None:
        body = json.dumps(
            {
                "secret": self.secret,
                "alert_id": alert.alert_id,
                "symbol": ALERT_SYMBOL,
                "action": alert.action,
                "price": str(MARK_PRICE),
                "size": {"mode": "qty", "value": QTY},
            }
        ).encode()
        alert.sent = time.time()
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
                text = await response.text()
                alert.answered = time.time()
                alert.http_status = response.status
                if response.status == 202:
                    alert.signal_id = int(json.loads(text)["signal_id"])
                    alert.client_order_id = client_order_id_for(
                        account_id=self.account_id, signal_id=alert.signal_id, leg="entry"
                    )
                else:
                    alert.error = f"HTTP {response.status}: {' '.join(text.split())[:200]}"
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as error:
            alert.answered = time.time()
            alert.error = f"{type(error).__name__}: {error}"


async def wait_for_orders(fake_account, alerts: list[Alert], timeout: float) -> None:
    """Fill in accepted_at from the fake's orders, until every answered alert has its order or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        wanted = {a.client_order_id: a for a in alerts if a.client_order_id and a.accepted_at is None}
        if wanted:
            for order in fake_account.orders:
                alert = wanted.get(order.client_order_id)
                if alert is not None:
                    alert.accepted_at = order.accepted_at
        if all(a.accepted_at is not None for a in alerts if a.client_order_id) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(ORDER_POLL_SECONDS)


async def send_one_and_wait(sender: AlertSender, fake_account, phase: str, timeout: float) -> Alert:
    alert = sender.next(phase)
    await sender.send(alert)
    await wait_for_orders(fake_account, [alert], timeout)
    return alert


async def open_loop(sender: AlertSender, count: int, interval: float, phase: str) -> list[Alert]:
    """Alert i is due at start + i * interval whatever happened to the earlier ones (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    alerts = [sender.next(phase) for _ in range(count)]
    start = loop.time() + 0.05
    tasks = []
    for number, alert in enumerate(alerts):
        due = start + number * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        alert.lag = max(0.0, loop.time() - due)
        tasks.append(asyncio.create_task(sender.send(alert)))
    await asyncio.gather(*tasks)
    return alerts


@dataclass
class Run:
    cold: Alert | None = None
    warmup: list[Alert] = field(default_factory=list)
    steady: list[Alert] = field(default_factory=list)
    changing: list[Alert] = field(default_factory=list)  # entries that had to set margin mode and leverage
    netting: list[Alert] = field(default_factory=list)  # unmeasured entries that flatten between those


async def drive(base_url: str, token: str, account_id: int, bingx, fake_account, args: argparse.Namespace) -> Run:
    run = Run()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10), connector=aiohttp.TCPConnector(limit=64)
    ) as session:
        sender = AlertSender(base_url, token, account_id, session)
        # Warm-up, one at a time: the first alert also proves the worker is up (it may still be starting).
        print("  warm-up: first alert (waits for the worker) ...", flush=True)
        run.cold = await send_one_and_wait(sender, fake_account, "cold", timeout=90)
        if run.cold.accepted_at is None:
            raise BenchError(f"the first alert never reached the fake BingX ({run.cold.error or 'no order'})")
        for _ in range(args.warmup):
            run.warmup.append(await send_one_and_wait(sender, fake_account, "warm-up", timeout=10))
        print(f"  steady state: {args.alerts} alerts, one every {args.interval_ms:g} ms (open loop) ...", flush=True)
        run.steady = await open_loop(sender, args.alerts, args.interval_ms / 1000, "steady")
        await wait_for_orders(fake_account, run.steady, WAIT_FOR_ORDERS_SECONDS)
        if args.settings_changes:
            print(
                f"  {args.settings_changes} entries that must set margin mode and leverage first, one at a time ...",
                flush=True,
            )
            for _ in range(args.settings_changes):
                # BingX refuses a margin-mode change while a position is open: flatten first (not measured).
                if fake_account.positions:
                    run.netting.append(await send_one_and_wait(sender, fake_account, "netting", timeout=10))
                await asyncio.sleep(0.2)  # let the previous signal finish (positions read back) first
                fake_account.set_margin_mode(FAKE_SYMBOL, "cross")
                fake_account.set_leverage(FAKE_SYMBOL, "BOTH", LEVERAGE * 2)
                run.changing.append(await send_one_and_wait(sender, fake_account, "settings", timeout=10))
    return run


# --- Floor: bare ccxt ------------------------------------------------------------------------------------


@dataclass
class Floor:
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


def floor_measure(bingx, count: int) -> Floor:
    """A bare sync ccxt client (as trading/exchange/client.py configures it) placing market orders on its own
    fake account: latency = the create_order round trip."""
    key, secret = "floor-" + secrets.token_hex(8), secrets.token_hex(16)
    bingx.add_account(api_key=key, api_secret=secret, balance=BALANCE)
    exchange = ccxt.bingx(
        {
            "apiKey": key,
            "secret": secret,
            "timeout": 10_000,
            "enableRateLimit": False,
            "options": {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
        }
    )
    root = bingx.base_url.rstrip("/") + "/openApi"
    for section, url in list(exchange.urls["api"].items()):
        if isinstance(url, str):
            exchange.urls["api"][section] = root
    exchange.load_markets()
    result = Floor()
    run_id = secrets.token_hex(4)
    for number in range(count + 5):  # the first 5 warm the connection up and are not counted
        side = "buy" if number % 2 == 0 else "sell"
        start = time.time()
        try:
            exchange.create_order(SYMBOL, "market", side, float(QTY), None, {"clientOrderId": f"floor{run_id}{number}"})
        except ccxt.BaseError as error:
            result.errors[type(error).__name__] += 1
            continue
        if number >= 5:
            result.latencies.append(time.time() - start)
    session = getattr(exchange, "session", None)
    if session is not None:
        session.close()
    return result


# --- Environment: database, Redis, processes -------------------------------------------------------------


def server_env(*, token: str, settings_module: str, api_key: str, api_secret: str, bingx) -> dict[str, str]:
    """Only what the app needs: nothing from the caller's environment or a .env file leaks in."""
    return app_env(
        settings_module=settings_module,
        database_url=DB_URL,
        redis_url=REDIS_URL,
        trading_mode="live",
        BINGX_API_KEY=api_key,
        BINGX_API_SECRET=api_secret,
        BINGX_BASE_URL=bingx.base_url,
        BINGX_WS_URL=bingx.ws_url,
        TRADINGVIEW_WEBHOOK_TOKEN=token,
        ADMIN_PASSWORD=secrets.token_urlsafe(18),
    )


def worker_start(env: dict[str, str], args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    """A Celery worker as `make worker` runs it (default queue, log level INFO), with the chosen pool."""
    command = [
        python(),
        "-m",
        "celery",
        "-A",
        "tvbingx",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        args.worker_pool,
        "--hostname",
        f"s2o-bench-{os.getpid()}@%h",
    ]
    if args.worker_pool != "solo":
        command += ["--concurrency", str(args.concurrency)]
    return process_start(command, env, log_path)


def worker_wait_ready(process: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the Celery worker exited with {process.returncode}:\n{tail(log_path)}")
        if re.search(r"@\S+ ready\.", read_text(log_path)):
            return
        time.sleep(0.2)
    raise BenchError(f"the Celery worker was not ready within {timeout:g} s:\n{tail(log_path)}")


LOG_LINE = re.compile(r"(WARNING|ERROR|CRITICAL)[:/\]]? +(.*)$")


# --- What the database recorded --------------------------------------------------------------------------

STAGE_SQL = """
SELECT s.id, s.status, s.rejection_reason,
       extract(epoch FROM s.received_at), extract(epoch FROM s.validated_at),
       extract(epoch FROM s.risk_checked_at), extract(epoch FROM s.executing_at),
       extract(epoch FROM s.executed_at),
       o.client_order_id, o.status, extract(epoch FROM o.created_at), extract(epoch FROM o.submitted_at)
FROM signals_app_signal s
LEFT JOIN trading_order o ON o.signal_id = s.id AND o.purpose = 'entry'
"""


@dataclass
class Recorded:
    status: str
    reason: str
    received: float | None
    validated: float | None
    risk_checked: float | None
    executing: float | None
    executed: float | None
    client_order_id: str | None
    order_status: str | None
    order_created: float | None
    order_submitted: float | None


def recorded_signals() -> dict[int, Recorded]:
    def number(value):
        return None if value is None else float(value)

    with psycopg.connect(DB_ADMIN_BENCH_URL, connect_timeout=5) as conn:
        rows = conn.execute(STAGE_SQL).fetchall()
    return {
        row[0]: Recorded(
            row[1],
            row[2] or "",
            *(number(value) for value in row[3:8]),
            row[8],
            row[9],
            number(row[10]),
            number(row[11]),
        )
        for row in rows
    }


# Each stage: (label, start, end) as attribute names of an alert's timeline (see timeline()).
STAGES = (
    ("webhook: request sent -> signal row built", "sent", "received"),
    ("hand-over: row built -> worker took it", "received", "validated"),
    ("  of which: row built -> 202 at the client (insert, audit, commit)", "received", "answered"),
    ("  of which: 202 at the client -> worker took it (publish, pickup)", "answered", "validated"),
    ("  overlapping: waiting for the lane (previous signal in it)", "received", "lane_free"),
    ("pipeline: validated -> risk checked (plan, sizing, risk)", "validated", "risk_checked"),
    ("pipeline: risk checked -> executing", "risk_checked", "executing"),
    ("BingX checks: clock, margin mode + leverage read, order row", "executing", "order_created"),
    ("order: row created -> fake accepted (ccxt round trip)", "order_created", "accepted"),
)
AFTER_STAGES = (
    ("webhook: request sent -> 202 received by the client", "sent", "answered"),
    ("after: fake accepted -> order recorded as submitted", "accepted", "order_submitted"),
    ("after: fake accepted -> signal executed (fill wait, positions)", "accepted", "executed"),
)


def timeline(alert: Alert, recorded: Recorded | None, previous: Recorded | None) -> dict[str, float | None]:
    """An alert's timestamps by name; lane_free: when its lane could take it (its row was built, and the
    previous signal of the lane had finished)."""
    line: dict[str, float | None] = {"sent": alert.sent, "answered": alert.answered, "accepted": alert.accepted_at}
    for name in ("received", "validated", "risk_checked", "executing", "executed", "order_created", "order_submitted"):
        line[name] = getattr(recorded, name, None) if recorded else None
    line["lane_free"] = None
    if line["received"] is not None and previous is not None and previous.executed is not None:
        line["lane_free"] = max(line["received"], min(previous.executed, line["validated"] or previous.executed))
    return line


# --- Report ----------------------------------------------------------------------------------------------


def _row(name: str, latencies: list[float], sent: int, errors: int) -> str:
    return (
        f"{name:<34} {sent:>5} {len(latencies):>5} {errors:>6} {_ms(percentile(latencies, 0.5)):>8} "
        f"{_ms(percentile(latencies, 0.95)):>8} {_ms(percentile(latencies, 0.99)):>8} "
        f"{_ms(max(latencies) if latencies else None):>8}"
    )


def report(
    run: Run,
    floor: Floor,
    recorded: dict[int, Recorded],
    args: argparse.Namespace,
    *,
    pg_version: str,
    logs: dict[str, str],
    load_before: str,
) -> None:
    steady = run.steady
    latencies = [a.latency for a in steady if a.latency is not None]
    missing = [a for a in steady if a.client_order_id and a.accepted_at is None]
    failed_sends = [a for a in steady if not a.client_order_id]
    header = (
        f"{'measure':<34} {'sent':>5} {'ok':>5} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print()
    print(f"Results ({len(steady)} alerts, one every {args.interval_ms:g} ms; Celery pool {_pool(args)})")
    print(header)
    print("-" * len(header))
    print(_row("signal -> order accepted", latencies, len(steady), len(missing) + len(failed_sends)))
    answers = [a.answered - a.sent for a in steady if a.client_order_id]
    print(_row("  (webhook 202 answer, same alerts)", answers, len(steady), len(failed_sends)))
    floor_count = len(floor.latencies) + sum(floor.errors.values())
    print(_row("floor: bare ccxt create_order", floor.latencies, floor_count, sum(floor.errors.values())))
    if run.changing:
        changing = [a.latency for a in run.changing if a.latency is not None]
        print(
            _row(
                "entry setting margin + leverage",
                changing,
                len(run.changing),
                len(run.changing) - len(changing),
            )
        )
    for alert in run.changing:
        rec = recorded.get(alert.signal_id)
        if alert.latency is None or (rec and rec.status != "executed"):
            state = f"{rec.status} {rec.reason[:200]}" if rec else alert.error or "no signal row"
            print(f"  settings entry {alert.index} (signal {alert.signal_id}): {state}")
    if run.cold:
        print(f"  first alert after start (cold worker, new connections): {_ms(run.cold.latency)} ms")
    print(
        f"  margin mode and leverage on the fake are preset to the profile's ({MARGIN_MODE}, {LEVERAGE}x): each "
        "steady-state entry reads both and changes nothing (the common case)"
        + (
            "; the 'entry setting margin + leverage' row is sequential entries after the fake was set back to "
            f"cross, {LEVERAGE * 2}x (first entry on a symbol, or after a profile change)"
            if run.changing
            else ""
        )
    )
    for alert in failed_sends[:3]:
        print(f"  alert {alert.index} not accepted by the webhook: {alert.error}")
    for alert in missing[:5]:
        rec = recorded.get(alert.signal_id)
        state = f"{rec.status} {rec.reason[:160]}" if rec else "no signal row"
        print(f"  alert {alert.index} (signal {alert.signal_id}) has no order on the fake: {state}")

    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    f50, f99 = percentile(floor.latencies, 0.5), percentile(floor.latencies, 0.99)
    complete = not missing and not failed_sends

    def verdict(value: float | None, target_ms: float) -> str:
        return "MET" if value is not None and value * 1000 <= target_ms and complete else "MISSED"

    print()
    print("Against the floor and the targets")
    if p50 and f50:
        print(f"  p50: {_ms(p50)} ms vs floor {_ms(f50)} ms = {p50 / f50:.1f}x")
    if p99 and f99:
        print(f"  p99: {_ms(p99)} ms vs floor {_ms(f99)} ms = {p99 / f99:.1f}x")
    print(f"  signal-to-order p50 {_ms(p50):>7} ms   target <= {TARGET_P50_MS:g} ms    {verdict(p50, TARGET_P50_MS)}")
    print(f"  signal-to-order p99 {_ms(p99):>7} ms   target <= {TARGET_P99_MS:g} ms   {verdict(p99, TARGET_P99_MS)}")
    if not complete:
        print("  (a target counts as missed while any alert got no order)")

    print()
    print("Where the time goes (steady-state alerts; app timestamps from the database, same clock)")
    lines = [
        timeline(alert, recorded.get(alert.signal_id), recorded.get(previous.signal_id))
        for previous, alert in zip([*([run.cold, *run.warmup][-1:]), *steady], steady, strict=False)
        if alert.accepted_at is not None
    ]
    width = max(len(label) for label, _, _ in STAGES + AFTER_STAGES)
    print(f"  {'stage':<{width}} {'p50 ms':>8} {'p99 ms':>8} {'n':>5}")
    for group, stages in (("", STAGES), ("not in the latency:", AFTER_STAGES)):
        if group:
            print(f"  {group}")
        for label, start, end in stages:
            spans = [line[end] - line[start] for line in lines if line[start] is not None and line[end] is not None]
            print(
                f"  {label:<{width}} {_ms(percentile(spans, 0.5)):>8} {_ms(percentile(spans, 0.99)):>8} {len(spans):>5}"
            )
    busy = [
        line["executed"] - line["validated"]
        for line in lines
        if line["executed"] is not None and line["validated"] is not None
    ]
    if busy:
        per_signal = percentile(busy, 0.5)
        print(
            f"  worker busy per signal (validated -> executed): p50 {_ms(per_signal)} ms; the lane (account, "
            f"symbol) takes one signal at a time, so above {args.interval_ms:g} ms per signal alerts queue up"
        )

    print()
    print("Run notes")
    everything = [alert for alert in (run.cold, *run.warmup, *steady, *run.changing, *run.netting) if alert]
    statuses = Counter(rec.status for alert in everything if (rec := recorded.get(alert.signal_id)))
    print(f"  signals by status (all phases): {dict(statuses)}")
    not_executed = [
        (alert, rec)
        for alert in steady
        if (rec := recorded.get(alert.signal_id)) is not None and rec.status != "executed"
    ]
    for alert, rec in not_executed[:5]:
        print(f"    alert {alert.index} signal {alert.signal_id}: {rec.status} {rec.reason[:160]}")
    mismatched = [
        alert
        for alert in steady
        if (rec := recorded.get(alert.signal_id)) is not None
        and rec.client_order_id
        and rec.client_order_id != alert.client_order_id
    ]
    if mismatched:
        print(
            f"  WARNING: {len(mismatched)} entries have another client order id than the bench computed: "
            "trading.rules.client_order_id_for changed; update the copy in this file"
        )
    print(
        f"  Celery worker: {_pool(args)}. The benchmark has one lane (account, symbol) and a lane takes one signal "
        "at a time whatever the pool; a second prefork process only picks up the extra hand-overs and finds the "
        "lane busy (CPU and a row lock taken from the busy one), which is why solo is the default here"
    )
    lag = max((a.lag for a in steady), default=0.0)
    print(f"  client: worst send lag behind the timetable {lag * 1000:.1f} ms (not in the latency: measured from send)")
    for name, text in logs.items():
        messages = log_messages(text, LOG_LINE)
        print(f"  {name} log: {sum(messages.values())} messages at WARNING or above" + (":" if messages else ""))
        for message, count in messages.most_common(4):
            print(f"    {count} x {message}")

    print()
    print("Machine")
    print(machine_cores_line(load_before))
    print(f"  Python {platform.python_version()}; ccxt {ccxt.__version__}; {pg_version}; Redis at {REDIS_URL}")
    print(
        f"  one uvicorn process, one Celery worker ({_pool(args)}), PostgreSQL, Redis and this process (client, "
        "fake BingX thread, floor) share these cores: absolute figures are pessimistic; the floor ran after the "
        "app was stopped"
    )


def _pool(args: argparse.Namespace) -> str:
    return "solo" if args.worker_pool == "solo" else f"{args.worker_pool}, concurrency {args.concurrency}"


# --- Main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200, help="steady-state alerts (default 200)")
    parser.add_argument("--interval-ms", type=float, default=50, help="between alerts, open loop (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up alerts after the first, not counted (default 5)")
    parser.add_argument(
        "--settings-changes",
        type=int,
        default=10,
        help="entries measured after setting the fake's margin mode and leverage away from the profile (default 10)",
    )
    parser.add_argument("--floor-orders", type=int, default=200, help="bare ccxt orders for the floor (default 200)")
    parser.add_argument(
        "--worker-pool",
        choices=("prefork", "solo", "threads"),
        default="solo",
        help="Celery pool (default solo: see bench/README.md; `make worker` runs prefork, concurrency = cores)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Celery concurrency, prefork and threads only (default 2)"
    )
    parser.add_argument(
        "--settings", default="bench.settings", help="settings module of the app (default bench.settings)"
    )
    parser.add_argument("--logs", metavar="DIR", help="keep the server's and the worker's logs in this directory")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DB_NAME} database for inspection")
    args = parser.parse_args(argv)
    if not 1 <= args.alerts <= 5000:
        parser.error("--alerts must be from 1 to 5000")
    if not 1 <= args.interval_ms <= 10_000:
        parser.error("--interval-ms must be from 1 to 10000")
    if not 0 <= args.warmup <= 100 or not 0 <= args.settings_changes <= 100:
        parser.error("--warmup and --settings-changes must be from 0 to 100")
    if not 1 <= args.floor_orders <= 5000 or not 1 <= args.concurrency <= 16:
        parser.error("--floor-orders must be from 1 to 5000, --concurrency from 1 to 16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sigterm_as_interrupt()
    workdir = Path(tempfile.mkdtemp(prefix="tvbingx-s2o-"))
    logdir = Path(args.logs).resolve() if args.logs else workdir
    logdir.mkdir(parents=True, exist_ok=True)
    server_log, worker_log = logdir / "server.log", logdir / "worker.log"
    server = worker = None
    database_created = False
    status = 0
    try:
        load_before = load_average()
        print(
            f"TVBingX signal-to-order benchmark: database {DB_NAME}, Redis {REDIS_URL}, settings {args.settings}, "
            f"Celery pool {_pool(args)}"
        )
        redis_flush(REDIS_URL)
        pg_version = database_recreate(DB_NAME, DB_ROLE, connection_limit=40)
        database_created = True
        with fake_bingx() as bingx:
            api_key, api_secret = "bench-" + secrets.token_hex(8), secrets.token_hex(16)
            fake_account = bingx.add_account(api_key=api_key, api_secret=api_secret, balance=BALANCE)
            bingx.set_mark_price(FAKE_SYMBOL, MARK_PRICE)
            fake_account.set_margin_mode(FAKE_SYMBOL, MARGIN_MODE)  # as the profile wants: nothing to change
            fake_account.set_leverage(FAKE_SYMBOL, "BOTH", LEVERAGE)
            token = "wh_bench_" + secrets.token_urlsafe(24)
            env = server_env(
                token=token, settings_module=args.settings, api_key=api_key, api_secret=api_secret, bingx=bingx
            )
            print(f"  fake BingX at {bingx.base_url}; migrate + bootstrap + account set-up ...", flush=True)
            run_python(env, "manage.py", "migrate", "--noinput")
            run_python(env, "manage.py", "bootstrap")
            account = json.loads(run_python(env, "-c", ACCOUNT_SETUP).strip().splitlines()[-1])
            if account["mode"] != "live" or not account["has_keys"] or not account["auto_trade"]:
                raise BenchError(f"the default account is not set up to trade live: {account}")
            port = free_port()
            base_url = f"http://{HOST}:{port}"
            server = server_start(env, port, server_log)
            worker = worker_start(env, args, worker_log)
            server_wait_ready(server, port, server_log)
            worker_wait_ready(worker, worker_log)
            print(f"  server at {base_url} (pid {server.pid}), Celery worker pid {worker.pid}", flush=True)
            run = asyncio.run(drive(base_url, token, account["account_id"], bingx, fake_account, args))
            for name, process, log in (("server", server, server_log), ("worker", worker, worker_log)):
                if process.poll() is not None:
                    raise BenchError(f"the {name} exited during the run:\n{tail(log)}")
            time.sleep(0.5)  # let the last signals finish (fill read-back) before stopping the worker
            process_stop(worker)
            process_stop(server)
            print(f"  floor: {args.floor_orders} bare ccxt create_order calls ...", flush=True)
            floor = floor_measure(bingx, args.floor_orders)
        recorded = recorded_signals()
        report(
            run,
            floor,
            recorded,
            args,
            pg_version=pg_version,
            logs={"server": read_text(server_log), "worker": read_text(worker_log)},
            load_before=load_before,
        )
    except BenchError as error:
        print(f"\nThe benchmark could not run: {error}", file=sys.stderr)
        status = 2
    except (psycopg.Error, redis.RedisError, OSError, subprocess.SubprocessError) as error:
        print(f"\nThe benchmark could not run: {type(error).__name__}: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("\nInterrupted; cleaning up.", file=sys.stderr)
        status = 130
    finally:
        process_stop(worker)
        process_stop(server)
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
