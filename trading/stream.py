"""The BingX user-data stream consumer (``manage.py run_stream``): what BingX pushes, applied as it happens.

Per account, ``AccountStream`` keeps a listen key (created, extended every ``keepalive_seconds``, recreated
when BingX refuses it), holds the WebSocket (``trading.exchange.stream``), and reconnects with exponential
backoff and jitter. After every (re)connect it reconciles over REST (``stream_reconcile``) before applying
what the socket delivered meanwhile, so a gap is never trusted to the stream.

Events are applied by the plain service functions below (``stream_events_apply``, a burst at a time), run on
one worker thread per account (in BingX's order; the database and ccxt are synchronous): once connected and
reconciled, the reader hands each event straight to that thread (``AccountStream.events_apply_queued``). They are
idempotent: a fill is recorded once (``order_apply`` keys it by order id and cumulative quantity, as the REST
poller does), an order's status only moves forward, and an ACCOUNT_UPDATE older than the last one applied is
skipped. Each applied change is published on the channel layer after commit: ``orders.executed`` (a fill),
``positions.updated``, ``positions.closed`` (with its cause), ``balances.updated``, and ``alerts.stream_down``
/ ``alerts.stream_restored`` when the stream has been down for ``STREAM_DOWN_ALERT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from signals_app.events import publish
from trading.audit import Actor
from trading.exchange.client import client_for
from trading.exchange.clock import clock_reading
from trading.exchange.errors import ExchangeError
from trading.exchange.stream import (
    AccountUpdate,
    ListenKeyExpired,
    OrderUpdate,
    StreamClosed,
    StreamEvent,
    stream_session,
    user_stream,
)
from trading.execution import (
    FollowUpReadBack,
    balance_sync,
    exchange_accounts,
    follow_up_read_back,
    orders_filled_protect,
    orders_poll,
    positions_sync,
    protection_cancel_where_closed,
    protective_hits_announce,
)
from trading.models import Order, StreamState, TradingAccount
from trading.resync import ResyncBusy, resync_account
from trading.stream_apply import (
    AccountWatermark,
    BurstOutcome,
    BurstWriter,
    account_update_digest,
    symbol_leverages,
)

logger = logging.getLogger(__name__)

STREAM = Actor.system("bingx-stream")
MEMORY_EVENTS = 2000  # recent events an account's applier remembers (duplicates dropped before the database)
STATE_WRITE_SECONDS = 5.0  # StreamState.last_event_at is written at most this often (and when the stream ends)
BURST_EVENTS = 200  # at most this many queued events are applied in one transaction
LEVERAGES_SECONDS = 60.0  # how long an applier trusts the symbol profiles' leverages it read
# After a reconcile, account updates stamped before it began are older than what REST just read. The cut
# is set this much earlier, for the uncertainty of our estimate of BingX's clock.
RECONCILE_CUT_MARGIN_MS = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class StreamTimings:
    """How the consumer paces itself. BingX: a listen key lives 60 minutes, each PUT adds 60; the server
    pings every few seconds, so a minute of silence means the socket is dead."""

    keepalive_seconds: float = 30 * 60
    idle_timeout_seconds: float = 60
    connect_timeout_seconds: float = 10
    backoff_initial_seconds: float = 1
    backoff_max_seconds: float = 60
    down_alert_seconds: float = 60
    accounts_refresh_seconds: float = 60  # how often run_stream looks for accounts added or switched off
    # Fills' read-back of positions and balance over REST: at most this often per account. Their protection
    # is placed at once, and the protection left on a position the stream has recorded closed is cancelled
    # at once. ACCOUNT_UPDATE already carries quantities, entry prices and the wallet; the read adds
    # leverage, mark and liquidation prices, BingX's exact balance figures, and the cancel of protection on
    # positions the stream has not seen close. Fills in between share one read: a busy account makes two
    # REST calls (and one short write under its lock) every 2 s, whatever its rate of fills. At 0.5 s, the
    # read-backs' pauses put the stream benchmark's p99 at 2,000 events/s near 80 ms, against 31 without.
    read_back_seconds: float = 2.0

    @classmethod
    def from_settings(cls, **overrides: float) -> StreamTimings:
        return cls(down_alert_seconds=float(settings.STREAM_DOWN_ALERT_SECONDS), **overrides)


# --- applying events (sync; one worker thread per account) ---------------------------------------------


@dataclass
class StreamMemory:
    """What an account's applier remembers between events. One per ``AccountStream``, used only on its
    worker thread (events are applied there one burst at a time, in BingX's order).

    - ``seen``: recent events already applied and committed (order id, execution, cumulative qty, status; an
      account update's digest). A repeat is dropped before it touches the database; the database checks
      (fills keyed by cumulative qty, forward-only status, account-update digests) remain the guarantee.
    - ``last_event_at``: when the last event was applied; written to ``StreamState`` at most every
      ``state_write_seconds`` (with the burst, no commit of its own), and when the stream goes down.
    - ``watermark``: the newest account update applied (``AccountWatermark``), read from ``StreamState`` by
      the first burst after each reconcile and written back with ``last_event_at``. A restart loses nothing
      by the wait: the reconcile that follows every connect moves it past everything applied before.
    - ``leverages``: the symbol profiles' leverages, for positions opened on the stream (read again after
      ``LEVERAGES_SECONDS``; the fills' read-back sets BingX's own within a second anyway).
    - ``follow_ups``: where a filled order's follow-up goes (placing its protection, reading the position
      and balance back over REST), so the events behind a fill never wait for BingX's answers.
    """

    account_id: int
    state_write_seconds: float = STATE_WRITE_SECONDS
    seen: OrderedDict = field(default_factory=OrderedDict)
    last_event_at: datetime | None = None
    state_written_at: float | None = None  # time.monotonic() of the last write of last_event_at
    watermark: AccountWatermark | None = None
    _leverages: dict[str, int] | None = None
    _leverages_read_at: float = 0.0
    # Where the follow-ups of filled orders go (``AccountStream``: its follow-up thread). None: run them on
    # the applier's thread after the burst's commit.
    follow_ups: Callable[[TradingAccount, Order, str | None], None] | None = None

    def is_seen(self, key) -> bool:
        return key is not None and key in self.seen

    def remember(self, keys: Iterable) -> None:
        for key in keys:
            self.seen[key] = None
            self.seen.move_to_end(key)
        while len(self.seen) > MEMORY_EVENTS:
            self.seen.popitem(last=False)

    def state_due(self, now: float) -> bool:
        return self.state_written_at is None or now - self.state_written_at >= self.state_write_seconds

    def leverages(self, account: TradingAccount) -> dict[str, int]:
        clock = time.monotonic()
        if self._leverages is None or clock - self._leverages_read_at >= LEVERAGES_SECONDS:
            self._leverages, self._leverages_read_at = symbol_leverages(account), clock
        return self._leverages


_thread = threading.local()  # .memory: the StreamMemory of the AccountStream whose worker thread this is


def _thread_memory(account: TradingAccount) -> StreamMemory | None:
    memory = getattr(_thread, "memory", None)
    return memory if memory is not None and memory.account_id == account.pk else None


def event_key(event: StreamEvent):
    """What identifies an event for the duplicate memory (None: not remembered)."""
    if isinstance(event, OrderUpdate):
        state = event.order
        order_id = state.exchange_order_id or state.client_order_id
        if not order_id:
            return None
        return ("order", order_id, event.execution, state.filled_qty, state.status)
    if isinstance(event, AccountUpdate):
        return ("account", account_update_digest(event))
    return None


def stream_event_apply(*, account: TradingAccount, event: StreamEvent, memory: StreamMemory | None = None) -> None:
    """Apply one parsed stream event to the database (idempotent), then note the stream is alive.

    ``memory`` defaults to the memory of the ``AccountStream`` whose worker thread this is, if any."""
    stream_events_apply(account=account, events=[event], memory=memory or _thread_memory(account))


def stream_events_apply(
    *, account: TradingAccount, events: list[StreamEvent], memory: StreamMemory | None = None
) -> int:
    """Apply a burst of events, in order, in one transaction (one commit, set-based writes:
    ``trading.stream_apply``); what they announce is published after it, then the follow-ups of orders they
    filled are handed on (``follow_ups``; run here when none is given).

    Each event stays idempotent, and known repeats (``memory``) are dropped first. When an event fails, the
    burst is rolled back and its events are applied again one by one, each in its own transaction, so one
    bad event (logged) costs no other. Returns how many events were applied (repeats and failures not).
    """
    seen: set = set()
    fresh: list[tuple[Any, StreamEvent]] = []
    for event in events:
        key = event_key(event)
        if (memory is not None and memory.is_seen(key)) or (key is not None and key in seen):
            continue
        if key is not None:
            seen.add(key)
        fresh.append((key, event))
    if not fresh:
        return 0
    try:
        outcome = _burst_apply(account, fresh, memory, careful=False)
    except (OperationalError, InterfaceError):
        raise  # the database, not an event: the stream reconnects and reconciles
    except Exception:  # noqa: BLE001 - one bad event must not cost the others: apply them one by one
        logger.warning(
            "stream of %s: a burst of %d events failed; applying them one by one",
            account.name,
            len(fresh),
            exc_info=True,
        )
        applied = 0
        for key, event in fresh:
            if memory is not None and memory.is_seen(key):
                continue
            try:
                alone = _burst_apply(account, [(key, event)], memory, careful=True)
            except (OperationalError, InterfaceError):
                raise
            except Exception:  # noqa: BLE001 - logged; the reconcile after the next reconnect repairs it
                _event_failed(account, event)
                continue
            _burst_done(account, alone, memory, [key])
            applied += 1
        return applied
    _burst_done(account, outcome, memory, [key for key, _ in fresh])
    return len(fresh)


def _burst_apply(
    account: TradingAccount, keyed: list[tuple[Any, StreamEvent]], memory: StreamMemory | None, *, careful: bool
) -> BurstOutcome:
    """Apply ``keyed`` (pairs of an event's ``event_key`` and the event) in one transaction."""
    events = [event for _, event in keyed]
    outcome = BurstOutcome()
    with transaction.atomic():
        writer = BurstWriter(
            account,
            outcome,
            watermark=memory.watermark if memory is not None else None,
            leverages=memory.leverages if memory is not None else None,
            careful=careful,
        )
        # The account first, as every writer of several of its rows (no deadlocks), then the burst's orders and
        # the open positions: one round trip.
        writer.rows_lock([event for event in events if isinstance(event, OrderUpdate)])
        alive = False
        for key, event in keyed:
            if isinstance(event, OrderUpdate):
                writer.order_event(event)
            elif isinstance(event, AccountUpdate):
                writer.account_event(event, digest=key[1] if key else None)
            alive = alive or not isinstance(event, ListenKeyExpired)
        snapshot = writer.finish()
        if outcome.positions_changed:
            publish("positions.updated", None, account_id=account.pk, account=account.name, source="stream")
        if snapshot is not None:
            publish("balances.updated", None, account_id=account.pk, account=account.name, source="stream")
        if alive:
            _last_event_note(account, memory, outcome.watermark)
    return outcome


def _burst_done(account: TradingAccount, outcome: BurstOutcome, memory: StreamMemory | None, keys: list) -> None:
    """After the burst's commit: remember it, then follow up the orders it filled (in order)."""
    if memory is not None:
        memory.remember(key for key in keys if key is not None)
        memory.watermark = outcome.watermark or memory.watermark
    if memory is not None and memory.follow_ups is not None:
        for order, close_reason in outcome.follow_ups:
            memory.follow_ups(account, order, close_reason)
        return
    follow_ups_run(account, outcome.follow_ups)


def follow_ups_run(account: TradingAccount, follow_ups: list[tuple[Order, str | None]]) -> None:
    """The follow-ups of filled orders, together: protection first, then one read of positions and balance
    (``orders_filled_follow_up``)."""
    read_back = follow_ups_protect(account, follow_ups)
    if read_back is not None:
        follow_ups_read_back(account, read_back)


def follow_ups_protect(account: TradingAccount, follow_ups: list[tuple[Order, str | None]]) -> FollowUpReadBack | None:
    """The filled entries' protection, placed now; returns what is left to read back (None: nothing, or
    BingX failed, which is logged and alerted: the reconcile after the next reconnect, the poller and the
    resync complete what it left)."""
    if not follow_ups:
        return None
    try:
        return orders_filled_protect(filled=follow_ups, client=client_for(account), actor=STREAM) or None
    except ExchangeError as error:
        names = ", ".join(f"{order.purpose} {order.client_order_id}" for order, _ in follow_ups)
        _follow_up_failed(account, f"{names} filled; follow-up failed: {error}")
        return None


def follow_ups_protection_cancel(account: TradingAccount, read_back: FollowUpReadBack) -> None:
    """Cancel at once the protection left on positions the stream has recorded closed; the read-back
    (``follow_ups_read_back``, every ``read_back_seconds``) does it for the others from BingX's positions."""
    if not read_back.closed_sides:
        return
    try:
        protection_cancel_where_closed(account=account, read_back=read_back, client=client_for(account), actor=STREAM)
    except ExchangeError as error:
        symbols = ", ".join(sorted(read_back.closed_sides))
        _follow_up_failed(account, f"protection of closed positions on {symbols} not cancelled yet: {error}")


def follow_ups_read_back(account: TradingAccount, read_back: FollowUpReadBack) -> None:
    """One read of BingX's positions and balance for what fills left (``follow_up_read_back``)."""
    try:
        follow_up_read_back(account=account, read_back=read_back, client=client_for(account), actor=STREAM)
    except ExchangeError as error:
        symbols = ", ".join(sorted(read_back.reasons))
        _follow_up_failed(account, f"positions and balance not read back after fills on {symbols}: {error}")


def _follow_up_failed(account: TradingAccount, message: str) -> None:
    logger.error("stream of %s: %s", account.name, message)
    publish("alerts.stream_follow_up_failed", None, account_id=account.pk, account=account.name, message=message)


def _event_failed(account: TradingAccount, event: StreamEvent) -> None:
    logger.exception("stream of %s: event not applied: %r", account.name, event)


def _last_event_note(
    account: TradingAccount, memory: StreamMemory | None, watermark: AccountWatermark | None = None
) -> None:
    """StreamState.last_event_at, and the account watermark ``memory`` keeps: in memory, written at most every
    ``state_write_seconds`` (always without ``memory``)."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_event_at": now}
    if memory is not None:
        memory.last_event_at = now
        clock = time.monotonic()
        if not memory.state_due(clock):
            return
        memory.state_written_at = clock
        if watermark is not None:
            fields.update(account_event_ms=watermark.event_ms, account_event_digests=list(watermark.digests))
    if not StreamState.objects.filter(account=account).update(**fields, updated_at=now):
        StreamState.objects.update_or_create(account=account, defaults=fields)


# --- stream health -------------------------------------------------------------------------------------


def stream_reconcile(*, account: TradingAccount, memory: StreamMemory | None = None) -> None:
    """Make the database match BingX over REST before the stream is trusted again (after every connect).

    ``resync_account`` does it (orders, fills and orders placed by hand during the gap, positions, balance).
    When a resync of the account is already running (Celery beat), the poller's path stands in: orders
    first (a stop loss filled during the gap closes its position with that cause), positions, the balance.
    """
    client = client_for(account)
    reading = clock_reading(client.endpoints.rest_root)
    began_ms = int(time.time() * 1000) + (reading.offset_ms if reading else 0)
    try:
        resync_account(account=account, apply=True, actor=STREAM)
    except ResyncBusy:
        orders_poll(account=account, actor=STREAM)
        positions_sync(account=account, client=client, actor=STREAM)
        balance_sync(account=account, client=client)
    cut = began_ms - RECONCILE_CUT_MARGIN_MS
    StreamState.objects.get_or_create(account=account)
    StreamState.objects.filter(account=account, account_event_ms__lt=cut).update(account_event_ms=cut)
    if memory is not None:
        memory.watermark = None  # the next burst reads it back, cut included


def stream_mark_connected(*, account: TradingAccount, was_alerted: bool) -> None:
    now = timezone.now()
    StreamState.objects.update_or_create(
        account=account,
        defaults={"connected": True, "last_connected_at": now, "last_error": "", "down_alerted_at": None},
    )
    if was_alerted:
        logger.warning("stream of %s is back", account.name)
        publish("alerts.stream_restored", None, account_id=account.pk, account=account.name, message="stream is back")


def stream_mark_down(*, account_id: int, reason: str, memory: StreamMemory | None = None) -> None:
    """The stream is down; what ``memory`` holds of the last event is written now."""
    defaults = {"connected": False, "last_disconnected_at": timezone.now(), "last_error": reason[:2000]}
    if memory is not None and memory.last_event_at is not None:
        defaults["last_event_at"] = memory.last_event_at
        memory.state_written_at = time.monotonic()
    if memory is not None and memory.watermark is not None:
        defaults["account_event_ms"] = memory.watermark.event_ms
        defaults["account_event_digests"] = list(memory.watermark.digests)
    StreamState.objects.update_or_create(account_id=account_id, defaults=defaults)


def stream_alert_down(*, account_id: int, seconds: float, reason: str) -> None:
    account = TradingAccount.objects.filter(pk=account_id).first()
    name = account.name if account else str(account_id)
    message = f"user-data stream down for {seconds:.0f}s: {reason}"
    logger.error("stream of %s: %s", name, message)
    StreamState.objects.update_or_create(account_id=account_id, defaults={"down_alerted_at": timezone.now()})
    publish("alerts.stream_down", None, account_id=account_id, account=name, message=message)


# --- the consumer (async) ------------------------------------------------------------------------------


class Backoff:
    """Exponential backoff with jitter: each wait is between half and all of initial x 2^n, capped."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial, self.cap, self.attempt = initial, cap, 0

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


_OPEN = object()  # queue marker: the socket is open
_END = object()  # queue marker: the socket is gone, nothing follows


class AccountStream:
    """One account's stream, from listen key to applied events, until ``stop`` is set."""

    def __init__(self, account_id: int, timings: StreamTimings) -> None:
        self.account_id = account_id
        self.timings = timings
        # SQLite has one writer at a time: a second thread would only wait for it (or, in memory, fail).
        concurrent = connection.vendor != "sqlite"
        self.memory = StreamMemory(account_id, follow_ups=self._follow_up_submit if concurrent else None)
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"stream-{account_id}", initializer=self._thread_start
        )
        # Follow-ups of fills (REST calls to BingX) run here, one at a time in fill order, beside the applier.
        self.follow_up_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stream-{account_id}-follow")
        self._follow_ups: list[tuple[Order, str | None]] = []
        self._follow_ups_lock = threading.Lock()
        self._follow_ups_scheduled = False
        # Used on the follow-up thread only: what fills left to read back, when it was last read, the timer
        # that hands the next read to the thread.
        self._read_back: FollowUpReadBack | None = None
        self._read_back_account: TradingAccount | None = None
        self._read_back_last: float | None = None
        self._read_back_timer: threading.Timer | None = None
        self.account: TradingAccount | None = None
        self.listen_key: str | None = None
        self.down_since: float | None = None
        self.down_reason = "not connected yet"
        self.alerted = False

    def _thread_start(self) -> None:
        _thread.memory = self.memory  # stream_event_apply on this thread uses this account's memory

    def _follow_up_submit(self, account: TradingAccount, order: Order, close_reason: str | None) -> None:
        """Queue a fill's follow-up; the follow-up thread takes everything queued at once (one read of
        positions and balance for all), in fill order."""
        with self._follow_ups_lock:
            self._follow_ups.append((order, close_reason))
            if self._follow_ups_scheduled:
                return
            self._follow_ups_scheduled = True
        self.follow_up_executor.submit(self._follow_ups_drain, account)

    def _follow_ups_drain(self, account: TradingAccount) -> None:
        with self._follow_ups_lock:
            batch, self._follow_ups = self._follow_ups, []
            self._follow_ups_scheduled = False
        connection_kept()
        try:
            read_back = follow_ups_protect(account, batch)
            if read_back is not None:
                protective_hits_announce(account=account, read_back=read_back)  # now, not with the read-back
                follow_ups_protection_cancel(account, read_back)
                self._read_back = read_back if self._read_back is None else self._read_back.merge(read_back)
                self._read_back_account = account
            self._read_back_when_due(account)
        except Exception:  # noqa: BLE001 - a bug must not stop the thread; the next reconcile completes it
            logger.exception("stream of account %s: follow-ups failed", self.account_id)

    def _read_back_when_due(self, account: TradingAccount, *, now: bool = False) -> None:
        """Read back what fills left, unless the last read was under ``read_back_seconds`` ago: then a timer
        brings it to this thread when it is due (``now``: read it anyway)."""
        if self._read_back is None:
            return
        clock = time.monotonic()
        due = clock if self._read_back_last is None else self._read_back_last + self.timings.read_back_seconds
        if clock < due and not now:
            if self._read_back_timer is None:
                self._read_back_timer = threading.Timer(due - clock, self._read_back_submit, (account,))
                self._read_back_timer.daemon = True
                self._read_back_timer.start()
            return
        if self._read_back_timer is not None:
            self._read_back_timer.cancel()
            self._read_back_timer = None
        read_back, self._read_back = self._read_back, None
        self._read_back_last = clock
        follow_ups_read_back(account, read_back)

    def _read_back_submit(self, account: TradingAccount) -> None:
        with contextlib.suppress(RuntimeError):  # the stream has ended: follow_ups_done read it back
            self.follow_up_executor.submit(self._read_back_timed, account)

    def _read_back_timed(self, account: TradingAccount) -> None:
        self._read_back_timer = None
        connection_kept()
        try:
            self._read_back_when_due(account, now=True)
        except Exception:  # noqa: BLE001 - as in _follow_ups_drain
            logger.exception("stream of account %s: follow-up read-back failed", self.account_id)

    async def follow_ups_done(self) -> None:
        """Wait until every follow-up handed on so far has run, its read-back included (read now if pending)."""

        def read_back_now() -> None:
            if self._read_back is not None:
                self._read_back_timed(self._read_back_account)

        await asyncio.get_running_loop().run_in_executor(self.follow_up_executor, read_back_now)

    async def sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on this account's worker thread (its DB connection and ccxt client live there). While a
        socket is open the thread is in ``events_apply_queued``: ``fn`` waits for the socket's end."""

        def call() -> T:
            connection_kept()
            return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.down_since = loop.time()
        backoff = Backoff(self.timings.backoff_initial_seconds, self.timings.backoff_max_seconds)
        watchdog = asyncio.create_task(self._watch_down(stop))
        try:
            async with stream_session() as session:
                while not stop.is_set():
                    try:
                        self.account = await self.sync(TradingAccount.objects.get, pk=self.account_id)
                        await self._connection(session, stop, backoff)
                        reason = "stopped"
                    except StreamClosed as closed:
                        reason = str(closed)
                        if closed.key_refused:
                            self.listen_key = None
                    except ExchangeError as error:
                        reason = f"BingX: {error}"
                    except Exception as error:  # noqa: BLE001 - a bug must not end the account's stream
                        logger.exception("stream of account %s failed", self.account_id)
                        reason = f"{type(error).__name__}: {error}"
                    await self._went_down(reason)
                    if stop.is_set():
                        break
                    delay = backoff.next()
                    logger.warning("stream of account %s down (%s); again in %.1fs", self.account_id, reason, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await self._release()

    async def _connection(self, session, stop: asyncio.Event, backoff: Backoff) -> None:
        """One listen key + socket: reconcile once it is open, then apply its events in order until it ends."""
        self.listen_key = await self.sync(self._listen_key_ready, self.listen_key)
        url = await self.sync(lambda key: client_for(self.account).user_stream_url(key), self.listen_key)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()  # until the reconcile is done; then the applier thread's inbox
        put: list[Callable[[Any], None]] = [queue.put_nowait]  # where the reader puts what it reads
        failure: list[StreamClosed] = []

        async def read() -> None:
            # Reads (and answers Ping) while the applier is busy, so a slow reconcile costs no heartbeat.
            stream = user_stream(
                session,
                url,
                idle_timeout=self.timings.idle_timeout_seconds,
                connect_timeout=self.timings.connect_timeout_seconds,
            )
            try:
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        put[0](_OPEN if event is None else event)
            except StreamClosed as closed:
                failure.append(closed)
            finally:
                put[0](_END)

        async def apply() -> None:
            if await queue.get() is not _OPEN:
                return
            opened = loop.time()
            await self.sync(stream_reconcile, account=self.account, memory=self.memory)
            await self.sync(stream_mark_connected, account=self.account, was_alerted=self.alerted)
            await self.sync(heap_settle)  # before the events: its one full collection pauses every thread
            self.down_since, self.alerted = None, False
            logger.info("stream of %s connected and reconciled", self.account.name)
            # From here the reader hands events straight to the applier thread, which takes each burst as soon
            # as it is done with the last: no trip through this loop between bursts (it cost ~0.7 ms a burst
            # at 2,000 events/s, with this thread busy reading). What came during the reconcile goes first.
            inbox: SimpleQueue = SimpleQueue()
            while not queue.empty():
                inbox.put(queue.get_nowait())
            put[0] = inbox.put
            try:
                # Each burst applied resets the backoff (events flow: a later drop starts it afresh), from the
                # worker thread: a plain counter, read here only once this socket is done.
                await self.sync(self.events_apply_queued, inbox, on_burst=backoff.reset)
            finally:
                # Cancelled (stopped, the keep-alive refused): the thread ends once it has applied what came first.
                inbox.put(_END)
            if loop.time() - opened >= self.timings.idle_timeout_seconds:
                backoff.reset()

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(self.timings.keepalive_seconds)
                # On the follow-up thread: the applier thread is taken by the events until the socket ends.
                if not await loop.run_in_executor(self.follow_up_executor, self._listen_key_extend, self.listen_key):
                    raise StreamClosed("listen key refused on extension (404)", key_refused=True)

        reader = asyncio.create_task(read())
        applier, keeper, stopper = (asyncio.create_task(job) for job in (apply(), keep_alive(), stop.wait()))
        try:
            done, _ = await asyncio.wait([applier, keeper, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it (a refused key, a failed reconcile)
        finally:
            for task in (reader, applier, keeper, stopper):
                task.cancel()
            await asyncio.gather(reader, applier, keeper, stopper, return_exceptions=True)
        if stop.is_set():
            return
        raise failure[0] if failure else StreamClosed("socket ended")

    def events_apply_queued(self, inbox: SimpleQueue, *, on_burst: Callable[[], None] | None = None) -> None:
        """The applier loop, on this account's worker thread: the events the reader puts in ``inbox``, a burst at
        a time (``stream_events_apply``: what was queued behind the first, at most ``BURST_EVENTS``), until the
        socket's end. ``on_burst`` is called after each burst applied. A database error ends it (raised)."""
        while (burst := self._burst(inbox.get(), inbox)) is not None:
            events, ended = burst
            stream_events_apply(account=self.account, events=events, memory=self.memory)
            if on_burst is not None:
                on_burst()
            if ended:
                return

    @staticmethod
    def _burst(first, inbox: SimpleQueue) -> tuple[list[StreamEvent], bool] | None:
        """``first`` and what is queued behind it (at most ``BURST_EVENTS``; nothing is waited for), and
        whether the socket's end came with them. None: the socket ended."""
        if first is _END:
            return None
        events = [first]
        while len(events) < BURST_EVENTS:
            try:
                event = inbox.get_nowait()
            except Empty:
                break
            if event is _END:
                return events, True
            events.append(event)
        return events, False

    def _listen_key_extend(self, key: str) -> bool:
        return client_for(self.account).listen_key_extend(key)

    def _listen_key_ready(self, key: str | None) -> str:
        client = client_for(self.account)
        if key and client.listen_key_extend(key):
            return key
        return client.listen_key_create()

    async def _went_down(self, reason: str) -> None:
        self.down_reason = reason
        if self.down_since is None:
            self.down_since = asyncio.get_running_loop().time()
        with contextlib.suppress(Exception):
            await self.sync(stream_mark_down, account_id=self.account_id, reason=reason, memory=self.memory)

    async def _watch_down(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        limit = self.timings.down_alert_seconds
        tick = max(0.05, min(1.0, limit / 4))
        while not stop.is_set():
            await asyncio.sleep(tick)
            if self.down_since is None or self.alerted:
                continue
            down_for = loop.time() - self.down_since
            if down_for >= limit:
                self.alerted = True
                try:
                    await self.sync(
                        stream_alert_down, account_id=self.account_id, seconds=down_for, reason=self.down_reason
                    )
                except Exception:  # noqa: BLE001 - the alert must not end the watch
                    logger.exception("stream of account %s: down alert failed", self.account_id)

    async def _release(self) -> None:
        """Give the listen key up and close the worker and follow-up threads' database connections."""

        def release() -> None:
            try:
                if self.listen_key and self.account is not None:
                    client_for(self.account).listen_key_delete(self.listen_key)
            except ExchangeError as error:
                logger.info("listen key of account %s not deleted: %s", self.account_id, error)
            finally:
                connection.close()

        def follow_ups_release() -> None:
            connection.close()

        # The worker thread first: this waits for its applier loop to end (it applies what the reader had
        # queued), which may hand on follow-ups; then those, then the follow-up thread's connection.
        with contextlib.suppress(Exception):
            await self.sync(release)
        self.executor.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await self.follow_ups_done()
            await asyncio.get_running_loop().run_in_executor(self.follow_up_executor, follow_ups_release)
        self.follow_up_executor.shutdown(wait=False)


def heap_settle() -> None:
    """Collect, then freeze what survives (``gc.freeze``, as CPython's documentation advises servers to).

    What a connected stream holds (Django, ccxt and its markets, the clients, the accounts) is never garbage,
    but the collector's full passes walked all of it: about 350,000 objects, 130 ms with every thread stopped,
    once every few tens of thousands of events. In the stream benchmark that one pause put p99 at 2,000
    events/s at 150-200 ms instead of 40. Later full passes walk only what came after. Run after each
    (re)connect, once the reconcile has loaded what it needs, so the pause falls before events flow."""
    gc.collect()
    gc.freeze()


def connection_kept() -> None:
    """This thread's database connection, kept from one call to the next. An account's applier thread and
    its follow-up thread are each their connection's only user: handing it back to the pool after every
    burst (which Django's ``close_old_connections`` does at CONN_MAX_AGE=0) cost a return, a reset and a
    health check per burst, more than applying 30 events. ``run_stream`` checks the pool holds two per
    account. A connection an error left unusable (a database restart) is dropped, so the call takes a fresh
    one."""
    if connection.connection is not None and connection.errors_occurred and not connection.is_usable():
        connection.close()


def stream_accounts() -> list[TradingAccount]:
    """Active live/demo accounts with an API key pair: the ones ``run_stream`` follows."""
    return [account for account in exchange_accounts() if account.has_api_credentials]


async def streams_run(
    stop: asyncio.Event, *, timings: StreamTimings | None = None, account_names: Iterable[str] = ()
) -> None:
    """Run one ``AccountStream`` per active live/demo account (or the named ones) until ``stop`` is set;
    accounts switched on or off are picked up every ``accounts_refresh_seconds``."""
    timings = timings or StreamTimings.from_settings()
    names = set(account_names)
    running: dict[int, tuple[asyncio.Event, asyncio.Task]] = {}
    lookup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-accounts")

    def wanted() -> set[int]:
        close_old_connections()
        try:
            return {account.pk for account in stream_accounts() if not names or account.name in names}
        finally:
            connection.close()

    try:
        while not stop.is_set():
            ids = await asyncio.get_running_loop().run_in_executor(lookup, wanted)
            for account_id in ids - running.keys():
                own_stop = asyncio.Event()
                task = asyncio.create_task(AccountStream(account_id, timings).run(own_stop))
                running[account_id] = (own_stop, task)
                logger.info("stream of account %s started", account_id)
            for account_id in set(running) - ids:
                own_stop, task = running.pop(account_id)
                own_stop.set()
                await task
                logger.info("stream of account %s stopped (account switched off)", account_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timings.accounts_refresh_seconds)
    finally:
        for own_stop, _ in running.values():
            own_stop.set()
        await asyncio.gather(*(task for _, task in running.values()), return_exceptions=True)
        lookup.shutdown(wait=False)
