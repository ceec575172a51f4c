#!/usr/bin/env python
"""User-data stream apply rate: BingX's ORDER_TRADE_UPDATE / ACCOUNT_UPDATE events applied to PostgreSQL.

    .venv/bin/python bench/stream_apply.py [--events 20000] [--accounts 4] [--keep-db]

Feeds the consumer's own code path (``trading.stream``: ``stream_event_apply`` run on an ``AccountStream``'s
worker thread, as ``manage.py run_stream`` runs it) with raw frames in BingX's wire shape, gzipped as BingX sends
them, and times each one from the frame in hand (gunzip, JSON, ``parse_event``) until it was applied, committed
and its channel-layer events handed to the publisher. The events are what the fake BingX (tests/fakes/bingx)
pushes for orders of ours (Order rows with exchange ids): limit entries and reduce-only closes on 4 symbols,
each NEW, one to four trades (PARTIALLY_FILLED ... FILLED) with an ACCOUNT_UPDATE after each, interleaved
across symbols, plus 10% duplicates, some of them delivered late (out of order). A FILLED order's follow-up
(position and balance read back over REST) runs against that fake, in this process.

It prints events/s and per-event latency (p50/p95/p99/max) per phase: one account fed one event at a time, K
accounts at once (one worker thread each, as ``streams_run`` runs them), the same fed a batch at a time, and one
account's own applier loop fed open loop (``--offered``): at 2,000 events/s (latency, from each event's place in
a fixed timetable) and all at once (the applier's own pace). The targets (>= 2,000 events/s, p99 <= 50 ms) are
read on those two. Then where the time goes (per stage, SQL statements, commits, REST calls) and, when a target
is missed, a cProfile of a slice. Missing a target is reported, not failed: the exit status is 0 when it ran, 2
when it could not. The database, its role and the Redis db are removed at the
end whatever happened. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import io
import json
import logging
import os
import platform
import pstats
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:
    import psycopg
    import redis
except ImportError:  # started with a Python outside the project's virtualenv: use the virtualenv's
    if VENV_PYTHON.exists() and os.path.abspath(sys.executable) != str(VENV_PYTHON):
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    raise

if str(ROOT) not in sys.path:  # started as a script: make the project and the fake importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - after the virtualenv check above
    BenchError,
    app_env,
    database_recreate,
    database_url,
    environment_cleanup,
    load_average,
    machine_cores_line,
    percentile,
    python,
    redis_flush,
    run_python,
    sigterm_as_interrupt,
)
from tests.fakes.bingx import fake_bingx  # noqa: E402 - after the virtualenv check above

DB_NAME = "tvbingx_bench_stream"
DB_ROLE = "tvbingx_bench_stream"  # not a superuser: its connection limit holds
DB_URL = database_url(DB_NAME, DB_ROLE)
REDIS_URL = "redis://127.0.0.1:6379/6"
CHANNEL_PREFIX = "tvbingx"  # tvbingx/settings.py CHANNEL_LAYERS

TARGET_EVENTS_PER_SECOND, TARGET_P99_MS = 2000.0, 50.0
BALANCE = Decimal("10000000")
LEVERAGE = 5
DUPLICATE_SHARE = 0.10
LATE_SHARE_OF_DUPLICATES = 0.5  # the others repeat right away
BREAKDOWN_EVENTS = 2000
PROFILE_EVENTS = 1000
TOPICS = (
    "orders.executed",
    "positions.updated",
    "positions.closed",
    "balances.updated",
    "alerts.stream_follow_up_failed",
)


@dataclass(frozen=True)
class Market:
    symbol: str  # BingX's
    unified: str  # ccxt's
    mark: Decimal
    step: Decimal
    units: int  # the order size in steps
    price_places: int


MARKETS = (
    Market("BTC-USDT", "BTC/USDT:USDT", Decimal("65000"), Decimal("0.0001"), 100, 1),
    Market("LTC-USDT", "LTC/USDT:USDT", Decimal("80"), Decimal("0.1"), 50, 2),
    Market("ADA-USDT", "ADA/USDT:USDT", Decimal("0.5"), Decimal("1"), 1000, 5),
    Market("SOL-USDT", "SOL/USDT:USDT", Decimal("150"), Decimal("1"), 3, 3),
)

# The listener: a dashboard's worth of channel-layer subscriber, in its own process, counting what arrives.
LISTENER = """
import asyncio, json, signal, sys
from collections import Counter
from channels_redis.core import RedisChannelLayer

async def main():
    layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix=sys.argv[2])
    channel = await layer.new_channel()
    for topic in sys.argv[3:]:
        await layer.group_add(topic, channel)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = Counter()
    print("ready", flush=True)
    while not stop.is_set():
        try:
            message = await asyncio.wait_for(layer.receive(channel), 0.3)
        except asyncio.TimeoutError:
            continue
        counts[message.get("topic", "?")] += len(message.get("events", [])) or 1  # pipeline.events: several
    print(json.dumps(counts), flush=True)

asyncio.run(main())
"""


# --- Statistics ------------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


# --- Environment -----------------------------------------------------------------------------------------


def stream_env(bingx) -> dict[str, str]:
    """Only what the app needs: nothing from the caller's environment or a .env file leaks in."""
    return app_env(
        settings_module="tvbingx.settings",
        database_url=DB_URL,
        redis_url=REDIS_URL,
        trading_mode="live",
        # One connection per account stream (its worker thread keeps it), for every phase's accounts.
        DATABASE_POOL_SIZE="40",
        BINGX_BASE_URL=bingx.base_url,
        BINGX_WS_URL=bingx.ws_url,
    )


def migrate(env: dict[str, str]) -> None:
    run_python(env, "manage.py", "migrate", "--noinput", label="migrate")


def listener_start(env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [python(), "-c", LISTENER, REDIS_URL, CHANNEL_PREFIX, *TOPICS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise BenchError(f"the channel-layer listener did not start: {process.stderr.read()[-2000:]}")
    return process


def listener_stop(process: subprocess.Popen | None) -> dict[str, int]:
    """Stop the listener (only the process this script started, by its pid) and read what it counted."""
    if process is None:
        return {}
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=5)
        return {}
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


# --- The workload: what BingX pushes for our orders -----------------------------------------------------


@dataclass
class Frame:
    data: bytes  # the gzipped JSON text, as BingX sends it in a binary frame
    kind: str  # new | partial | filled | account | duplicate


def _kind(event: dict) -> str:
    if event["e"] == "ACCOUNT_UPDATE":
        return "account"
    order = event["o"]
    if order["x"] == "NEW":
        return "new"
    return "filled" if order["X"] == "FILLED" else "partial"


class Workload:
    """One account's stream, a batch at a time: one order per symbol, placed on the fake BingX and recorded as
    ours, then filled in one to four trades, the symbols' events interleaved. Entries are limit buys below the
    mark; once filled, the symbol's next order is a reduce-only limit sell closing the position.

    A batch is applied before the next is made: a FILLED order's follow-up then reads the fake's positions
    and balance as they were right after the fill, as it would on BingX. Runs on the account's worker thread.
    """

    def __init__(self, *, bingx, fake_account, account, captured: list[dict], seed: int) -> None:
        self.bingx, self.fake_account, self.account = bingx, fake_account, account
        self.captured = captured  # what the fake pushes for this account (its on_event hook appends)
        self.rng = random.Random(seed)
        self.holding = dict.fromkeys((m.symbol for m in MARKETS), False)
        self.count = 0

    def batch(self) -> list[Frame]:
        from django.utils import timezone

        from trading.models import Order

        start = len(self.captured)
        placed, rows = [], []
        for market in MARKETS:
            closing = self.holding[market.symbol]
            factor = Decimal("1.01") if closing else Decimal("0.99")
            price = (market.mark * factor).quantize(Decimal(1).scaleb(-market.price_places))
            qty = market.step * market.units
            self.count += 1
            client_order_id = f"bench{self.account.pk}x{self.count}"
            params = {
                "symbol": market.symbol,
                "side": "SELL" if closing else "BUY",
                "type": "LIMIT",
                "quantity": format(qty, "f"),
                "price": format(price, "f"),
                "clientOrderID": client_order_id,
            }
            if closing:
                params["reduceOnly"] = "true"
            order = self.bingx.state.place_order(self.fake_account, params)
            placed.append((market, order, self._parts(market.units)))
            rows.append(
                Order(
                    account=self.account,
                    client_order_id=client_order_id,
                    exchange_order_id=str(order.order_id),
                    symbol=market.unified,
                    side="sell" if closing else "buy",
                    order_type=Order.Type.LIMIT,
                    purpose=Order.Purpose.CLOSE if closing else Order.Purpose.ENTRY,
                    qty=qty,
                    price=price,
                    reduce_only=closing,
                    status=Order.Status.SUBMITTED,
                    submitted_at=timezone.now(),
                )
            )
            self.holding[market.symbol] = not closing
        Order.objects.bulk_create(rows)
        for step in range(max(len(parts) for _, _, parts in placed)):
            for market, order, parts in placed:
                if step < len(parts):
                    self.fake_account.fill_order(order.order_id, market.step * parts[step])
        events = self.captured[start:]
        frames = [Frame(gzip.compress(json.dumps(event).encode()), _kind(event)) for event in events]
        return self._with_duplicates(frames)

    def _parts(self, units: int) -> list[int]:
        trades = min(units, self.rng.randint(1, 4))
        cuts = sorted(self.rng.sample(range(1, units), trades - 1)) if trades > 1 else []
        bounds = [0, *cuts, units]
        return [high - low for low, high in zip(bounds, bounds[1:], strict=False)]

    def _with_duplicates(self, frames: list[Frame]) -> list[Frame]:
        """BingX's stream repeats events: some right away, some later, after newer ones (out of order)."""
        keyed = [(float(i), frame) for i, frame in enumerate(frames)]
        for i, frame in enumerate(frames):
            if self.rng.random() < DUPLICATE_SHARE:
                late = self.rng.random() < LATE_SHARE_OF_DUPLICATES
                at = self.rng.uniform(i + 1, len(frames) + 1) if late else i + 0.5
                keyed.append((at, Frame(frame.data, "duplicate")))
        return [frame for _, frame in sorted(keyed, key=lambda pair: pair[0])]


# --- Applying, as the consumer does ----------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    accounts: int
    samples: list[tuple[str, float]] = field(default_factory=list)  # (kind, seconds)
    busy_seconds: float = 0.0  # the apply windows' wall time (making the batches is not counted)
    cpu_seconds: float = 0.0  # this process's CPU time in those windows (all its threads)
    rest_calls: int = 0
    offered: float | None = None  # events/s offered open loop (inf: all at once); None: closed loop
    bursts: list[tuple[int, float, float]] = field(default_factory=list)  # (events, wall s, applier CPU s)
    threads_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of each thread over the phase

    @property
    def events(self) -> int:
        return len(self.samples)

    @property
    def rate(self) -> float:
        return self.events / self.busy_seconds if self.busy_seconds else 0.0

    def latencies(self, kind: str | None = None) -> list[float]:
        return [seconds for k, seconds in self.samples if kind is None or k == kind]


def _apply_on_thread(apply, account, event, hooks) -> None:
    if hooks is None:
        apply(account=account, event=event)
    else:
        hooks.run(apply, account, event)


async def apply_frames(stream, account, frames: list[Frame], samples: list, hooks=None) -> None:
    """What AccountStream does per frame: decode and parse it (the reader), then apply it on the account's
    worker thread and wait (the applier). Latency: frame in hand -> applied, committed, events handed over."""
    from trading.exchange.stream import parse_event
    from trading.stream import stream_event_apply

    for frame in frames:
        start = time.perf_counter()
        if hooks is not None:
            hooks.parse_begin(frame.kind)
        event = parse_event(json.loads(gzip.decompress(frame.data).decode()))
        if hooks is not None:
            hooks.parse_end()
        await stream.sync(_apply_on_thread, stream_event_apply, account, event, hooks)
        samples.append((frame.kind, time.perf_counter() - start))


def _apply_burst_on_thread(account, events) -> None:
    from trading.stream import _thread_memory, stream_events_apply

    stream_events_apply(account=account, events=events, memory=_thread_memory(account))


async def apply_frames_queued(stream, account, frames: list[Frame], samples: list, hooks=None) -> None:
    """What AccountStream does when events arrive faster than one at a time: the reader has them all queued,
    and the applier drains up to BURST_EVENTS per transaction. Latency: batch in hand -> its burst committed
    (so an event also waits for the bursts before it)."""
    from trading.exchange.stream import parse_event
    from trading.stream import BURST_EVENTS

    start = time.perf_counter()
    parsed = [(frame.kind, parse_event(json.loads(gzip.decompress(frame.data).decode()))) for frame in frames]
    for offset in range(0, len(parsed), BURST_EVENTS):
        chunk = parsed[offset : offset + BURST_EVENTS]
        await stream.sync(_apply_burst_on_thread, account, [event for _, event in chunk])
        done = time.perf_counter() - start
        samples.extend((kind, done) for kind, _ in chunk)


async def run_phase(
    name: str, streams: list, workloads: list[Workload], events: int, warmup: int, bingx, hooks=None, queued=False
) -> PhaseResult:
    """Rounds of one batch per account: the batches are made (not timed), then applied at once, one worker
    thread per account (timed). Until ``warmup`` events were applied nothing is counted."""
    from trading.stream import heap_settle

    result = PhaseResult(name, len(streams))
    await streams[0].sync(heap_settle)  # as AccountStream does once connected and reconciled
    warm: list = []
    while len(result.samples) < events:
        batches = await asyncio.gather(*(s.sync(w.batch) for s, w in zip(streams, workloads, strict=True)))
        counting = len(warm) >= warmup
        per_account: list[list] = [[] for _ in streams]
        requests_before = _requests(bingx)
        started, cpu_started = time.perf_counter(), time.process_time()
        apply = apply_frames_queued if queued else apply_frames
        await asyncio.gather(
            *(
                apply(stream, workload.account, batch, samples, hooks)
                for stream, workload, batch, samples in zip(streams, workloads, batches, per_account, strict=True)
            )
        )
        # Fills' follow-ups run on each stream's follow-up thread, beside the applier: not in an event's
        # latency, but in the window (their CPU and REST time count against the rate).
        await asyncio.gather(*(stream.follow_ups_done() for stream in streams))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        merged = [sample for samples in per_account for sample in samples]
        if counting:
            result.busy_seconds += elapsed
            result.cpu_seconds += cpu
            result.samples += merged
            result.rest_calls += _requests(bingx) - requests_before
        else:
            warm += merged
    return result


async def run_offered_phase(
    name: str, stream, workload: Workload, events: int, warmup: int, rate: float, bingx
) -> PhaseResult:
    """Events offered at ``rate`` per second, open loop, to ``AccountStream``'s own applier loop: the reader's
    part (gunzip, JSON, parse_event) on this event loop, then ``AccountStream.events_apply_queued`` on the
    account's worker thread, which applies what is queued in bursts of up to BURST_EVENTS per transaction, the
    fills' follow-ups on the follow-up thread. The frames are made first (not timed; the fake BingX is then
    ahead of the events, so a follow-up reads its later state). Latency: from the event's time in the
    timetable -> its burst committed (read on the worker thread as the burst returns). Rate: events / (first
    due -> last committed, follow-ups finished)."""
    from queue import SimpleQueue

    import trading.stream as stream_module
    from trading.exchange.stream import parse_event
    from trading.stream import BURST_EVENTS, heap_settle

    frames: list[Frame] = []
    while len(frames) < warmup + events:
        frames += await stream.sync(workload.batch)
    await stream.sync(statistics_refresh)
    await stream.sync(heap_settle)  # as AccountStream does once connected and reconciled
    result = PhaseResult(name, 1, offered=rate)
    inbox: SimpleQueue = SimpleQueue()
    offered_at: dict[int, tuple[int, str, float]] = {}  # id(event) -> its number, kind and time in the timetable
    counted_from: list[float] = []
    events_apply = stream_module.stream_events_apply

    def timed(*, account, events, memory):
        # Wraps stream_events_apply as the applier loop calls it, on the worker thread.
        started, cpu_started = time.perf_counter(), time.thread_time()
        applied = events_apply(account=account, events=events, memory=memory)
        committed, cpu = time.perf_counter(), time.thread_time() - cpu_started
        stamps = [offered_at.pop(id(event)) for event in events]
        if stamps[0][0] >= warmup:
            result.bursts.append((len(events), committed - started, cpu))
        for number, kind, offered in stamps:
            if number < warmup:
                continue
            if not counted_from:
                counted_from.append(offered)
            result.samples.append((kind, committed - offered))
        return applied

    async def offer() -> None:
        # Each event is due at its place in a fixed timetable, and its latency runs from then: a late
        # offer (the loop busy) cannot hide itself. When the loop wakes, every event due by then is offered,
        # as a WebSocket reader gets every frame that arrived meanwhile.
        began = time.perf_counter()
        number = 0
        while number < len(frames):
            due = began + number / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            offered_now = 0
            while number < len(frames) and began + number / rate <= now and offered_now < BURST_EVENTS:
                frame = frames[number]
                event = parse_event(json.loads(gzip.decompress(frame.data).decode()))
                offered_at[id(event)] = (number, frame.kind, began + number / rate)
                inbox.put(event)
                number += 1
                offered_now += 1
            await asyncio.sleep(0)
        inbox.put(stream_module._END)  # the socket's end: the applier loop returns

    requests_before = _requests(bingx)
    cpu_started, threads_before = time.process_time(), threads_cpu()
    stream_module.stream_events_apply = timed
    try:
        await asyncio.gather(offer(), stream.sync(stream.events_apply_queued, inbox))
    finally:
        stream_module.stream_events_apply = events_apply
    await stream.follow_ups_done()
    result.busy_seconds = time.perf_counter() - (counted_from[0] if counted_from else time.perf_counter())
    result.cpu_seconds = time.process_time() - cpu_started
    threads_after = threads_cpu()
    result.threads_cpu = {name: seconds - threads_before.get(name, 0.0) for name, seconds in threads_after.items()}
    result.rest_calls = _requests(bingx) - requests_before
    return result


def burst_cost_fit(bursts: list[tuple[int, float, float]]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """A burst's wall time and applier CPU as a fixed part plus a part per event (least squares over the
    phase's bursts): the fixed part is what the open-loop latency is most sensitive to (at a given rate a
    burst takes fixed / (1 - rate x per event)). None when the bursts are of about one size (all at once: 200
    each), which leaves the two parts apart undetermined."""
    sizes = [size for size, _, _ in bursts]
    mean_size = sum(sizes) / len(sizes)
    spread = sum((size - mean_size) ** 2 for size in sizes)
    if spread < (0.2 * mean_size) ** 2 * len(sizes):  # sizes vary by less than a fifth of their mean
        return None

    def line(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        slope = sum((size - mean_size) * (value - mean) for size, value in zip(sizes, values, strict=True)) / spread
        return mean - slope * mean_size, slope

    return line([wall for _, wall, _ in bursts]), line([cpu for _, _, cpu in bursts])


def _offered_name(rate: float) -> str:
    return "1 account, all at once" if rate == float("inf") else f"1 account, {rate:,.0f}/s offered"


def statistics_refresh() -> None:
    """ANALYZE the database before a timed phase: the tables were filled from empty within the minute, before
    autovacuum looked at them, and without statistics PostgreSQL plans a close's read of its fills as a scan
    of all the account's orders (what it does on a live database, with statistics, is an index range scan)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def threads_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process so far, by thread name (Linux)."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return {}
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = re.sub(r"_\d+$", "", re.sub(r"-\d+", "-N", names.get(int(task), "other")))
        out[name] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(out)


def _requests(bingx) -> int:
    with bingx.state.lock:
        return len(bingx.state.requests)


# --- Floor: what PostgreSQL itself costs per event --------------------------------------------------------

FLOOR_ROUNDS = 2000


def floor_measure() -> dict[str, float]:
    """Raw psycopg on one connection as the bench role: a SELECT 1 round trip, and one INSERT + COMMIT (the
    least a durable per-event transaction costs with these durability settings). Seconds per operation."""
    url = f"postgresql://{DB_ROLE}@127.0.0.1:5432/{DB_NAME}"
    result = {}
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, body text)")
        for _ in range(100):
            conn.execute("SELECT 1")
        start = time.perf_counter()
        for _ in range(FLOOR_ROUNDS):
            conn.execute("SELECT 1")
        result["SELECT 1 round trip"] = (time.perf_counter() - start) / FLOOR_ROUNDS
        conn.autocommit = False
        start = time.perf_counter()
        for _ in range(FLOOR_ROUNDS):
            conn.execute("INSERT INTO bench_floor (body) VALUES (%s)", ("x" * 200,))
            conn.commit()
        result["INSERT + COMMIT (a durable transaction)"] = (time.perf_counter() - start) / FLOOR_ROUNDS
        conn.execute("DROP TABLE bench_floor")
        conn.commit()
    return result


class LoggedProblems(logging.Handler):
    """Counts the warnings and errors the project's code logs during the run (a burst that failed and was
    applied again event by event, a follow-up that failed): a benchmark of a failing path is not one."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.count = 0
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if not self.first:
            self.first = f"{record.name}: {record.getMessage()}"

    @classmethod
    def install(cls) -> LoggedProblems:
        handler = cls()
        for name in ("trading", "signals_app", "telegram_bot", "reports"):
            logging.getLogger(name).addHandler(handler)
        return handler


# --- Where the time goes ---------------------------------------------------------------------------------


class Hooks:
    """Stage timing for the breakdown pass: wraps trading.stream's steps (module attributes, restored after),
    counts SQL statements and commits per stage on the worker thread's connection."""

    WRAPPED = (
        ("trading.stream", "_burst_apply", "burst (one transaction)"),
        ("trading.stream", "follow_ups_run", "FILLED follow-up (REST read-back + DB)"),
        ("trading.stream_apply", "BurstWriter.rows_lock", "lock the account, its orders named, its open positions"),
        ("trading.stream_apply", "BurstWriter.order_event", "order event"),
        ("trading.stream_apply", "BurstWriter.account_event", "account event"),
        ("trading.stream_apply", "BurstWriter.flush", "write fills, orders, audit rows, positions"),
        ("trading.stream_apply", "BurstWriter.finish", "finish (stream state, balance snapshot)"),
        ("trading.stream_apply", "order_advance", "order_advance (order_apply's rule, in memory)"),
        ("trading.stream_apply", "order_external_record", "record an order placed elsewhere"),
        ("trading.stream_apply", "BurstWriter._closes_stage", "close positions opened before (one read)"),
        ("trading.stream_apply", "BurstWriter.flush_fills", "write the new fills (one statement)"),
        ("trading.stream_apply", "positions_insert", "insert the positions opened"),
        ("trading.stream_apply", "balance_from_wallet", "balance snapshot"),
        ("trading.stream_apply", "publish", "publish (hand-over on commit)"),
    )

    def __init__(self) -> None:
        self.seconds: Counter = Counter()
        self.statements: Counter = Counter()
        self.sql_seconds: Counter = Counter()
        self.commits: Counter = Counter()
        self.commit_seconds: Counter = Counter()
        self.stack: list[str] = []
        self._parse_started = 0.0
        self._restore: list[tuple[object, str, object]] = []
        self._patched_connections: set[int] = set()
        self._active = False  # inside an apply: the batches' own writes are not counted
        self.kind = ""
        self.by_kind: dict[str, Counter] = defaultdict(Counter)  # kind -> events, statements, commits

    def install(self) -> None:
        import importlib

        for module_name, dotted, label in self.WRAPPED:
            owner = importlib.import_module(module_name)
            *path, name = dotted.split(".")
            for part in path:  # a method: wrapped on its class
                owner = getattr(owner, part)
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            setattr(owner, name, self._timed(original, label))
            self._restore.append((owner, name, original))

    def uninstall(self) -> None:
        for module, name, original in reversed(self._restore):
            setattr(module, name, original)
        self._restore.clear()

    def _path(self, label: str) -> str:
        return " / ".join([*self.stack, label])

    def _timed(self, original, label: str):
        def timed(*args, **kwargs):
            path = self._path(label)
            self.stack.append(label)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[path] += time.perf_counter() - start
                self.stack.pop()

        return timed

    def parse_begin(self, kind: str) -> None:
        self.kind = kind
        self._parse_started = time.perf_counter()

    def parse_end(self) -> None:
        self.seconds["parse (gunzip, JSON, parse_event)"] += time.perf_counter() - self._parse_started

    def _where(self) -> str:
        return " / ".join(self.stack) or "stream_event_apply (StreamState.last_event_at)"

    def run(self, apply, account, event) -> None:
        from django.db import connection

        if id(connection) not in self._patched_connections:
            self._patched_connections.add(id(connection))
            commit = connection._commit

            def timed_commit():
                if not self._active:
                    return commit()
                start = time.perf_counter()
                try:
                    return commit()
                finally:
                    self.commits[self._where()] += 1
                    self.by_kind[self.kind]["commits"] += 1
                    self.commit_seconds[self._where()] += time.perf_counter() - start

            connection._commit = timed_commit

        def counted(execute, sql, params, many, context):
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                self.statements[self._where()] += 1
                self.by_kind[self.kind]["statements"] += 1
                self.sql_seconds[self._where()] += time.perf_counter() - start

        start = time.perf_counter()
        self._active = True
        try:
            with connection.execute_wrapper(counted):
                apply(account=account, event=event)
        finally:
            self._active = False
        elapsed = time.perf_counter() - start
        self.seconds["stream_event_apply"] += elapsed
        self.by_kind[self.kind]["events"] += 1
        self.by_kind[self.kind]["seconds"] += elapsed


WRAPPED_LABELS = {label for _, _, label in Hooks.WRAPPED}


class Profiled:
    """cProfile of the worker thread's apply calls (parsing in the loop thread is left out)."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile()

    def parse_begin(self, kind: str) -> None:
        pass

    def parse_end(self) -> None:
        pass

    def run(self, apply, account, event) -> None:
        self.profile.enable()
        try:
            apply(account=account, event=event)
        finally:
            self.profile.disable()


# --- Report ----------------------------------------------------------------------------------------------

KINDS = (
    ("new", "  NEW (order accepted)"),
    ("partial", "  trade, PARTIALLY_FILLED"),
    ("filled", "  trade, FILLED (+ follow-up over REST)"),
    ("account", "  ACCOUNT_UPDATE (positions, balance)"),
    ("duplicate", "  duplicates (10%, half of them late)"),
)


def _row(label: str, latencies: list[float], rate: str = "") -> str:
    return (
        f"{label:<44} {len(latencies):>6} {rate:>9} {_ms(percentile(latencies, 0.5)):>8} "
        f"{_ms(percentile(latencies, 0.95)):>8} {_ms(percentile(latencies, 0.99)):>8} "
        f"{_ms(max(latencies) if latencies else None):>8}"
    )


def report_phases(phases: list[PhaseResult]) -> None:
    header = (
        f"{'phase / event kind':<44} {'events':>6} {'events/s':>9} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print()
    print("Results (latency: frame in hand -> parsed, applied, committed, channel-layer events handed over)")
    print(header)
    print("-" * len(header))
    for phase in phases:
        print(_row(phase.name, phase.latencies(), f"{phase.rate:,.0f}"))
        for kind, label in KINDS:
            print(_row(label, phase.latencies(kind)))
        if phase.events:
            print(
                f"{'  CPU of this process per event (all threads)':<44} "
                f"{phase.cpu_seconds / phase.events * 1000:>6.2f} ms ({phase.cpu_seconds / phase.busy_seconds:.0%} "
                "of a core over the phase)"
            )
        if phase.bursts:
            count = len(phase.bursts)
            events = sum(size for size, _, _ in phase.bursts)
            walls = sorted(wall for _, wall, _ in phase.bursts)
            print(
                f"{'  bursts (one transaction each)':<44} {count:>6} of {events / count:.0f} events on average, "
                f"{sum(walls) / count * 1000:.1f} ms each (p95 {percentile(walls, 0.95) * 1000:.1f} ms); "
                f"applier thread CPU {sum(cpu for _, _, cpu in phase.bursts) / events * 1000:.3f} ms per event"
            )
            fit = burst_cost_fit(phase.bursts)
            if fit is not None:
                (wall_fixed, wall_each), (cpu_fixed, cpu_each) = fit
                print(
                    f"{'  a burst of n events (least squares)':<44} wall {wall_fixed * 1000:.2f} ms + "
                    f"{wall_each * 1000:.3f} ms x n; applier CPU {cpu_fixed * 1000:.2f} ms + "
                    f"{cpu_each * 1000:.3f} ms x n"
                )
        if phase.threads_cpu:
            busy = sorted(phase.threads_cpu.items(), key=lambda item: -item[1])
            shown = ", ".join(f"{name} {seconds / phase.busy_seconds:.0%}" for name, seconds in busy if seconds >= 0.01)
            print(f"{'  CPU by thread (share of a core)':<44} {shown}")
        filled = len(phase.latencies("filled"))
        if filled and phase.offered is None:  # offered phases read back on a timer, not per fill
            print(f"{'  REST calls to the fake BingX per FILLED':<44} {phase.rest_calls / filled:>6.1f}")
        no_follow_up = [s for k, s in phase.samples if k != "filled"]
        print(_row("  all but FILLED (no REST in the path)", no_follow_up))
    print()
    print(
        "Against the targets (events/s: offered all at once, the applier's own pace; p99: offered at "
        f"{TARGET_EVENTS_PER_SECOND:,.0f}/s, so it includes waiting for the bursts ahead)"
    )
    for line in target_lines(phases):
        print(f"  {line}")


def _target_checks(phases: list[PhaseResult]) -> list[tuple[str, bool]]:
    """The targets read on the phases that answer them: the events/s an account's applier reaches when it
    never waits for events (offered all at once), and p99 while events arrive at the target rate. A phase
    fed one event (or one batch) at a time answers neither: its rate is 1 / its latency."""
    checks = []
    for phase in phases:
        if phase.offered == float("inf"):
            met = phase.rate >= TARGET_EVENTS_PER_SECOND
            checks.append(
                (f"{phase.name:<30} {phase.rate:>8,.0f} events/s  target >= {TARGET_EVENTS_PER_SECOND:,.0f}", met)
            )
        elif phase.offered is not None and phase.offered >= TARGET_EVENTS_PER_SECOND:
            p99 = percentile(phase.latencies(), 0.99)
            met = p99 is not None and p99 * 1000 <= TARGET_P99_MS
            kept_up = phase.rate >= 0.97 * phase.offered
            checks.append((f"{phase.name:<30} p99 {_ms(p99):>8} ms  target <= {TARGET_P99_MS:g} ms", met and kept_up))
    return checks


def target_lines(phases: list[PhaseResult]) -> list[str]:
    checks = _target_checks(phases)
    if not checks:
        return ["no phase answers them (run with --offered 2000 inf)"]
    return [f"{text}  {'MET' if met else 'MISSED'}" for text, met in checks]


def targets_met(phases: list[PhaseResult]) -> bool:
    checks = _target_checks(phases)
    return bool(checks) and all(met for _, met in checks)


def report_breakdown(hooks: Hooks, phase: PhaseResult) -> None:
    events = phase.events
    total = sum(seconds for _, seconds in phase.samples)
    applied = hooks.seconds["stream_event_apply"]
    parse = hooks.seconds["parse (gunzip, JSON, parse_event)"]
    kinds = Counter(kind for kind, _ in phase.samples)
    print()
    print(
        f"Where the time goes ({events} events on a fresh account, one at a time, stages timed; "
        f"{dict(kinds)}; {phase.rate:,.0f} events/s with the timers on)"
    )
    print(f"  {'stage':<74} {'ms/event':>9} {'share':>6} {'SQL':>5} {'SQL ms':>7} {'commits':>7} {'commit ms':>9}")

    def line(label: str, seconds: float, where: str | None = None) -> None:
        def under(counter: Counter) -> float:
            return sum(v for k, v in counter.items() if where and (k == where or k.startswith(where + " / ")))

        sql, sql_s = under(hooks.statements), under(hooks.sql_seconds)
        commits, commit_s = under(hooks.commits), under(hooks.commit_seconds)
        per = seconds / events * 1000
        share = seconds / total * 100 if total else 0
        extra = (
            f" {sql / events:>5.1f} {sql_s / events * 1000:>7.3f} "
            f"{commits / events:>7.2f} {commit_s / events * 1000:>9.3f}"
            if where
            else ""
        )
        print(f"  {label:<74} {per:>9.3f} {share:>5.1f}%{extra}")

    line("total (as measured per event)", total)
    line("parse: gunzip, JSON, parse_event (the reader's part)", parse)
    line("hand-off to the worker thread and back (executor, close_old_connections)", total - parse - applied)
    line("stream_event_apply (everything on the worker thread)", applied)
    tops = sorted((path for path in hooks.seconds if " / " not in path and path in WRAPPED_LABELS), key=str)

    def tree(path: str, depth: int) -> None:
        children = sorted(p for p in hooks.seconds if p.startswith(path + " / ") and p.count(" / ") == depth)
        for child in children:
            line(f"{'  ' * (depth + 1)}{child.split(' / ')[-1]}", hooks.seconds[child], child)
            tree(child, depth + 1)

    for top in tops:
        line(f"  {top}", hooks.seconds[top], top)
        tree(top, 1)
    where = "stream_event_apply (StreamState.last_event_at)"
    outside = applied - sum(hooks.seconds[top] for top in tops)
    line("  the rest of stream_events_apply (dedupe memory, last_event_at)", outside, where)
    print(
        "  (ms/event, SQL and commits are averaged over all events; SQL and commits are counted at the innermost "
        "stage running; 'commit ms' is the COMMIT round trip, with synchronous_commit=on the WAL flush)"
    )
    print(f"  per event kind: {'kind':<10} {'events':>6} {'ms/event':>9} {'SQL/event':>10} {'commits/event':>14}")
    for kind, _ in KINDS:
        counts = hooks.by_kind.get(kind)
        if counts and counts["events"]:
            n = counts["events"]
            print(
                f"  {'':<15}{kind:<10} {n:>6} {counts['seconds'] / n * 1000:>9.2f} {counts['statements'] / n:>10.1f} "
                f"{counts['commits'] / n:>14.1f}"
            )
    rest = phase.rest_calls / max(1, hooks.by_kind["filled"]["events"])
    print(f"  REST calls to the fake per FILLED event: {rest:.1f} (their time is in the FILLED follow-up row)")


def report_profile(profiled: Profiled, events: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiled.profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(18)
    print()
    print(f"cProfile of {events} applied events on the worker thread (top by own time; the profiler slows it)")
    lines = out.getvalue().splitlines()
    start = next((i for i, text in enumerate(lines) if "ncalls" in text), 0)
    for text in lines[start:]:
        if text.strip():
            print("  " + text.rstrip()[:150])
    out = io.StringIO()
    stats = pstats.Stats(profiled.profile, stream=out)
    stats.sort_stats("cumulative").print_stats(f"{re.escape(str(ROOT))}/(trading|signals_app)/", 16)
    print("  the project's functions, by cumulative time:")
    lines = out.getvalue().splitlines()
    start = next((i for i, text in enumerate(lines) if "ncalls" in text), 0)
    for text in lines[start:]:
        if text.strip():
            print("  " + text.replace(str(ROOT) + "/", "").rstrip()[:150])


# --- Main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events measured per phase (default 20000)")
    parser.add_argument(
        "--accounts", type=int, default=4, help="accounts applied at once in the parallel phase (default 4; 1: none)"
    )
    parser.add_argument("--warmup", type=int, default=500, help="events applied first per phase, not counted")
    parser.add_argument(
        "--offered",
        type=float,
        nargs="*",
        default=[TARGET_EVENTS_PER_SECOND, float("inf")],
        help="rates (events/s) offered open loop to one account's applier, one phase each; inf: all at once "
        "(default: 2000 inf)",
    )
    parser.add_argument(
        "--offered-only", action="store_true", help="only the offered-rate phases (and the floor): a quick look"
    )
    parser.add_argument("--no-listener", action="store_true", help="no channel-layer subscriber (nobody listening)")
    parser.add_argument("--profile", action="store_true", help="print the cProfile slice even when targets are met")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DB_NAME} database for inspection")
    args = parser.parse_args(argv)
    if not 100 <= args.events <= 500_000:
        parser.error("--events must be from 100 to 500000")
    if not 1 <= args.accounts <= 16:
        parser.error("--accounts must be from 1 to 16")
    if not 0 <= args.warmup <= 50_000:
        parser.error("--warmup must be from 0 to 50000")
    return args


def setup_accounts(bingx, names: list[str], captured: dict[str, list]) -> dict[str, tuple]:
    """A live account with keys per name, on the fake and in the database, with a profile per symbol."""
    from trading.models import SymbolProfile, TradingAccount

    made = {}
    for name in names:
        api_key, api_secret = f"{name}-" + secrets.token_hex(6), secrets.token_hex(16)
        fake = bingx.add_account(api_key=api_key, api_secret=api_secret, balance=BALANCE)
        for market in MARKETS:
            fake.set_margin_mode(market.symbol, "isolated")
            fake.set_leverage(market.symbol, "BOTH", LEVERAGE)
        account = TradingAccount.objects.create(
            name=name,
            mode="live",
            api_key=api_key,
            api_secret=api_secret,
            position_mode="one_way",
            default_margin_mode="isolated",
            default_leverage=LEVERAGE,
        )
        for market in MARKETS:
            SymbolProfile.objects.create(
                account=account, symbol=market.unified, leverage=LEVERAGE, max_leverage=LEVERAGE, margin_mode="isolated"
            )
        captured[api_key] = []
        made[name] = (account, fake, captured[api_key])
    return made


async def measure(bingx, accounts: dict[str, tuple], args: argparse.Namespace) -> dict:
    from trading.stream import AccountStream, StreamTimings

    timings = StreamTimings.from_settings()
    opened: list = []

    def streams_for(names: list[str]) -> tuple[list, list[Workload]]:
        streams, workloads = [], []
        for number, name in enumerate(names):
            account, fake, captured = accounts[name]
            stream = AccountStream(account.pk, timings)
            stream.account = account
            opened.append(stream)
            streams.append(stream)
            workloads.append(
                Workload(bingx=bingx, fake_account=fake, account=account, captured=captured, seed=1000 + number)
            )
        return streams, workloads

    out: dict = {"phases": []}
    try:
        sequential = not args.offered_only
        if sequential:
            print(f"  one account, sequential: {args.warmup} warm-up + {args.events} events ...", flush=True)
            streams, workloads = streams_for(["bench-seq"])
            out["phases"].append(await run_phase("1 account", streams, workloads, args.events, args.warmup, bingx))
        if sequential and args.accounts > 1:
            names = [f"bench-par-{i}" for i in range(args.accounts)]
            print(
                f"  {args.accounts} accounts at once: {args.warmup} warm-up + {args.events} events in all ...",
                flush=True,
            )
            streams, workloads = streams_for(names)
            name = f"{args.accounts} accounts at once"
            out["phases"].append(await run_phase(name, streams, workloads, args.events, args.warmup, bingx))
        if sequential:
            print(f"  one account, events queued (bursts): {args.warmup} + {args.events} events ...", flush=True)
            streams, workloads = streams_for(["bench-burst"])
            out["phases"].append(
                await run_phase("1 account, queued", streams, workloads, args.events, args.warmup, bingx, queued=True)
            )
        if sequential and args.accounts > 1:
            names = [f"bench-burst-{i}" for i in range(args.accounts)]
            streams, workloads = streams_for(names)
            name = f"{args.accounts} accounts, queued"
            out["phases"].append(
                await run_phase(name, streams, workloads, args.events, args.warmup, bingx, queued=True)
            )
        for rate in args.offered:
            print(
                f"  one account, offered at {rate:,.0f} events/s: {args.warmup} + {args.events} events ...", flush=True
            )
            streams, workloads = streams_for([f"bench-offered-{rate:g}"])
            out["phases"].append(
                await run_offered_phase(
                    _offered_name(rate), streams[0], workloads[0], args.events, args.warmup, rate, bingx
                )
            )
        if sequential:  # the breakdown and the profile are of the one-at-a-time path
            print(f"  breakdown: {BREAKDOWN_EVENTS} events on a fresh account, stages timed ...", flush=True)
            streams, workloads = streams_for(["bench-stages"])
            for stream in streams:  # follow-ups on the applier's thread, so the stage timers see them
                stream.memory.follow_ups = None
            await run_phase("warm-up", streams, workloads, 1, 0, bingx)  # this thread's ccxt client and connection
            hooks = Hooks()
            hooks.install()
            try:
                out["breakdown"] = (
                    hooks,
                    await run_phase("stages", streams, workloads, BREAKDOWN_EVENTS, 0, bingx, hooks),
                )
            finally:
                hooks.uninstall()
            if args.profile or not targets_met(out["phases"]):
                print(f"  cProfile: {PROFILE_EVENTS} events on a fresh account ...", flush=True)
                streams, workloads = streams_for(["bench-profile"])
                for stream in streams:
                    stream.memory.follow_ups = None
                await run_phase("warm-up", streams, workloads, 1, 0, bingx)
                profiled = Profiled()
                out["profile"] = (
                    profiled,
                    await run_phase("profile", streams, workloads, PROFILE_EVENTS, 0, bingx, profiled),
                )
    finally:
        for stream in opened:
            await stream._release()  # closes the worker thread's database connection
    return out


def database_summary() -> dict[str, int]:
    from trading.models import AuditEvent, BalanceSnapshot, Fill, Order, Position

    return {
        "orders filled": Order.objects.filter(status="filled").count(),
        "orders not filled": Order.objects.exclude(status="filled").count(),
        "fills": Fill.objects.count(),
        "positions open": Position.objects.filter(status="open").count(),
        "positions closed": Position.objects.filter(status="closed").count(),
        "balance snapshots": BalanceSnapshot.objects.count(),
        "audit events": AuditEvent.objects.count(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sigterm_as_interrupt()
    listener = None
    database_created = django_ready = False
    status = 0
    try:
        load_before = load_average()
        print(f"TVBingX stream-apply benchmark: database {DB_NAME}, Redis {REDIS_URL} (channel layer)")
        redis_flush(REDIS_URL)
        pg_version = database_recreate(DB_NAME, DB_ROLE, connection_limit=50)
        database_created = True
        with fake_bingx() as bingx:
            for market in MARKETS:
                bingx.set_mark_price(market.symbol, market.mark)
            env = stream_env(bingx)
            print(f"  fake BingX at {bingx.base_url} (in this process); migrate ...", flush=True)
            migrate(env)
            if not args.no_listener:
                listener = listener_start(env)
            os.environ.clear()
            os.environ.update(env)
            import django

            django.setup()
            django_ready = True
            logged = LoggedProblems.install()
            from django.conf import settings

            from signals_app import events as events_module

            if "Redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"] or settings.SIGNAL_PROCESSING == "inline":
                raise BenchError(f"not the production channel layer: {settings.CHANNEL_LAYERS['default']}")
            handed_over: Counter = Counter()
            submit = events_module._sender.submit

            def counting_submit(topic, payload):
                handed_over[topic] += 1
                submit(topic, payload)

            events_module._sender.submit = counting_submit
            captured: dict[str, list] = {}
            pushed = bingx.state.on_event

            def capture(fake_account, event):
                captured[fake_account.api_key].append(event)
                if pushed:
                    pushed(fake_account, event)

            bingx.state.on_event = capture
            parallel = range(args.accounts if args.accounts > 1 else 0)
            names = [
                "bench-seq",
                *[f"bench-par-{i}" for i in parallel],
                "bench-burst",
                *[f"bench-burst-{i}" for i in parallel],
            ]
            offered = [f"bench-offered-{rate:g}" for rate in args.offered]
            accounts = setup_accounts(bingx, [*names, *offered, "bench-stages", "bench-profile"], captured)
            out = asyncio.run(measure(bingx, accounts, args))
            time.sleep(0.5)  # the publisher's last batch (it sends every 100 ms)
            print(f"  floor: {FLOOR_ROUNDS} raw psycopg round trips and transactions ...", flush=True)
            floor = floor_measure()
        delivered = listener_stop(listener)
        listener = None
        from django.db import connections

        summary = database_summary()
        connections.close_all()
        if logged.count:
            print()
            print(
                f"!! {logged.count} warnings/errors were logged while measuring: the figures may be of a path that "
                f"failed (a burst applied again event by event is far slower). First: {logged.first}"
            )
        report_phases(out["phases"])
        print()
        print("Floor (raw psycopg, one connection, same database; per operation)")
        for label, seconds in floor.items():
            print(f"  {label:<42} {seconds * 1000:>7.3f} ms  ({1 / seconds:,.0f}/s)")
        if "breakdown" in out:
            hooks, stages = out["breakdown"]
            report_breakdown(hooks, stages)
        if "profile" in out:
            profiled, profile_phase = out["profile"]
            report_profile(profiled, profile_phase.events)
        print()
        print("Run notes")
        print(f"  warnings and errors logged by the project: {logged.count or 'none'}")
        print(f"  database after all phases: {summary}")
        print(f"  channel-layer events handed to the publisher: {dict(handed_over)} ({sum(handed_over.values())})")
        if args.no_listener:
            print("  no listener (--no-listener): each publisher batch costs a ZCOUNT per topic and sends nothing")
        else:
            print(
                f"  delivered to the listener (a subscriber to every topic, its own process): {delivered} "
                f"({sum(delivered.values())})"
            )
        print(
            "  FILLED follow-ups ran against the fake BingX in this process (no protective plans: the entry's "
            "follow-up reads the position and the balance back; a close's reads positions twice and the balance)"
        )
        print()
        print("Machine")
        print(machine_cores_line(load_before))
        print(f"  Python {platform.python_version()}; {pg_version}; Redis at {REDIS_URL}")
        print(
            "  this process (event loop, worker threads, the fake BingX's threads), the listener, PostgreSQL and "
            "Redis share these cores"
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
    except Exception:  # noqa: BLE001 - a failure in the app's code: report it, clean up, exit 2
        traceback.print_exc()
        print("\nThe benchmark could not run (see the traceback above).", file=sys.stderr)
        status = 2
    finally:
        listener_stop(listener)
        if django_ready:
            from django.db import connections

            connections.close_all()
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
