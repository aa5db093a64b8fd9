"""The engine, its transactions, SQLite's durability settings and migrations at start-up."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, nullcontext
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, cast

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Connection, Executable, Insert, Row, TextClause, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core import keys, request_id, sqlite_driver
from core.config import Settings
from core.errors import TooManyRequests, Unavailable
from core.workers import FairTurns

logger = logging.getLogger("accounts.db")

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant will do: instances sharing a PostgreSQL database take this lock so that
# exactly one of them migrates while the others wait.
MIGRATION_LOCK_KEY = 0x61636374  # "acct"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# A reader in WAL mode waits for nobody, except for a moment while the log is being reset;
# it runs on the event loop, so it never waits long.
SQLITE_READER_BUSY_TIMEOUT_MS = 250
# PostgreSQL error classes that mean "cannot serve now" rather than a bug: connection
# exceptions (08), insufficient resources such as too many connections (53), operator
# intervention such as a shutdown or a cancelled query (57), and a database that is gone.
UNREACHABLE_SQLSTATES = ("08", "53", "57", "3D000")
# Seconds a client is asked to wait: a pool frees up quickly, a restarting server less so.
POOL_RETRY_AFTER = 1
UNREACHABLE_RETRY_AFTER = 5


# How long shutting down waits for the hot path's connections to come back.
POOL_CLOSE_SECONDS = 5


class Database:
    """One engine per process; `read()` and `write()` give a session in a transaction."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url)
        self.is_sqlite = settings.is_sqlite
        self._settings = settings
        # Statement parameters (token and password hashes, emails) stay out of error
        # messages, and so out of logs and traces.
        options: dict[str, Any] = {"hide_parameters": True}
        self._sqlite_path: str | None = None
        self._reader: sqlite3.Connection | None = None
        # PostgreSQL: the hot path's own asyncpg pool, opened by `open()` (the app's
        # lifespan, so in each worker process on its own event loop) and closed by
        # `dispose()`. Until it is open, `fetch_one` goes through the engine.
        self._pool: asyncpg.Pool | None = None
        self._pool_wanted = not self.is_sqlite
        self._pool_size = settings.db_pool_size
        self._pool_timeout = settings.db_pool_timeout_seconds
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                self._sqlite_path = url.database
            # One trip to aiosqlite's thread per statement; the reset below instead of
            # the pool's rollback after every transaction, even one already ended.
            options |= {
                "async_creator": sqlite_driver.connector(url),
                "pool_reset_on_return": None,
            }
        else:
            options |= {
                "pool_size": settings.db_pool_size,
                "max_overflow": settings.db_pool_size,
                "pool_timeout": settings.db_pool_timeout_seconds,
                "connect_args": {"command_timeout": settings.db_pool_timeout_seconds * 3},
            }
        self.engine = create_async_engine(url, **options)
        if self.is_sqlite:
            _tune_sqlite(self.engine.sync_engine)
        else:
            _replace_closed_connections(self.engine.sync_engine)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self._write_turns = FairTurns() if self.is_sqlite else None
        # SQLite: a writer takes the write lock when it begins (BEGIN IMMEDIATE), so two
        # writers queue on the busy timeout instead of failing on a lock upgrade.
        self._writer = async_sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"),
            class_=AsyncSession,
            expire_on_commit=False,
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        with _database_errors():
            async with self._sessions() as session:
                yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends, or rolls back on an error.

        SQLite has one writer at a time. This process's writers take turns by client
        (`FairTurns`, by `request_id.client()`) before they take a connection, rather than
        each holding a pooled connection while SQLite's busy handler sleeps: a flood of
        writes from one client then neither delays another client's write by more than
        one transaction nor leaves readers waiting for a connection. (Other processes on
        the same file still meet this one at SQLite's lock.)
        """
        turn = self._write_turns.turn(request_id.client()) if self._write_turns else nullcontext()
        async with turn:
            with _database_errors():
                async with self._writer() as session, session.begin():
                    yield session

    async def write_alone(self, statement: Executable) -> list[Row[Any]]:
        """One statement that writes, committed on its own; the rows it returns.

        On PostgreSQL the statement is its own transaction (no BEGIN, no COMMIT sent): the
        row locks it takes are held inside the server only, not across the round trips to
        this process and its event loop's turns, so writers to one row queue for
        microseconds instead of milliseconds. On SQLite it is a write transaction as
        `write()` gives.
        """
        if self.is_sqlite:
            async with self.write() as db:
                return list((await db.exec(statement)).all())  # type: ignore[call-overload]
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return list((await conn.execute(statement)).all())

    async def fetch_one(self, sql: str, **params: Any) -> Mapping[str, Any] | None:
        """The first row of a short, indexed read, by the cheapest route the database has.

        This is the hot path of every authenticated request. On SQLite it is the standard
        library's driver, synchronously on the event loop: an indexed lookup takes
        microseconds, where a hop to the async driver's thread and an ORM session cost ten
        times that. On PostgreSQL it is one `fetchrow` on a connection of the asyncpg pool
        `open()` made: one round trip, a statement asyncpg prepared once per connection,
        where the engine spends five (a ping at checkout, BEGIN, the query, ROLLBACK) and
        SQLAlchemy's async adaptation around each. Either way each call is its own
        transaction (autocommit), so it sees every write committed before it, by any
        process: nothing read here is kept beyond the call.
        """
        if self._sqlite_path is not None:
            with _database_errors():
                row: Mapping[str, Any] | None = (
                    self._sqlite_reader().execute(sql, params).fetchone()
                )
            return row
        if self._pool is not None:
            numbered, names = _numbered(sql)
            with _database_errors():
                try:
                    conn = await self._pool.acquire(timeout=self._pool_timeout)
                except TimeoutError as exc:
                    # What the engine's pool raises when no connection frees up in time.
                    raise PoolTimeout("No database connection became free in time") from exc
                try:
                    record = await conn.fetchrow(numbered, *[params[name] for name in names])
                finally:
                    await self._pool.release(conn)
            return cast(Mapping[str, Any] | None, record)
        with _database_errors():
            async with self.engine.connect() as conn:
                first = (await conn.execute(_text(sql), params)).first()
        return None if first is None else cast(Mapping[str, Any], first._mapping)

    def read_through_engine(self) -> None:
        """Send `fetch_one` through the engine, where instrumentation sees every statement.

        For tracing (app/tracing.py): the SQLite and asyncpg shortcuts above bypass SQLAlchemy.
        """
        self._sqlite_path = None
        self._pool_wanted = False

    async def open(self) -> None:
        """Open what the hot path reads through; from the app's lifespan, once per process.

        On PostgreSQL that is an asyncpg pool on the engine's URL, as large as the engine's
        pool (before its overflow). It connects when first needed and keeps connections
        without pinging them: a connection the server closed is seen as closed and replaced
        at checkout. Its connections only ever run single reads outside any transaction,
        so there is no session state to reset when one is given back (asyncpg's default
        would spend a round trip on it).
        """
        if not self._pool_wanted or self._pool is not None:
            return
        url = self.engine.url
        _, options = self.engine.dialect.create_connect_args(url)
        for name in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            options.pop(name, None)  # SQLAlchemy's own, not asyncpg's
        self._pool = await asyncpg.create_pool(
            min_size=0,
            max_size=self._pool_size,
            reset=_nothing_to_reset,
            command_timeout=self._pool_timeout * 3,
            **options,
        )

    def upsert(
        self,
        model: type[SQLModel],
        values: dict[str, Any],
        *,
        key: str,
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        """An INSERT of `values` that updates the other columns when `key` already exists
        (only where the existing row matches `where`, when given)."""
        insert = sqlite.insert if self.is_sqlite else postgresql.insert
        update = {name: value for name, value in values.items() if name != key}
        return (
            insert(model)
            .values(**values)
            .on_conflict_do_update(index_elements=[key], set_=update, where=where)
        )

    def _sqlite_reader(self) -> sqlite3.Connection:
        if self._reader is None:
            assert self._sqlite_path is not None
            # Used only between awaits, so never by two tasks at once.
            reader = sqlite3.connect(
                self._sqlite_path, isolation_level=None, check_same_thread=False
            )
            # Rows read by column name (sqlite3.Row is a C type: no cost worth measuring).
            reader.row_factory = sqlite3.Row
            reader.execute(f"PRAGMA busy_timeout={SQLITE_READER_BUSY_TIMEOUT_MS}")
            reader.execute("PRAGMA query_only=ON")
            self._reader = reader
        return self._reader

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, DBAPIError, PoolTimeout):
            return False
        return True

    async def migrate(self) -> None:
        """Bring the schema to the newest migration; safe to run from many instances.

        On SQLite, foreign keys are off while migrations run and checked before they
        commit: SQLite changes a table by copying it, and with foreign keys on, dropping
        the old copy of a table others refer to would first delete (ON DELETE CASCADE)
        every row referring to it. The switch works only outside a transaction.
        """
        engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        async with engine.connect() as conn:
            if self.is_sqlite:
                await _sqlite_pragma(conn, "foreign_keys=OFF")
            try:
                async with conn.begin():
                    if not self.is_sqlite:
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                        )
                    await conn.run_sync(_upgrade, self._settings)
                    if self.is_sqlite:
                        broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                        if broken:
                            raise RuntimeError(f"a migration broke foreign keys: {broken[:5]}")
            finally:
                if self.is_sqlite:
                    await _sqlite_pragma(conn, "foreign_keys=ON")

    async def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # close() waits for every connection to come back; one that never does (its
            # request cut off mid-release) must not hold the process's shutdown forever.
            try:
                await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
            except TimeoutError:
                logger.warning("database pool: connections still in use at shutdown; closed")
                pool.terminate()
        await self.engine.dispose()


async def _sqlite_pragma(conn: AsyncConnection, pragma: str) -> None:
    """A PRAGMA on the driver's own connection: no transaction is begun for it."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # a connection checked out of the pool
    await driver.execute(f"PRAGMA {pragma}")


def _upgrade(connection: Connection, settings: Settings) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    # For migrations that seal what was stored in the clear (0006); loaded only if called,
    # as it may create SQLite's key file.
    config.attributes["keys"] = partial(keys.load, settings)
    command.upgrade(config, "head")


@lru_cache(maxsize=64)
def _text(sql: str) -> TextClause:
    return text(sql)


# A named parameter (`:name`, not a `::type` cast).
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=64)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as asyncpg's `$1, $2, …`, and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAMETER.sub(number, sql), tuple(names)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    return None


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot serve now is the client's to retry, never an internal error.

    SQLite waits its busy timeout for a lock, then `429`; a PostgreSQL pool that has no
    connection free within DB_POOL_TIMEOUT_SECONDS, or a server that is gone, refuses
    connections or drops them, `Unavailable` (`503`). Logged here, once, in one line.
    """
    try:
        yield
    except Exception as exc:
        if _is_locked(exc):
            raise TooManyRequests("The service is busy; try again shortly", retry_after=1) from exc
        if isinstance(exc, PoolTimeout):
            logger.warning("database pool exhausted: no connection free within the timeout")
            raise Unavailable(
                "The service is busy; try again shortly", retry_after=POOL_RETRY_AFTER
            ) from exc
        if _is_unreachable(exc):
            logger.warning("database unavailable: %s", _describe(exc))
            raise Unavailable(
                "The service is temporarily unavailable; try again shortly",
                retry_after=UNREACHABLE_RETRY_AFTER,
            ) from exc
        raise


def _is_locked(exc: Exception) -> bool:
    return isinstance(exc, OperationalError | sqlite3.OperationalError) and (
        "database is locked" in str(exc)
    )


def _is_unreachable(exc: Exception) -> bool:
    # TimeoutError: asyncpg's command timeout (three times DB_POOL_TIMEOUT_SECONDS) ran out.
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    # The hot path's pool raises asyncpg's own errors, unwrapped.
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "").startswith(UNREACHABLE_SQLSTATES)
    if not isinstance(exc, DBAPIError) or isinstance(exc.orig, sqlite3.Error):
        return False
    state = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or state.startswith(UNREACHABLE_SQLSTATES)


def _describe(exc: Exception) -> str:
    # The driver's own exception says what happened ("database ... does not exist");
    # statement parameters are never in it (hide_parameters).
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    cause = cause.__cause__ or cause
    lines = str(cause).splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _replace_closed_connections(engine: Any) -> None:
    """At checkout, a connection the server has closed is replaced by a new one.

    Instead of `pool_pre_ping`, which spends three round trips on every checkout with
    asyncpg (BEGIN, an empty statement, ROLLBACK) and so nearly doubled the round trips of
    a write. A connection the server ended (a restart, an idle timeout, a terminated
    backend) is already marked closed by asyncpg when its socket saw the end, without asking
    the server; SQLAlchemy then retries the checkout with a fresh connection.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection._connection.is_closed():
            raise DisconnectionError("the server closed this connection")


def _tune_sqlite(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        # FULL: a write acknowledged with 200 survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # A connection comes back to the pool with a transaction still open only if its
        # user never ended it; otherwise there is nothing to roll back.
        if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}")


def _use_wal(cursor: Any) -> None:
    """Switch the database to WAL (once; the mode is stored in the file).

    The switch needs the database to itself and SQLite does not wait for that (the busy
    timeout does not apply), so processes opening a new database together retry briefly.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, whichever adapter wraps it
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def now() -> float:
    return time.time()
