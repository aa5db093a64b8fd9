"""Races: the database's unique constraints decide, and SQLite locking never shows as a 500."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from core.config import Settings
from tests.asgi import Call, statuses
from tests.types import MakeClient, MakeSettings

PASSWORD = "correct horse battery"


def _signups(settings: Settings, body: Callable[[int], dict[str, str]], n: int) -> Counter[int]:
    # Each from its own address: one address's sign-ups are limited (SIGNUPS_PER_IP).
    calls = [
        Call("POST", "/signup", body(i), {"x-forwarded-for": f"198.51.100.{i}"}) for i in range(n)
    ]
    return statuses(settings, calls)


def test_simultaneous_signups_of_one_login_make_one_account(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings(trusted_proxies="127.0.0.1/32")

    def body(i: int) -> dict[str, str]:
        return {"login": "alice", "password": PASSWORD, "email": f"alice{i}@example.com"}

    assert _signups(settings, body, 24) == Counter({200: 1, 409: 23})


def test_simultaneous_signups_of_many_logins_all_succeed(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings(trusted_proxies="127.0.0.1/32")

    def body(i: int) -> dict[str, str]:
        return {"login": f"user{i}", "password": PASSWORD, "email": f"user{i}@example.com"}

    assert _signups(settings, body, 40) == Counter({200: 40})


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
