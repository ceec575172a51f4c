"""The SQL of the stream's bursts (``trading.stream_apply``): their reads and writes in few statements.

Reads: the rows a burst locks, and the signals of its orders, are read with SQL written once, not built by
the ORM each time, and sent together in one round trip (``burst_rows_locked``; the rows become model
instances as Django converts its own). On the development machines the ORM took 0.3-0.7 ms of CPU to build
each of these queries, more than PostgreSQL took to run it, and a burst made five of them whatever its size.

Writes: one statement per table and burst, its text the same whatever the number of rows: the values go as
one array per column (``INSERT ... SELECT FROM unnest(...)``, ``UPDATE ... FROM unnest(...)``), in
psycopg's binary format. A multi-row ``VALUES`` was a new text for each number of rows, longer than psycopg
caches, and psycopg parsed it again each time (a tenth of a burst's CPU); its arrays in text format were
quoted item by item with a regular expression. The values go to psycopg as they are (``Decimal``, aware
``datetime``, ``str``, ``int``), which writes them in C; Django's own path prepares each in Python
(``get_db_prep_save``). Columns of any other kind (JSON, and anything not listed in ``_AS_THEY_ARE``) still
go through ``get_db_prep_save``. Errors are Django's (``IntegrityError``, ``OperationalError``), as for its
own statements. Elsewhere (SQLite) the writes are Django's ``bulk_create`` and ``QuerySet.update``.

Prepared statements are not used, as Django does not use them by default (connection poolers): measured,
they saved nothing here (PostgreSQL plans statements with array parameters again at each execution anyway).
"""

from __future__ import annotations

import contextlib
import functools
import re
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
    then its open positions, in that order (pk order within a table: one lock order for every writer), and
    read the orders' signals, in one round trip (psycopg's pipeline mode). Returns (orders, each with its
    signal; open positions). On SQLite, which has no row locks, plain reads."""
    from signals_app.models import Signal
    from trading.models import Order, Position

    exchange_ids, client_ids = sorted(set(exchange_ids)), sorted(set(client_ids))
    if connection.vendor != "postgresql":
        named = Q(exchange_order_id__in=exchange_ids) | Q(client_order_id__in=client_ids)
        orders = Order.objects.select_related("signal").filter(named, account_id=account_id).order_by("pk")
        positions = Position.objects.filter(account_id=account_id, status=Position.Status.OPEN).order_by("pk")
        return list(orders), list(positions)
    named = [account_id, exchange_ids, client_ids]
    statements = [
        (account_lock_sql(), [account_id]),
        (_orders_named_sql(), named),
        (_signals_of_orders_named_sql(), named),
        (_open_positions_sql(), [account_id, Position.Status.OPEN]),
    ]
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    started = time.monotonic()
    raw = connection.connection
    with connection.wrap_database_errors, raw.pipeline():
        cursors = [psycopg.Cursor(raw) for _ in statements]
        for cursor, (sql, params) in zip(cursors, statements, strict=True):
            cursor.execute(sql, params)
        orders = _instances(Order, cursors[1].fetchall())
        signals = {signal.pk: signal for signal in _instances(Signal, cursors[2].fetchall())}
        positions = _instances(Position, cursors[3].fetchall())
        for cursor in cursors:
            cursor.close()
    if connection.queries_logged:
        for sql, _ in statements:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    for order in orders:
        order.signal = signals.get(order.signal_id)  # cached: reading it makes no query
    return orders, positions


def _select(model: type[models.Model]) -> str:
    """``SELECT`` of every column, in the model's field order (as ``_instances`` takes them), ``FROM`` its
    table."""
    columns = ", ".join(connection.ops.quote_name(field.column) for field in model._meta.concrete_fields)
    return f"SELECT {columns} FROM {_table(model)}"


@functools.cache
def _orders_named_sql() -> str:
    from trading.models import Order

    return f"{_select(Order)} WHERE {_orders_named_where()} ORDER BY {_column(Order, 'id')} FOR UPDATE"


@functools.cache
def _signals_of_orders_named_sql() -> str:
    from signals_app.models import Signal
    from trading.models import Order

    return (
        f"{_select(Signal)} WHERE {_column(Signal, 'id')} IN "
        f"(SELECT {_column(Order, 'signal')} FROM {_table(Order)} WHERE {_orders_named_where()})"
    )


def _orders_named_where() -> str:
    """An account's orders with any of some BingX ids or client ids (three parameters)."""
    from trading.models import Order

    return (
        f"{_column(Order, 'account')} = %s AND "
        f"({_column(Order, 'exchange_order_id')} = ANY(%s) OR {_column(Order, 'client_order_id')} = ANY(%s))"
    )


@functools.cache
def _open_positions_sql() -> str:
    from trading.models import Position

    return (
        f"{_select(Position)} WHERE {_column(Position, 'account')} = %s AND {_column(Position, 'status')} = %s "
        f"ORDER BY {_column(Position, 'id')} FOR UPDATE"
    )


def _instances(model: type[models.Model], rows: list[tuple]) -> list:
    """Rows of ``_select(model)`` as model instances, their values converted as Django converts its own reads
    (``RawQuerySet`` does the same)."""
    converters = _converters(model)
    names = _attnames(model)
    if converters:
        rows = [list(row) for row in rows]
        for row in rows:
            for index, convert, column in converters:
                row[index] = convert(row[index], column, connection)
    return [model.from_db(connection.alias, names, row) for row in rows]


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _converters(model: type[models.Model]) -> tuple[tuple[int, Callable, Any], ...]:
    """The conversions Django makes of a model's columns after reading them (a field's ``from_db_value``:
    JSON, say), as (index, converter, column): the compiler's ``get_converters`` asks each column for its
    own, and the backend for its (PostgreSQL's adds none). Written once per model."""
    from django.db.models.sql import Query

    table = model._meta.db_table
    columns = [field.get_col(table) for field in model._meta.concrete_fields]
    compiler = connection.ops.compiler("SQLCompiler")(Query(model), connection, connection.alias)
    return tuple(
        (index, convert, column)
        for index, (convert_all, column) in compiler.get_converters(columns).items()
        for convert in convert_all
    )


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


def open_protection_sides(account_id: int, symbols: Iterable[str], statuses: Iterable[str]) -> set[tuple[str, str]]:
    """(symbol, closing side) of the account's reduce-only orders on ``symbols`` in ``statuses`` that are not
    plain closes: the stop losses and take profits a closed position may have left (the stream's follow-ups
    ask after every burst that closed one; the ORM took ~0.4 ms of CPU to build the query, half of that
    thread's time at 2,000 events/s)."""
    from trading.models import Order

    symbols, statuses = sorted(set(symbols)), sorted(set(statuses))
    if connection.vendor != "postgresql":
        rows = Order.objects.filter(account_id=account_id, symbol__in=symbols, reduce_only=True, status__in=statuses)
        return set(rows.exclude(purpose=Order.Purpose.CLOSE).values_list("symbol", "side"))
    with connection.cursor() as cursor:
        cursor.execute(_open_protection_sql(), [account_id, symbols, statuses, Order.Purpose.CLOSE])
        return set(cursor.fetchall())


@functools.cache
def _open_protection_sql() -> str:
    from trading.models import Order

    return (
        f"SELECT DISTINCT {_column(Order, 'symbol')}, {_column(Order, 'side')} FROM {_table(Order)} "
        f"WHERE {_column(Order, 'account')} = %s AND {_column(Order, 'symbol')} = ANY(%s) "
        f"AND {_column(Order, 'reduce_only')} AND {_column(Order, 'status')} = ANY(%s) "
        f"AND {_column(Order, 'purpose')} <> %s"
    )


def rows_update(model: type[models.Model], dirty: Iterable[tuple[models.Model, set[str]]]) -> None:
    """Write the changed fields of rows the caller holds locked, in one statement (``UPDATE ... FROM
    unnest(...)``: one round trip, one plan). ``dirty``: pairs of (row, its changed field names). Each row
    gets every field any of them changed: the caller read each whole and has held it locked since, so a
    field it did not change is written back as it is."""
    dirty = list(dirty)
    if not dirty:
        return
    names = sorted(set().union(*(fields for _, fields in dirty)))
    columns = tuple(model._meta.get_field(name) for name in names)
    if connection.vendor != "postgresql":
        for row, _ in dirty:
            model.objects.filter(pk=row.pk).update(
                **{column.attname: getattr(row, column.attname) for column in columns}
            )
        return
    values = _values_of(columns, adding=False)
    now = timezone.now()
    rows = [(row.pk, *values(row, now)) for row, _ in dirty]
    _execute(_update_sql(model, columns), _arrays(rows, (model._meta.pk, *columns)))


def rows_insert(model: type[models.Model], rows: list[models.Model], *, returning: bool = False) -> None:
    """Insert new rows in one statement (``INSERT ... SELECT FROM unnest(...)``: one round trip; a ``COPY``
    takes two, which cost more than it saves for a burst's few dozen rows). ``returning``: give each row its
    id."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(rows)
        return
    columns = _insert_columns(model)
    values = _values_of(columns, adding=True)
    now = timezone.now()
    sql = _insert_sql(model, returning=returning)
    ids = _execute(sql, _arrays([values(row, now) for row in rows], columns), returns_rows=returning)
    if not returning:
        return
    # PostgreSQL inserts the rows unnest gives in their order and returns them in that order (the order of
    # VALUES, which bulk_create relies on, is kept the same way).
    for row, (pk,) in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding, row._state.db = False, connection.alias


def _arrays(rows: list, columns: tuple[models.Field, ...]) -> list[list]:
    """Rows of values as one list per column: psycopg sends each as an array. An array's items must be of
    one type (an ``int`` among a ``DecimalField``'s ``Decimal`` values is refused): a column holding several
    is converted by its field, as Django would convert each value (``to_python``)."""
    arrays = [list(values) for values in zip(*rows, strict=True)]
    for index, values in enumerate(arrays):
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if len(kinds) > 1:
            to_python = columns[index].to_python
            arrays[index] = [None if value is None else to_python(value) for value in values]
    return arrays


def _array_of(column: models.Field) -> str:
    """The array type a column's values are cast from (its type without its size: a cast must not
    truncate)."""
    return re.sub(r"\(.*?\)", "", column.db_type(connection)) + "[]"


def _insert_columns(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(column for column in model._meta.concrete_fields if not column.primary_key)


@functools.cache
def _insert_sql(model: type[models.Model], *, returning: bool) -> str:
    quote = connection.ops.quote_name
    columns = _insert_columns(model)
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(column.column) for column in columns)}) "
        f"SELECT * FROM unnest({', '.join(f'%b::{_array_of(column)}' for column in columns)})"
    )
    return sql + f" RETURNING {quote(model._meta.pk.column)}" if returning else sql


@functools.cache
def _update_sql(model: type[models.Model], columns: tuple[models.Field, ...]) -> str:
    quote = connection.ops.quote_name
    pk = model._meta.pk
    names = [quote(column.column) for column in columns]
    arrays = ", ".join(f"%b::{_array_of(column)}" for column in (pk, *columns))
    return (
        f"UPDATE {quote(model._meta.db_table)} AS t SET "
        + ", ".join(f"{name} = v.{name}" for name in names)
        + f" FROM unnest({arrays}) AS v({quote(pk.column)}, {', '.join(names)})"
        + f" WHERE t.{quote(pk.column)} = v.{quote(pk.column)}"
    )


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
