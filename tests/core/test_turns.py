"""FairTurns: one holder at a time, turns by client; and SQLite's writers taking them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from core import request_id
from core.config import Settings
from core.db import Database
from core.workers import FairTurns


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class _Takers:
    """Tasks that each take a turn, noting whose it was; a held one waits for `release`."""

    def __init__(self) -> None:
        self.turns = FairTurns()
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def take(self, client: str, hold: bool = False) -> None:
        async with self.turns.turn(client):
            self.order.append(client)
            if hold:
                await self.release.wait()


def test_turns_go_to_the_client_served_least_recently() -> None:
    async def scenario() -> list[str]:
        takers = _Takers()
        first = asyncio.create_task(takers.take("flood", hold=True))
        await _settle()
        # The flood's burst queued first, then two other clients.
        waiting = [asyncio.create_task(takers.take(client)) for client in ["flood"] * 3]
        waiting += [asyncio.create_task(takers.take(c)) for c in ("erin", "frank")]
        await _settle()
        assert takers.turns.waiting == 5
        takers.release.set()
        await asyncio.gather(first, *waiting)
        assert takers.turns.waiting == 0
        return takers.order

    assert asyncio.run(scenario()) == ["flood", "erin", "frank", "flood", "flood", "flood"]


def test_a_cancelled_wait_passes_its_turn_on() -> None:
    async def scenario() -> list[str]:
        takers = _Takers()
        holder = asyncio.create_task(takers.take("a", hold=True))
        await _settle()
        gone = asyncio.create_task(takers.take("b"))
        after = asyncio.create_task(takers.take("c"))
        await _settle()
        gone.cancel()
        takers.release.set()
        await asyncio.gather(holder, after)
        with pytest.raises(asyncio.CancelledError):
            await gone
        # Nobody holds a turn now: the next one is had at once.
        await asyncio.wait_for(takers.take("d"), timeout=5)
        return takers.order

    assert asyncio.run(scenario()) == ["a", "c", "d"]


def test_a_task_asking_again_while_it_holds_a_turn_is_refused() -> None:
    async def scenario() -> None:
        turns = FairTurns()
        async with turns.turn("a"):
            with pytest.raises(RuntimeError, match="holds one"):
                async with turns.turn("a"):
                    pass

    asyncio.run(scenario())


def test_sqlite_writers_take_turns_by_client(tmp_path: Path) -> None:
    """A burst of write transactions from one client: another client's write is the next
    to run, not the burst's last."""

    async def scenario() -> list[str]:
        database = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}"))
        order: list[str] = []
        release = asyncio.Event()
        try:
            async with database.write() as db:
                await db.exec(text("CREATE TABLE seen (client TEXT)"))  # type: ignore[call-overload]

            async def write(client: str, hold: bool = False) -> None:
                request_id.CLIENT.set(client)  # as each request's context sets it
                async with database.write() as db:
                    order.append(client)
                    statement = text("INSERT INTO seen VALUES (:client)")
                    await db.exec(statement, params={"client": client})  # type: ignore[call-overload]
                    if hold:
                        await release.wait()

            first = asyncio.create_task(write("198.51.100.7", hold=True))
            await _settle()
            burst = [asyncio.create_task(write("198.51.100.7")) for _ in range(20)]
            await _settle()
            other = asyncio.create_task(write("203.0.113.9"))
            await _settle()
            release.set()
            await asyncio.gather(first, *burst, other)
            async with database.read() as db:
                rows = (await db.exec(text("SELECT count(*) FROM seen"))).one()  # type: ignore[call-overload]
            assert rows[0] == 22
        finally:
            await database.dispose()
        return order

    order = asyncio.run(scenario())
    assert order[1] == "203.0.113.9"
    assert order.count("198.51.100.7") == 21
