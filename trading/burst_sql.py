"""The SQL of the stream's bursts (``trading.stream_apply``): their reads and writes in few statements.

Reads: the rows a burst locks are read with SQL written once, not built by the ORM each time, and sent
together in one round trip (``burst_rows_locked``; the rows become model instances as Django converts its
own). On the development machines the ORM took 0.3-0.7 ms of CPU to build each of these queries, more than
PostgreSQL took to run it, and a burst made five of them whatever its size.

Writes: one statement per table and burst. On PostgreSQL the values go to psycopg as they are
(``Decimal``, aware ``datetime``, ``str``, ``int``), and psycopg writes them in C. Django's own path
prepares each value in Python (``get_db_prep_save``) and ``bulk_create`` quotes its arrays in Python too:
together that was about a third of a burst's time at 2,000 events/s. Columns of any other kind (JSON, and
anything not listed in ``_AS_THEY_ARE``) still go through ``get_db_prep_save``. Errors are Django's
(``IntegrityError``, ``OperationalError``), as for its own statements. Elsewhere (SQLite) the writes are
Django's ``bulk_create`` and ``QuerySet.update``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import psycopg
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

# The column types whose Python values psycopg writes as Django would: passed as they are.
_AS_THEY_ARE = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "DateTimeField",
        "DecimalField",
        "ForeignKey",
        "IntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "TextField",
    }
)


def account_lock_sql() -> str:
    """The statement that takes an account's lock (``account_positions_lock``); its one parameter is the id."""
    from trading.models import TradingAccount

    return f"SELECT 1 FROM {_table(TradingAccount)} WHERE {_column(TradingAccount, 'id')} = %s FOR UPDATE"


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[models.Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def burst_rows_locked(account_id: int, exchange_ids: Iterable[str], client_ids: Iterable[str]) -> tuple[list, list]:
    """Lock the account (``account_positions_lock``), then its orders with any of these BingX or client ids,
    then its open positions, in that order (pk order within a table: one lock order for every writer), in one
    round trip (psycopg's pipeline mode). Returns (orders, each with its signal; open positions). On SQLite,
    which has no row locks, two plain reads."""
    from signals_app.models import Signal
    from trading.models import Order, Position

    exchange_ids, client_ids = sorted(set(exchange_ids)), sorted(set(client_ids))
    if connection.vendor != "postgresql":
        named = Q(exchange_order_id__in=exchange_ids) | Q(client_order_id__in=client_ids)
        orders = Order.objects.select_related("signal").filter(named, account_id=account_id).order_by("pk")
        positions = Position.objects.filter(account_id=account_id, status=Position.Status.OPEN).order_by("pk")
        return list(orders), list(positions)
    statements = [
        (account_lock_sql(), [account_id]),
        (
            f"SELECT * FROM {_table(Order)} WHERE {_column(Order, 'account')} = %s AND "
            f"({_column(Order, 'exchange_order_id')} = ANY(%s) OR {_column(Order, 'client_order_id')} = ANY(%s)) "
            f"ORDER BY {_column(Order, 'id')} FOR UPDATE",
            [account_id, exchange_ids, client_ids],
        ),
        (
            f"SELECT * FROM {_table(Position)} WHERE {_column(Position, 'account')} = %s AND "
            f"{_column(Position, 'status')} = %s ORDER BY {_column(Position, 'id')} FOR UPDATE",
            [account_id, Position.Status.OPEN],
        ),
    ]
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    started = time.monotonic()
    raw = connection.connection
    with connection.wrap_database_errors, raw.pipeline():
        cursors = [psycopg.Cursor(raw) for _ in statements]
        for cursor, (sql, params) in zip(cursors, statements, strict=True):
            cursor.execute(sql, params)
        orders = _instances(Order, cursors[1])
        positions = _instances(Position, cursors[2])
        for cursor in cursors:
            cursor.close()
    if connection.queries_logged:
        for sql, _ in statements:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    signal_ids = {order.signal_id for order in orders if order.signal_id is not None}
    signals = Signal.objects.in_bulk(signal_ids) if signal_ids else {}
    for order in orders:
        order.signal = signals.get(order.signal_id)  # cached: reading it makes no query
    return orders, positions


def _instances(model: type[models.Model], cursor: psycopg.Cursor) -> list:
    """The rows a ``SELECT *`` cursor holds as model instances, converted as Django converts its own reads
    (``RawQuerySet`` does the same)."""
    from django.db.models.sql import Query

    rows = cursor.fetchall()
    by_column = {field.column: field for field in model._meta.concrete_fields}
    fields = [by_column[column.name] for column in cursor.description]
    compiler = connection.ops.compiler("SQLCompiler")(Query(model), connection, connection.alias)
    converters = compiler.get_converters([field.get_col(model._meta.db_table) for field in fields])
    if converters:
        rows = compiler.apply_converters(rows, converters)
    # from_db takes the values in the model's field order; a table's columns may be in another (migrations
    # add columns at its end).
    position = {field.attname: index for index, field in enumerate(fields)}
    order = [position[field.attname] for field in model._meta.concrete_fields]
    names = [field.attname for field in model._meta.concrete_fields]
    return [model.from_db(connection.alias, names, [row[index] for index in order]) for row in rows]


def closing_fills(account_id: int, symbols: Iterable[str], since) -> list[tuple]:
    """The account's fills on ``symbols`` executed since ``since``, oldest first, each as (trade id, realized
    PnL, executed at, and of its order: symbol, side, position side, reduce-only, purpose, type, signal id,
    and the signal's action)."""
    from signals_app.models import Signal
    from trading.models import Fill, Order

    symbols = sorted(set(symbols))
    if connection.vendor != "postgresql":
        rows = Fill.objects.filter(order__account_id=account_id, order__symbol__in=symbols, executed_at__gte=since)
        return list(
            rows.order_by("executed_at", "pk").values_list(
                "exchange_trade_id",
                "realized_pnl",
                "executed_at",
                "order__symbol",
                "order__side",
                "order__position_side",
                "order__reduce_only",
                "order__purpose",
                "order__order_type",
                "order__signal_id",
                "order__signal__action",
            )
        )
    order = [
        f"o.{_column(Order, name)}"
        for name in ("symbol", "side", "position_side", "reduce_only", "purpose", "order_type", "signal")
    ]
    sql = (
        f"SELECT f.{_column(Fill, 'exchange_trade_id')}, f.{_column(Fill, 'realized_pnl')}, "
        f"f.{_column(Fill, 'executed_at')}, {', '.join(order)}, s.{_column(Signal, 'action')} "
        f"FROM {_table(Fill)} f JOIN {_table(Order)} o ON o.{_column(Order, 'id')} = f.{_column(Fill, 'order')} "
        f"LEFT JOIN {_table(Signal)} s ON s.{_column(Signal, 'id')} = o.{_column(Order, 'signal')} "
        f"WHERE o.{_column(Order, 'account')} = %s AND o.{_column(Order, 'symbol')} = ANY(%s) "
        f"AND f.{_column(Fill, 'executed_at')} >= %s ORDER BY f.{_column(Fill, 'executed_at')}, f.{_column(Fill, 'id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, symbols, since])
        return cursor.fetchall()


def rows_update(model: type[models.Model], dirty: Iterable[tuple[models.Model, set[str]]]) -> None:
    """Write the changed fields of rows the caller holds locked, in one statement (``UPDATE ... FROM
    (VALUES ...)``: one round trip, one plan). ``dirty``: pairs of (row, its changed field names). Each row
    gets every field any of them changed: the caller read each whole and has held it locked since, so a
    field it did not change is written back as it is."""
    dirty = list(dirty)
    if not dirty:
        return
    columns = [model._meta.get_field(name) for name in sorted(set().union(*(fields for _, fields in dirty)))]
    if connection.vendor != "postgresql":
        for row, _ in dirty:
            model.objects.filter(pk=row.pk).update(
                **{column.attname: getattr(row, column.attname) for column in columns}
            )
        return
    quote = connection.ops.quote_name
    names = [quote(column.column) for column in columns]
    pk = quote(model._meta.pk.column)
    # Each value cast to its column's type (without its size: a cast must not truncate) in the first row.
    types = [model._meta.pk.db_type(connection), *(column.db_type(connection) for column in columns)]
    first = "(" + ", ".join(f"%s::{kind.split('(')[0]}" for kind in types) + ")"
    other = "(" + ", ".join(["%s"] * len(types)) + ")"
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS t SET "
        + ", ".join(f"{name} = v.{name}" for name in names)
        + f" FROM (VALUES {', '.join([first] + [other] * (len(dirty) - 1))}) AS v({pk}, {', '.join(names)})"
        + f" WHERE t.{pk} = v.{pk}"
    )
    values = _values_of(tuple(columns), adding=False)
    now = timezone.now()
    _execute(sql, [value for row, _ in dirty for value in (row.pk, *values(row, now))])


INSERT_ROWS = 1000  # rows per INSERT statement (PostgreSQL takes at most 65,535 parameters in one)


def rows_insert(model: type[models.Model], rows: list[models.Model], *, returning: bool = False) -> None:
    """Insert new rows, as many as ``INSERT_ROWS`` per statement (one round trip each; a ``COPY`` takes two,
    which cost more than it saves for a burst's few dozen rows). ``returning``: give each row its id."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(rows)
        return
    columns = tuple(column for column in model._meta.concrete_fields if not column.primary_key)
    quote = connection.ops.quote_name
    values = _values_of(columns, adding=True)
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(column.column) for column in columns)}) "
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    for start in range(0, len(rows), INSERT_ROWS):
        chunk = rows[start : start + INSERT_ROWS]
        sql = head + f"VALUES {', '.join([placeholders] * len(chunk))}"
        if returning:
            sql += f" RETURNING {quote(model._meta.pk.column)}"
        now = timezone.now()
        ids = _execute(sql, [value for row in chunk for value in values(row, now)], returns_rows=returning)
        if not returning:
            continue
        # PostgreSQL returns the ids in the order of VALUES (as bulk_create relies on too).
        for row, (pk,) in zip(chunk, ids, strict=True):
            row.pk = pk
            row._state.adding, row._state.db = False, connection.alias


@contextlib.contextmanager
def writes_pipelined(enabled: bool = True):
    """Send the writes made inside together (psycopg's pipeline mode): their round trips are paid once, at
    the end, and where one's result is read (an insert's new ids). PostgreSQL runs them in order, in the
    caller's transaction; an error in one is raised at the end, and the transaction is then rolled back.
    Only for ``rows_insert`` and ``rows_update``: Django's own statements read results this mode holds back
    (``save()`` checks the rows it updated)."""
    if not enabled or connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


def _execute(sql: str, params: list, *, returns_rows: bool = False) -> list:
    """Run one statement on a plain psycopg cursor (server-side binding: psycopg sends the values as they
    are) on Django's connection, in its transaction, and return its rows (``returns_rows``; a write returns
    none, so within ``writes_pipelined`` it is only sent). As for Django's own statements: its exceptions,
    its ``execute_wrappers``, and its query log (``CaptureQueriesContext``, ``assertNumQueries``) see it."""
    connection.ensure_connection()
    connection.validate_no_broken_transaction()

    def run(sql, params, many, context) -> list:
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if returns_rows else []

    executor = run
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    started = time.monotonic()
    try:
        return executor(sql, params, False, {"connection": connection, "cursor": None})
    finally:
        if connection.queries_logged:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


@functools.cache
def _values_of(columns: tuple[models.Field, ...], *, adding: bool) -> Callable[[models.Model, Any], list]:
    """A function giving a row's values for ``columns`` (``values(row, now)``): as they are where psycopg
    writes them as Django would, else prepared by Django. When ``adding``, ``auto_now`` and ``auto_now_add``
    date-times are stamped with ``now`` (one clock reading for the statement's rows), as ``pre_save`` would."""
    getters = []
    for column in columns:
        stamped = adding and (getattr(column, "auto_now", False) or getattr(column, "auto_now_add", False))
        if stamped and isinstance(column, models.DateTimeField):
            getters.append(functools.partial(_stamped_now, column.attname))
        elif stamped:
            getters.append(
                lambda row, now, column=column: column.get_db_prep_save(column.pre_save(row, True), connection)
            )
        elif column.get_internal_type() in _AS_THEY_ARE:
            getter = attrgetter(column.attname)
            getters.append(lambda row, now, getter=getter: getter(row))
        else:
            getters.append(
                lambda row, now, column=column: column.get_db_prep_save(getattr(row, column.attname), connection)
            )
    return lambda row, now: [getter(row, now) for getter in getters]


def _stamped_now(attname: str, row: models.Model, now) -> Any:
    setattr(row, attname, now)
    return now
