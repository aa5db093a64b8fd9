"""SQLite through core.sqlite_driver: one trip to a connection's thread per statement, the
same answers SQLAlchemy's own aiosqlite adapter gives, and no trip to reset a connection
that has nothing to reset."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from core.config import Settings
from core.db import Database

ITEMS = Table(
    "items",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What each trip to a connection's thread did, in order (the real trip is made)."""
    made: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(args[2] if len(args) > 2 else getattr(fn, "__name__", "?"))
        return await real(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield made


def _database(tmp_path: Path) -> Database:
    return Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"))


async def _create(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(ITEMS.metadata.create_all)


def test_a_transaction_makes_one_trip_per_statement(tmp_path: Path, trips: list[str]) -> None:
    async def scenario() -> list[str]:
        database = _database(tmp_path)
        try:
            await _create(database)
            trips.clear()
            async with database.write() as db:
                await db.exec(insert(ITEMS).values(name="a"))
            async with database.read() as db:
                await db.exec(select(ITEMS))  # type: ignore[call-overload]
            return list(trips)  # before dispose() closes the connections
        finally:
            await database.dispose()

    made = asyncio.run(scenario())
    # Each statement once; each transaction ended once (no cursor opened or closed on its
    # own, no second rollback when the connection goes back to the pool).
    assert [trip.split()[0] for trip in made] == [
        "BEGIN",
        "INSERT",
        "commit",
        "BEGIN",
        "SELECT",
        "rollback",
    ]


def test_rows_counts_ids_and_errors_are_what_sqlalchemy_expects(tmp_path: Path) -> None:
    async def scenario() -> tuple[Any, ...]:
        database = _database(tmp_path)
        try:
            await _create(database)
            async with database.write() as db:
                added = await db.exec(insert(ITEMS).values(name="a"))
                many = insert(ITEMS)
                await db.exec(many, params=[{"name": "b"}, {"name": "c"}])
                renamed = await db.exec(
                    update(ITEMS).where(ITEMS.c.name != "a").values(name=ITEMS.c.name + "!")
                )
                returned = await db.exec(
                    insert(ITEMS).values(name="d").returning(ITEMS.c.id, ITEMS.c.name)
                )
                returned_rows = returned.all()
            with pytest.raises(IntegrityError):
                async with database.write() as db:
                    await db.exec(insert(ITEMS).values(name="e"))
                    await db.exec(insert(ITEMS).values(name="a"))
            async with database.read() as db:
                names = (await db.exec(select(ITEMS.c.name).order_by(ITEMS.c.id))).all()  # type: ignore[call-overload]
        finally:
            await database.dispose()
        return added.inserted_primary_key, renamed.rowcount, returned_rows, names

    inserted, renamed, returned, names = asyncio.run(scenario())
    assert tuple(inserted) == (1,)
    assert renamed == 2
    assert [tuple(row) for row in returned] == [(4, "d")]
    # The failed transaction left nothing behind ("e" rolled back with it).
    assert [row[0] for row in names] == ["a", "b!", "c!", "d"]


def test_a_connection_given_back_inside_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    """The pool no longer rolls back every connection it gets back; one that still has a
    transaction open (begun behind SQLAlchemy's back) is rolled back before anyone reuses it."""

    async def scenario() -> tuple[bool, bool, list[Any]]:
        database = _database(tmp_path)
        try:
            await _create(database)
            async with database.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert isinstance(raw, aiosqlite.Connection)
                await raw.execute("BEGIN")
                await raw.execute("INSERT INTO items (name) VALUES ('left open')")
                left_open = raw._conn.in_transaction
            async with database.engine.connect() as conn:
                again = (await conn.get_raw_connection()).driver_connection
                assert again is raw  # the same pooled connection
                still_open = again._conn.in_transaction
            async with database.read() as db:
                rows = (await db.exec(select(ITEMS.c.name))).all()  # type: ignore[call-overload]
        finally:
            await database.dispose()
        return left_open, still_open, rows

    left_open, still_open, rows = asyncio.run(scenario())
    assert left_open and not still_open
    assert rows == []


def test_pragmas_and_text_statements_still_answer(tmp_path: Path) -> None:
    async def scenario() -> tuple[Any, Any]:
        database = _database(tmp_path)
        try:
            async with database.read() as db:
                mode = (await db.exec(text("PRAGMA journal_mode"))).one()  # type: ignore[call-overload]
                keys = (await db.exec(text("PRAGMA foreign_keys"))).one()  # type: ignore[call-overload]
        finally:
            await database.dispose()
        return mode[0], keys[0]

    assert asyncio.run(scenario()) == ("wal", 1)


def test_streamed_results_come_in_order(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        database = _database(tmp_path)
        try:
            await _create(database)
            async with database.write() as db:
                rows = [{"name": f"n{n}"} for n in range(5)]
                await db.exec(insert(ITEMS), params=rows)
            async with database.engine.connect() as conn:
                streamed = await conn.stream(select(ITEMS.c.name).order_by(ITEMS.c.id))
                first = await streamed.fetchmany(2)
                rest = [row async for row in streamed]
        finally:
            await database.dispose()
        return [row[0] for row in first], [row[0] for row in rest]

    assert asyncio.run(scenario()) == (["n0", "n1"], ["n2", "n3", "n4"])
