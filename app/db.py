"""Engines, sessions and the unit of work.

The edge (a request handler, a job, a CLI command) owns the transaction: it opens one
session with `unit_of_work`, services only flush, and the commit happens in one place.
Jobs asked for inside the unit of work are buffered and sent only after the commit, so a
rolled-back transaction never leaves a job behind.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Result, Table, TextualSelect, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from app.settings import Settings, async_database_url

logger = logging.getLogger("stamp.db")

SessionMaker = async_sessionmaker[AsyncSession]
WRITE_OPTION = "stamp_write_transaction"
M = TypeVar("M")

_after_commit: contextvars.ContextVar[list[Callable[[], Any]] | None] = contextvars.ContextVar(
    "stamp_after_commit", default=None
)


def create_engine(settings: Settings, database_url: str | None = None) -> AsyncEngine:
    url = async_database_url(database_url or settings.DATABASE_URL)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip per request. A connection that died with the
    # server fails its statement, the pool invalidates it, and the caller answers 503
    # (webhooks are retried by the platform).
    return create_async_engine(
        url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_POOL_SIZE,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL lets readers run beside the writer; foreign keys are off in SQLite by default."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLAlchemy, not the driver, emits BEGIN (see `_on_begin`).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A unit of work takes the write lock at BEGIN, so two writers queue (busy_timeout)
        # instead of failing on a read-to-write upgrade; readers stay deferred and never
        # block anyone under WAL.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_reader(engine: AsyncEngine) -> SessionMaker:
    """Sessions for read-only requests (the storefront widget's hot path).

    On PostgreSQL they run in autocommit: no BEGIN and no ROLLBACK round trips around a
    request that only reads. Each statement sees committed data; a reader that needs one
    snapshot across several statements must use a normal session. SQLite readers need
    nothing special under WAL, so they share the normal sessionmaker's settings.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(callback: Callable[[], Any]) -> None:
    """Run `callback` once the current unit of work has committed (dropped on rollback)."""
    pending = _after_commit.get()
    if pending is None:
        raise RuntimeError("after_commit() needs an open unit_of_work")
    pending.append(callback)


@asynccontextmanager
async def unit_of_work(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """One session, one commit; buffered jobs are sent only after that commit succeeds."""
    pending: list[Callable[[], Any]] = []
    token = _after_commit.set(pending)
    try:
        async with sessionmaker() as session:
            try:
                await session.connection(execution_options={WRITE_OPTION: True})
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    finally:
        _after_commit.reset(token)
    run_after_commit(pending)


def run_after_commit(callbacks: list[Callable[[], Any]]) -> int:
    """Run what waited for the commit; a failure is logged, never raised.

    The commit has happened, so the caller's answer must say so: a queue that is down
    (Redis restarting) only delays the job, because the periodic sweeps find every stale
    sync mark, pending outgoing webhook and unfinished history import again. Returns how
    many callbacks failed.
    """
    failed = 0
    for callback in callbacks:
        try:
            callback()
        except Exception:
            failed += 1
            logger.exception("after-commit job not sent; the periodic sweep will send it")
    if failed:
        # Imported late: the metrics module must load after PROMETHEUS_MULTIPROC_DIR is set.
        from app.observability.metrics import JOBS_NOT_SENT

        JOBS_NOT_SENT.inc(failed)
    return failed


def dialect_name(session: AsyncSession | Session) -> str:
    """The session's database: "postgresql" or "sqlite"."""
    return session.get_bind().dialect.name


def dialect_insert(session: AsyncSession) -> Any:
    """`insert` with ON CONFLICT support for the session's database (PostgreSQL or SQLite)."""
    return pg_insert if dialect_name(session) == "postgresql" else sqlite_insert


@cache
def _insert_ignoring(
    dialect: str, target: Any, index_elements: tuple[str, ...] | None, returning: Any
) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(target).on_conflict_do_nothing(index_elements=index_elements).returning(returning)


def insert_ignoring_conflicts(
    session: AsyncSession, table: Table, index_elements: tuple[str, ...], returning: str = "id"
) -> Any:
    """`INSERT ... ON CONFLICT (index) DO NOTHING RETURNING <column>` on a Core table, built
    once per process: execute it with the row's values as parameters.

    Building a statement costs more than running it on the hot paths (a few hundred
    microseconds each), so the statements every webhook runs are built once.
    """
    return _insert_ignoring(dialect_name(session), table, index_elements, table.c[returning])


async def insert_rows_ignoring_conflicts(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    index_elements: tuple[str, ...] | None,
    returning: tuple[str, ...],
) -> Result[Any]:
    """Insert many rows (all with the same keys, including every column that has a
    Python-side default) in one statement, skipping any that conflicts on
    `index_elements` (None: on any unique index); the `returning` columns of those inserted.

    On PostgreSQL the rows travel as one array per column (`INSERT ... SELECT FROM
    unnest(...)`), so the statement text is the same whatever the number of rows: prepared
    once per connection and planned once. A multi-row VALUES list is a new statement for
    every row count, prepared and planned again by the server, and SQLAlchemy processes its
    parameters row by row. SQLite takes the multi-row VALUES form.
    """
    columns = tuple(rows[0])
    if missing := _defaults_left_out(table, columns):
        # The array form is plain SQL: SQLAlchemy's Python-side defaults do not apply.
        raise ValueError(f"rows for {table.name} must carry {', '.join(missing)}")
    if dialect_name(session) == "postgresql":
        statement = _unnest_insert(table, columns, index_elements, returning)
        arrays = {column: [row[column] for row in rows] for column in columns}
        return await session.execute(statement, arrays)
    insert = sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    result: Result[Any] = await session.execute(
        insert.returning(*(table.c[c] for c in returning)), rows
    )
    return result


@cache
def _defaults_left_out(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.name for c in table.c if c.default is not None and c.name not in columns)


@cache
def _unnest_insert(
    table: Table,
    columns: tuple[str, ...],
    index_elements: tuple[str, ...] | None,
    returning: tuple[str, ...],
) -> TextualSelect:
    dialect: Any = postgresql.dialect()  # type: ignore[no-untyped-call]
    quote = dialect.identifier_preparer.quote
    arrays = ", ".join(
        f"CAST(:{column} AS {table.c[column].type.compile(dialect=dialect)}[])"
        for column in columns
    )
    target = f" ({', '.join(quote(name) for name in index_elements)})" if index_elements else ""
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"SELECT * FROM unnest({arrays}) ON CONFLICT{target} DO NOTHING "
        f"RETURNING {', '.join(quote(c) for c in returning)}"
    )
    return (
        text(statement)
        .bindparams(*(bindparam(c, type_=ARRAY(table.c[c].type)) for c in columns))
        .columns(*(table.c[c] for c in returning))
    )


def in_list(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], name: str
) -> ColumnElement[bool]:
    """`column IN (<the list bound as name>)`. On PostgreSQL `column = ANY(:name)` with the
    list as one array: the statement text does not change with the list's length, so it is
    prepared and planned once (an expanding IN is a new statement for every length)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


async def insert_if_absent(session: AsyncSession, model: type[M], **values: Any) -> M | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the new row as an ORM object, or None.

    Unique keys decide races in the database, so the loser learns of it without an error
    or a savepoint, in one round trip.
    """
    target: Any = model
    statement = _insert_ignoring(dialect_name(session), target, None, target)
    result = await session.scalars(statement, values, execution_options={"populate_existing": True})
    return result.one_or_none()
