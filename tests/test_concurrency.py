"""Races: the database's unique constraints decide, and SQLite locking never shows as a 500."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from app.server import create_app
from core.config import Settings
from tests.types import MakeClient, MakeSettings

PASSWORD = "correct horse battery"


async def _serve(
    settings: Settings, requests: int, make_body: Callable[[int], dict[str, str]]
) -> Counter[int]:
    app = create_app(settings)
    # Run the lifespan (migrations) by hand: httpx's ASGI transport does not.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        lifespan_app = app
        while not isinstance(lifespan_app, Starlette):  # through the outer middleware
            lifespan_app = lifespan_app.app  # type: ignore[attr-defined]
        async with lifespan_app.router.lifespan_context(lifespan_app):
            responses = await asyncio.gather(
                *(c.post("/signup", json=make_body(i)) for i in range(requests))
            )
    return Counter(response.status_code for response in responses)


def test_simultaneous_signups_of_one_login_make_one_account(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings()

    def body(i: int) -> dict[str, str]:
        return {"login": "alice", "password": PASSWORD, "email": f"alice{i}@example.com"}

    assert asyncio.run(_serve(settings, 24, body)) == Counter({200: 1, 409: 23})


def test_simultaneous_signups_of_many_logins_all_succeed(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings()

    def body(i: int) -> dict[str, str]:
        return {"login": f"user{i}", "password": PASSWORD, "email": f"user{i}@example.com"}

    assert asyncio.run(_serve(settings, 40, body)) == Counter({200: 40})


def test_sqlite_lock_held_past_the_busy_timeout_is_429_not_500(
    make_settings: MakeSettings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = make_settings()
    if not settings.is_sqlite:
        pytest.skip("SQLite's database-level write lock")
    monkeypatch.setattr("core.db.SQLITE_BUSY_TIMEOUT_MS", 200)
    client = make_client()
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}

    # Another process's writer holds the lock for longer than the server will wait.
    holder = sqlite3.connect(make_url(settings.database_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        refused = client.post("/signup", json=body)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "Traceback" not in refused.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.post("/signup", json=body).status_code == 200
