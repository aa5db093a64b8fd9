"""Start-up: settings validation, migrations matching the models, SQLite durability."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlmodel import SQLModel
from starlette.testclient import TestClient

import core.models  # noqa: F401
from core import sessions
from core.config import Settings, SettingsError, load_settings
from core.db import MIGRATIONS, Database
from core.security import SCHEME, VERSION, token_digest
from tests.servers import TEST_SECRET_KEY
from tests.types import MakeClient, MakeSettings


def test_invalid_setting_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("BCRYPT_ROUNDS", "three"),
        ("PORT", "70000"),
        ("CORS_ORIGINS", "*"),
        ("DATABASE_URL", "mysql://x"),
        ("COOKIE_SECURE", "maybe"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name):
            load_settings()
        monkeypatch.delenv(name)


def test_server_refuses_to_start_with_invalid_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={**os.environ, "SESSION_TTL_SECONDS": "-5"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SESSION_TTL_SECONDS" in result.stderr


def test_settings_read_contract_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example/")
    monkeypatch.setenv("AVATAR_MAX_BYTES", "2048")
    settings = load_settings()
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.avatar_max_bytes == 2048
    assert Settings().bcrypt_rounds == 12


def test_migrations_match_models(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings()

    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))

    async def check() -> list[object]:
        database = Database(settings)
        await database.migrate()
        await database.migrate()  # a second run is a no-op
        async with database.engine.connect() as connection:
            found = await connection.run_sync(diff)
        await database.dispose()
        return found

    assert asyncio.run(check()) == []


def test_concurrent_migrations_of_a_fresh_database_run_one_at_a_time(
    fresh_database_url: str,
) -> None:
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET_KEY)

    async def migrate_together() -> int:
        databases = [Database(settings) for _ in range(4)]
        # Interleaved at every round trip: without the lock, each would see an empty
        # database and try to create the same tables.
        await asyncio.gather(*(database.migrate() for database in databases))
        async with databases[0].engine.connect() as connection:
            versions = await connection.execute(text("SELECT count(*) FROM alembic_version"))
            count = int(versions.scalar_one())
        for database in databases:
            await database.dispose()
        return count

    assert asyncio.run(migrate_together()) == 1


def test_sqlite_runs_with_wal_full_sync_and_foreign_keys(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings()
    if not settings.is_sqlite:
        pytest.skip("SQLite pragmas")

    async def pragmas() -> tuple[object, ...]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            values = []
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
                values.append((await connection.execute(text(f"PRAGMA {name}"))).scalar())
        await database.dispose()
        return tuple(values)

    assert asyncio.run(pragmas()) == ("wal", 2, 1, 10000)


def _stored_hash(settings: Settings, replace_with: str | None = None) -> str:
    async def query() -> str:
        database = Database(settings)
        async with database.engine.begin() as connection:
            if replace_with is not None:
                await connection.execute(
                    text("UPDATE users SET password_hash = :h"), {"h": replace_with}
                )
            value = (await connection.execute(text("SELECT password_hash FROM users"))).scalar()
        await database.dispose()
        return str(value)

    return asyncio.run(query())


def test_login_rehashes_when_rounds_change(
    make_client: MakeClient, make_settings: MakeSettings
) -> None:
    body = {"login": "alice", "password": "correct horse battery", "email": "a@b.co"}
    make_client(bcrypt_rounds=4).post("/signup", json=body)
    assert _stored_hash(make_settings()).startswith(f"{SCHEME}${VERSION}$$2b$04$")
    later = make_client(bcrypt_rounds=5)
    login = {"login": "alice", "password": body["password"]}
    assert later.post("/login", json=login).status_code == 200
    assert _stored_hash(make_settings()).startswith(f"{SCHEME}${VERSION}$$2b$05$")


def test_login_upgrades_a_hash_stored_before_hashes_named_their_scheme(
    client: TestClient, make_settings: MakeSettings
) -> None:
    body = {"login": "alice", "password": "correct horse battery", "email": "a@b.co"}
    client.post("/signup", json=body)
    current = _stored_hash(make_settings())
    legacy = current.split("$", 2)[2]
    assert _stored_hash(make_settings(), replace_with=legacy) == legacy
    login = {"login": "alice", "password": body["password"]}
    assert client.post("/login", json=login).status_code == 200
    upgraded = _stored_hash(make_settings())
    assert upgraded.startswith(f"{SCHEME}${VERSION}$$2b$04$") and upgraded != current
    assert client.post("/login", json=login).status_code == 200


def test_new_sqlite_database_opened_while_another_connection_writes(tmp_path: Path) -> None:
    # Switching to WAL ignores the busy timeout; opening must wait for the writer, not fail.
    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")

    def finish_writing() -> None:
        writer.execute("COMMIT")
        writer.close()

    release = threading.Timer(0.5, finish_writing)
    release.start()

    async def open_database() -> bool:
        database = Database(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
        try:
            return await database.ping()
        finally:
            await database.dispose()

    try:
        assert asyncio.run(open_database())
    finally:
        release.join()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


HOSTILE_INPUT_SETTINGS = {
    "SIGNUPS_PER_IP": 20,
    "SIGNUP_WINDOW_SECONDS": 3600,
    "PASSWORD_RESETS_PER_IP": 20,
    "LOGIN_FAILURES_PER_DEVICE": 10,
    "AVATAR_UPLOADS_PER_HOUR": 20,
}


@pytest.mark.parametrize(("name", "default"), HOSTILE_INPUT_SETTINGS.items())
def test_limit_settings_have_contract_names_and_defaults(
    monkeypatch: pytest.MonkeyPatch, name: str, default: int
) -> None:
    assert getattr(Settings(), name.lower()) == default
    monkeypatch.setenv(name, "7")
    assert getattr(load_settings(), name.lower()) == 7
    for invalid in ("0", "many"):
        monkeypatch.setenv(name, invalid)
        with pytest.raises(SettingsError, match=name):
            load_settings()


def test_secret_key_shorter_than_32_characters_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "x" * 31)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    assert load_settings().secret_key is not None


def test_postgresql_without_secret_key_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/accounts")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings()
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={**os.environ, "SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr
    monkeypatch.setenv("SECRET_KEY", "y" * 40)
    assert load_settings().secret_key is not None


def test_secret_key_is_not_shown_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "a very secret key that nobody may see")
    settings = load_settings()
    assert "nobody may see" not in repr(settings) and "nobody may see" not in str(settings)


def test_sessions_started_before_the_session_list_existed_keep_working(
    fresh_database_url: str,
) -> None:
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET_KEY)
    token = "a-session-started-before-the-upgrade"

    def upgrade_to(revision: str) -> Callable[[Connection], None]:
        def run(connection: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        return run

    async def scenario() -> tuple[list[str], object]:
        database = Database(settings)
        async with database.engine.begin() as connection:
            await connection.run_sync(upgrade_to("0001"))
            await connection.execute(
                text(
                    "INSERT INTO users (login, login_key, email, email_key, firstname,"
                    " lastname, password_hash, created_at) VALUES ('alice', 'alice',"
                    " 'a@b.co', 'a@b.co', '', '', 'x', 0)"
                )
            )
            for digest in (token_digest(token), token_digest("another one")):
                await connection.execute(
                    text(
                        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at,"
                        " last_seen_at) VALUES (:h, 1, 0, 9e12, 0)"
                    ),
                    {"h": digest},
                )
        await database.migrate()
        async with database.engine.connect() as connection:
            ids = list((await connection.execute(text("SELECT id FROM sessions"))).scalars())
        principal = await sessions.resolve(database, token)
        await database.dispose()
        return ids, principal

    ids, principal = asyncio.run(scenario())
    assert principal is not None
    assert len(set(ids)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
