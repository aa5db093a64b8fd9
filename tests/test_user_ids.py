"""User ids are never given twice, so nothing keyed by an old account's id reaches a new one."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from core.config import Settings
from core.db import MIGRATIONS, Database
from tests.faces import Face
from tests.mail import query
from tests.servers import TEST_SECRET_KEY
from tests.types import MakeSettings

PASSWORD = "correct horse battery"


def _user_ids(settings: Settings) -> list[int]:
    return [row[0] for row in query(settings, "SELECT id FROM users ORDER BY id")]


def test_a_deleted_accounts_id_goes_to_no_later_account(
    face: Face, make_settings: MakeSettings
) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    [alices] = _user_ids(make_settings())
    assert face.delete_profile().status == 200
    assert face.signup("bob", PASSWORD, "bob@example.com").status == 200
    [bobs] = _user_ids(make_settings())
    assert bobs > alices


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


ROWS = {
    "users": "INSERT INTO users (id, login, login_key, email, email_key, firstname, lastname,"
    " password_hash, created_at, email_verified)"
    " VALUES (7, 'alice', 'alice', 'a@example.com', 'a@example.com', 'Alice', '', 'h', 1, true)",
    "sessions": "INSERT INTO sessions (token_hash, id, user_id, created_at, expires_at,"
    " last_seen_at) VALUES ('t', 's', 7, 1, 9e12, 1)",
    "devices": "INSERT INTO devices (token_hash, user_id, created_at, expires_at)"
    " VALUES ('d', 7, 1, 9e12)",
    "security_events": "INSERT INTO security_events (user_id, kind, at, ip_address, user_agent)"
    " VALUES (7, 'LOGIN', 1, '', '')",
}
COUNTS = (
    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions),"
    " (SELECT count(*) FROM devices), (SELECT count(*) FROM security_events)"
)
# An account with the next id, as a sign-up makes one.
SIGNUP = (
    "INSERT INTO users (login, login_key, email, email_key, firstname, lastname,"
    " password_hash, created_at, email_verified)"
    " VALUES (:login, :login, :login, :login, '', '', 'h', 1, false) RETURNING id"
)


def test_the_migration_keeps_every_row_that_refers_to_a_user(fresh_database_url: str) -> None:
    # SQLite copies the users table to change it: with foreign keys on, dropping the old
    # copy would delete every session, device and event of every account.
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET_KEY)

    async def scenario() -> tuple[dict[str, int], list[int]]:
        database = Database(settings)
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0005")
            for insert in ROWS.values():
                await connection.execute(text(insert))
        await database.migrate()
        async with database.engine.begin() as connection:
            counts = dict(zip(ROWS, (await connection.execute(text(COUNTS))).one(), strict=True))
            ids: list[int] = []
            for login in ("bob", "carol"):
                ids += (await connection.execute(text(SIGNUP), {"login": login})).one()
                await connection.execute(text("DELETE FROM users WHERE login = 'bob'"))
        await database.dispose()
        return counts, ids

    counts, (bobs, carols) = asyncio.run(scenario())
    assert counts == dict.fromkeys(ROWS, 1)
    assert carols not in (bobs, 7)
