"""aiosqlite as SQLAlchemy's async SQLite driver, with one trip to its thread per statement.

aiosqlite runs each sqlite3 connection on a thread of its own, and every call is a trip
there and back: SQLAlchemy's adapter makes four per statement (open a cursor, execute,
fetch, close), 108 for one login. Each trip waits for the event loop's next turn, which on a
busy server is a millisecond or more, so a login there spent far longer in trips than in
SQLite. Here a statement's cursor lives only inside one trip: it executes, fetches every row
and closes on the thread, and the event loop gets back the rows and what SQLAlchemy reads
from a cursor (description, rowcount, lastrowid). SQLAlchemy's own adapter buffers all rows
too, and `stream()` (a server-side cursor) reads from the same buffer; commit and rollback
are a trip each, as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL

Outcome = tuple[Any, int, int | None, list[Any]]


def connector(url: URL) -> Callable[[], aiosqlite.Connection]:
    """What `create_async_engine(async_creator=...)` calls for a new connection to `url`,
    opened with the arguments SQLAlchemy's own aiosqlite dialect would give sqlite3."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)

    def connect() -> aiosqlite.Connection:
        connection = Connection(partial(sqlite3.connect, *args, **kwargs), 64)
        # As SQLAlchemy does for aiosqlite: a connection nobody closed does not keep the
        # process alive.
        connection._thread.daemon = True
        return connection

    return connect


class Connection(aiosqlite.Connection):
    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (read here, on the event loop: no trip)."""
        return self._connection is not None and self._connection.in_transaction


class Cursor:
    """The cursor SQLAlchemy's adapter drives; it reaches the thread only to execute."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return await self._trip(False, sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        return await self._trip(True, sql, parameters)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        taken = self._rows[: size or self.arraysize]
        del self._rows[: len(taken)]
        return taken

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []

    async def _trip(self, many: bool, sql: str, parameters: Any) -> Cursor:
        connection = self._connection
        outcome: Outcome = await connection._execute(  # type: ignore[no-untyped-call]
            _on_thread, connection._conn, many, sql, parameters
        )
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self


def _on_thread(connection: sqlite3.Connection, many: bool, sql: str, parameters: Any) -> Outcome:
    """The statement's whole work, on the connection's thread; its cursor closed after."""
    cursor = connection.cursor()
    try:
        (cursor.executemany if many else cursor.execute)(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()
