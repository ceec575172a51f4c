"""Taking in a TradingView alert: authenticate, validate, de-duplicate, store durably, then hand over.

The signal row is committed before the webhook answers; processing starts only after the commit
(``dispatch.signals_dispatch``), and a sweeper picks up anything whose hand-over was lost. So an alert
that got a 2xx is never lost, and one that was stored is never run twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, models, router, transaction
from django.db.models import Field, Q
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery
from django.utils import timezone

from signals_app.events import publish
from signals_app.models import Signal
from signals_app.payload import NormalisedAlert, normalise_alert, parse_body
from signals_app.services import signal_transition
from trading.audit import Actor, audit_event_new
from trading.markets import UnknownSymbol, markets_catalog
from trading.models import AuditEvent, RiskLimits, TradingAccount
from trading.risk import signal_lag_rejection
from trading.secrets import webhook_secret_digest

logger = logging.getLogger(__name__)

HEADER_TOKEN = "X-TRADINGVIEW-TOKEN"
STORED_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "Content-Length")


@dataclass
class IngestResult:
    http_status: int
    body: dict[str, Any]
    dispatch: list[Signal] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookAccount:
    """What the webhook needs of the account a secret belongs to."""

    id: int
    name: str
    max_signal_lag_seconds: int | None  # None: the account has no RiskLimits row yet


_DIGEST_PLACEHOLDER = "digest-placeholder"


@functools.cache
def _account_lookup_sql(vendor: str) -> str:
    """The account lookup, compiled by the ORM once per process and database vendor.

    Compiling the query was ~0.3 ms of CPU per alert (more than parsing and validating the alert), spent
    under the GIL that every request of the process shares; running the compiled SQL is ~0.05 ms.
    """
    query = (
        TradingAccount.objects.filter(
            Q(webhook_secret_hash=_DIGEST_PLACEHOLDER) | Q(webhook_secret_previous_hash=_DIGEST_PLACEHOLDER),
            is_active=True,
        )
        .order_by("pk")
        .values_list("pk", "name", "risk_limits__max_signal_lag_seconds")[:1]
    ).query
    sql, params = query.sql_with_params()
    if tuple(params) != (_DIGEST_PLACEHOLDER, _DIGEST_PLACEHOLDER):  # the digests must be its only parameters
        raise RuntimeError(f"unexpected parameters in the account lookup: {params!r}")
    return sql


def account_for_secret(*candidates: str | None) -> WebhookAccount | None:
    """The active account whose current or previous webhook secret is one of the candidates.

    Only SHA-256 digests are stored and looked up, so the comparison never touches a stored secret.
    Read from the database on every call (no cache), so a rotation or a deactivation applies at once.
    """
    for candidate in candidates:
        if not candidate or not isinstance(candidate, str):
            continue
        digest = webhook_secret_digest(candidate)
        with connection.cursor() as cursor:
            cursor.execute(_account_lookup_sql(connection.vendor), [digest, digest])
            row = cursor.fetchone()
        if row is not None:
            return WebhookAccount(*row)
    return None


def _stale_problem(alert: NormalisedAlert, account: WebhookAccount, now: datetime) -> str | None:
    account_max_lag = account.max_signal_lag_seconds
    if account_max_lag is None:
        account_max_lag = RiskLimits._meta.get_field("max_signal_lag_seconds").default
    rejection = signal_lag_rejection(
        sent_at=alert.sent_at, alert_max_lag=alert.max_lag_s, account_max_lag=account_max_lag, now=now
    )
    return f"sent_at: {rejection.message}" if rejection else None


def _resolve_symbol(alert: NormalisedAlert) -> None:
    if not alert.symbol or any(problem.startswith("symbol:") for problem in alert.problems):
        return
    try:
        alert.symbol = markets_catalog().resolve(alert.symbol).symbol
    except UnknownSymbol as error:
        alert.problems.append(f"symbol: {error}")


def _idempotency_keys(alerts: list[NormalisedAlert], now: datetime) -> list[tuple[str, str | None]]:
    """(key, previous-window key) per alert. With alert_id the key is it; without, a payload hash per window."""
    keys = []
    window = settings.WEBHOOK_DEDUPE_WINDOW_SECONDS
    for index, alert in enumerate(alerts, start=1):
        suffix = f"#{index}" if len(alerts) > 1 else ""
        if alert.alert_id:
            keys.append((alert.alert_id + suffix, None))
            continue
        bucket = int(now.timestamp() // window)
        digest = alert.fingerprint()[:48]
        keys.append((f"h:{digest}:{bucket}{suffix}", f"h:{digest}:{bucket - 1}{suffix}"))
    return keys


def _signal_fields(alert: NormalisedAlert) -> dict[str, Any]:
    stop = alert.stop_loss
    return {
        "symbol": alert.symbol,
        "action": alert.action,
        "size_mode": alert.size_mode,
        "size_value": alert.size_value,
        "order_type": alert.order_type or Signal.OrderType.MARKET,
        "price": alert.price,
        "sl_price": stop.price if stop else None,
        "sl_pct": stop.pct if stop else None,
        "tp_levels": [{"price": leg.price, "pct": leg.pct, "size_pct": leg.size_pct} for leg in alert.take_profits],
        "leverage": alert.leverage,
        "margin_mode": alert.margin_mode,
        "confidence": alert.confidence,
        "strategy": alert.strategy,
        "timeframe": alert.timeframe,
        "comment": alert.comment,
        "sent_at": alert.sent_at,
        "max_lag_seconds": alert.max_lag_s,
        "extras": {
            key: value
            for key, value in (
                ("breakeven", alert.breakeven),
                ("trailing", alert.trailing),
                ("symbol_settings", alert.symbol_settings),
            )
            if value
        },
    }


@functools.cache
def _insert_statement(model: type[models.Model], alias: str, vendor: str) -> tuple[str, tuple[Field, ...]] | None:
    """The INSERT Model.save() runs for a new row of the model, compiled by the ORM once per process and database.

    None where the shortcut does not apply (then _insert saves through the ORM): a backend that cannot return
    the new id from the INSERT, a field whose placeholder depends on its value, or a returned id needing a
    converter. What save() does beside compiling stays: the same fields (concrete, but the auto id), the
    same pre_save (auto_now) and get_db_prep_save per value, RETURNING the id.
    """
    connection = connections[alias]
    meta = model._meta
    if (
        not connection.features.can_return_columns_from_insert
        or meta.parents
        or meta.db_returning_fields != [meta.pk]
        or meta.pk is not meta.auto_field
    ):
        return None
    fields = tuple(item for item in meta.local_concrete_fields if item is not meta.auto_field and not item.generated)
    if any(hasattr(item, "get_placeholder") for item in fields):
        return None
    query = InsertQuery(model)
    query.insert_values(fields, [model()])
    compiler = query.get_compiler(using=alias)
    compiler.returning_fields = meta.db_returning_fields
    [(sql, params)] = compiler.as_sql()
    converters = compiler.get_converters([meta.pk.get_col(meta.db_table)])
    if len(params) != len(fields) or compiler.returning_params or converters:
        return None
    return sql, fields


def _insert(instance: models.Model) -> None:
    """Insert a new row as ``instance.save(force_insert=True)`` would, with the statement compiled once.

    Compiling Signal's INSERT (30-odd columns) and running save()'s machinery took ~0.25 ms of CPU per alert,
    under the GIL every request of the process shares. Only for models whose save() adds nothing to an insert
    (Signal does not override it; AuditEvent's only refuses updates) and with no model signal receivers (the
    project connects none: if one ever is, save() runs and sends them).
    """
    model = type(instance)
    alias = router.db_for_write(model, instance=instance)
    connection = connections[alias]
    statement = _insert_statement(model, alias, connection.vendor)
    if statement is None or pre_save.has_listeners(model) or post_save.has_listeners(model):
        instance.save(force_insert=True, using=alias)
        return
    sql, fields = statement
    values = []
    for model_field in fields:
        value = model_field.pre_save(instance, True)
        if hasattr(value, "resolve_expression"):  # an expression is compiled into the SQL: the ORM's job
            instance.save(force_insert=True, using=alias)
            return
        values.append(model_field.get_db_prep_save(value, connection=connection))
    with transaction.mark_for_rollback_on_error(alias), connection.cursor() as cursor:
        cursor.execute(sql, values)
        (instance.pk,) = cursor.fetchone()
    instance._state.adding = False
    instance._state.db = alias


_NEW_SIGNAL = "new_signal"
# The largest bigint: the longest id there can be. A signal's repr that is not cut to 200 characters with it is
# not cut with any id (see _insert_with_audit).
_ID_PLACEHOLDER = 9_223_372_036_854_775_807


@functools.cache
def _signal_and_audit_sql(alias: str, vendor: str) -> tuple[str, tuple[Field, ...], tuple[Field, ...]] | None:
    """One PostgreSQL statement inserting a signal and its "signal.received" audit event, built once per process.

    ``WITH new_signal AS (INSERT INTO signal ... RETURNING id) INSERT INTO auditevent (...) SELECT ... FROM
    new_signal``: the audit row takes its object_id and object_repr from the new id. None elsewhere (SQLite has
    no INSERT in a WITH clause).
    """
    signal_statement = _insert_statement(Signal, alias, vendor)
    audit_statement = _insert_statement(AuditEvent, alias, vendor)
    if vendor != "postgresql" or signal_statement is None or audit_statement is None:
        return None
    signal_sql, signal_fields = signal_statement
    audit_fields = audit_statement[1]
    quote = connections[alias].ops.quote_name
    new_id = f"{quote(_NEW_SIGNAL)}.{quote(Signal._meta.pk.column)}::text"
    values = {"object_id": new_id, "object_repr": f"%s || {new_id} || %s"}  # repr: text before and after the id
    table = quote(AuditEvent._meta.db_table)
    sql = (
        f"WITH {quote(_NEW_SIGNAL)} AS ({signal_sql}) "
        f"INSERT INTO {table} ({', '.join(quote(field.column) for field in audit_fields)}) "
        f"SELECT {', '.join(values.get(field.name, '%s') for field in audit_fields)} FROM {quote(_NEW_SIGNAL)} "
        f"RETURNING {table}.{quote(AuditEvent._meta.pk.column)}, {table}.{quote('object_id')}"
    )
    return sql, signal_fields, audit_fields


def _insert_with_audit(signal: Signal, *, actor: Actor, key: str) -> bool:
    """Store a new signal and its "signal.received" audit event in one statement; False where that cannot be.

    The same rows as _insert(signal) then _insert(audit_event_new(...)) in a transaction, in one round trip
    instead of four (BEGIN, two INSERTs, COMMIT). Each database round trip costs the webhook CPU under the
    shared GIL, more so under load (the thread gives the GIL up and must win it back). A single statement
    is atomic by itself, and committed (durably: synchronous_commit) when it returns, as the transaction
    was. Not inside a transaction (the signals of an `actions` list are stored together; a failed INSERT
    there must only undo its own savepoint), and only when no model signal receiver wants save().
    """
    alias = router.db_for_write(Signal, instance=signal)
    connection = connections[alias]
    if connection.in_atomic_block or not connection.get_autocommit():
        return False
    statement = _signal_and_audit_sql(alias, connection.vendor)
    if statement is None or any(
        receivers.has_listeners(model) for receivers in (pre_save, post_save) for model in (Signal, AuditEvent)
    ):
        return False
    sql, signal_fields, audit_fields = statement
    signal.pk = _ID_PLACEHOLDER  # so the audit event's repr shows where the id goes
    full_repr = str(signal)
    event = audit_event_new(actor=actor, action="signal.received", instance=signal, after={"key": key})
    signal.pk = None
    placeholder = str(_ID_PLACEHOLDER)
    if len(full_repr) > 200 or full_repr.count(placeholder) != 1 or event.object_id != placeholder:
        return False  # a repr audit_event_new would cut, or not made with the id as expected: the general path
    repr_before, repr_after = event.object_repr.split(placeholder)
    values = []
    for instance, fields in ((signal, signal_fields), (event, audit_fields)):
        for model_field in fields:
            if instance is event and model_field.name == "object_id":
                continue
            if instance is event and model_field.name == "object_repr":
                values += [repr_before, repr_after]
                continue
            value = model_field.pre_save(instance, True)
            if hasattr(value, "resolve_expression"):
                return False
            values.append(model_field.get_db_prep_save(value, connection=connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        event.pk, event.object_id = cursor.fetchone()
    signal.pk = int(event.object_id)
    event.object_repr = f"{repr_before}{event.object_id}{repr_after}"
    for instance in (signal, event):
        instance._state.adding = False
        instance._state.db = alias
    return True


def _existing(account: WebhookAccount, key: str, previous_key: str | None, window_start: datetime) -> Signal | None:
    existing = Signal.objects.filter(account_id=account.id, idempotency_key=key).first()
    if existing is None and previous_key:
        existing = Signal.objects.filter(
            account_id=account.id, idempotency_key=previous_key, received_at__gte=window_start
        ).first()
    return existing


def _store(
    *,
    account: WebhookAccount,
    alert: NormalisedAlert,
    key: str,
    previous_key: str | None,
    raw_text: str,
    headers: dict[str, str],
    source_ip: str | None,
    now: datetime,
) -> tuple[Signal, str]:
    """Insert the signal (rejected at once when it has problems); returns (signal, outcome).

    outcome: "created", "duplicate" (same request seen before) or "conflict" (same key, other request).
    The unique constraint on (account, idempotency_key) decides races between concurrent deliveries.
    """
    fingerprint = alert.fingerprint()
    existing = None
    if previous_key:  # payload-hash keys also look one window back; an alert_id key is decided by the insert
        window_start = now - timedelta(seconds=settings.WEBHOOK_DEDUPE_WINDOW_SECONDS)
        existing = _existing(account, key, previous_key, window_start)
    if existing is None:
        try:
            signal = Signal(
                account_id=account.id,
                raw_body=raw_text,
                headers=headers,
                source_ip=source_ip,
                idempotency_key=key,
                payload_hash=fingerprint,
                received_at=now,
                **_signal_fields(alert),
            )
            actor = Actor.webhook(source_ip)
            if not alert.problems and _insert_with_audit(signal, actor=actor, key=key):
                publish("signals.raw", signal)  # committed already: on_commit sends it at once
            else:
                with transaction.atomic():
                    _insert(signal)
                    _insert(audit_event_new(actor=actor, action="signal.received", instance=signal, after={"key": key}))
                    publish("signals.raw", signal)
                    if alert.problems:
                        signal_transition(
                            signal=signal, to=Signal.Status.REJECTED, actor=actor, reason="; ".join(alert.problems)
                        )
            return signal, "created"
        except IntegrityError:
            existing = Signal.objects.get(account_id=account.id, idempotency_key=key)  # a concurrent delivery won
    outcome = "duplicate" if existing.payload_hash == fingerprint else "conflict"
    return existing, outcome


def signal_ingest(
    *, raw_body: bytes, headers: Mapping[str, str], source_ip: str | None, url_token: str | None = None
) -> IngestResult:
    """Everything the webhook does after the transport checks (size, allowlist, rate limit)."""
    parsed = parse_body(raw_body)
    body_secret = parsed.data.get("secret") if parsed.data else None
    account = account_for_secret(url_token, headers.get(HEADER_TOKEN), body_secret)
    if account is None:
        return IngestResult(401, {"error": "unauthorized: missing or wrong webhook secret"})

    now = timezone.now()
    # PostgreSQL text cannot hold NUL: the one change to the body as received (parse_body reports it).
    raw_text = raw_body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    stored_headers = {name: headers[name] for name in STORED_HEADERS if name in headers}
    if parsed.data is None or parsed.problems:
        alerts = [NormalisedAlert(problems=list(parsed.problems))]
        keys = [("invalid:" + hashlib.sha256(raw_body).hexdigest(), None)]
    else:
        alerts = normalise_alert(parsed.data)
        for alert in alerts:
            if alert.account and alert.account != account.name:
                alert.problems.append(
                    f"account: this secret belongs to account '{account.name}', not '{alert.account}'"
                )
            _resolve_symbol(alert)
            stale = _stale_problem(alert, account, now)
            if stale:
                alert.problems.append(stale)
        keys = _idempotency_keys(alerts, now)

    results, to_dispatch = [], []
    # The signals of one `actions` list are stored all together or not at all; a single alert needs no
    # outer transaction (its own insert is one).
    with transaction.atomic() if len(alerts) > 1 else nullcontext():
        for alert, (key, previous_key) in zip(alerts, keys, strict=True):
            signal, outcome = _store(
                account=account,
                alert=alert,
                key=key,
                previous_key=previous_key,
                raw_text=raw_text,
                headers=stored_headers,
                source_ip=source_ip,
                now=now,
            )
            results.append((signal, outcome, alert))
            if outcome == "created" and signal.status == Signal.Status.RECEIVED:
                to_dispatch.append(signal)
    return _response(results, to_dispatch)


def _response(results: list[tuple[Signal, str, NormalisedAlert]], to_dispatch: list[Signal]) -> IngestResult:
    items = [
        {"signal_id": signal.pk, "status": signal.status, **({"duplicate": True} if outcome == "duplicate" else {})}
        for signal, outcome, _ in results
    ]
    body: dict[str, Any] = dict(items[0])
    if len(items) > 1:
        body["signals"] = items
    outcomes = {outcome for _, outcome, _ in results}
    if "conflict" in outcomes:
        return IngestResult(
            409,
            {**body, "error": "conflict: this alert_id was already used for a different alert"},
        )
    created = [(signal, alert) for signal, outcome, alert in results if outcome == "created"]
    if created and any(alert.problems for _, alert in created):
        problems = list(dict.fromkeys(problem for _, alert in created for problem in alert.problems))
        return IngestResult(400, {**body, "errors": problems})
    if not created:
        return IngestResult(200, body)
    return IngestResult(202, body, dispatch=to_dispatch)
