"""Sessions: cookie attributes, server-side ending, rotation, expiry, storage as hashes."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from sqlalchemy import event, text
from sqlmodel import func, select
from starlette.testclient import TestClient

from core import accounts, sessions
from core.config import Settings
from core.db import Database
from core.events import Origin
from core.models import Session
from core.runtime import Runtime
from tests.faces import Face
from tests.types import MakeClient, MakeFace, MakeSettings

PASSWORD = "correct horse battery"
SIGNUP = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}


def _session_rows(settings: Settings) -> list[tuple[str, int]]:
    async def query() -> list[tuple[str, int]]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT token_hash, user_id FROM sessions"))
            ).all()
        await database.dispose()
        return [(row[0], row[1]) for row in rows]

    return asyncio.run(query())


def test_session_cookie_has_contract_attributes(client: TestClient) -> None:
    response = client.post("/signup", json=SIGNUP)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("session_id="))
    token = client.cookies["session_id"]
    assert cookie == (f"session_id={token}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax")
    assert len(token) >= 43  # 32 random bytes, base64url


def test_cookie_is_secure_when_configured(make_client: MakeClient) -> None:
    client = make_client(cookie_secure=True, session_ttl_seconds=3600)
    cookie = client.post("/signup", json=SIGNUP).headers["set-cookie"]
    assert "; Secure" in cookie
    assert "Max-Age=3600;" in cookie


def test_logout_clears_cookie_with_contract_header(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    response = client.get("/logout")
    assert response.status_code == 200
    assert response.json() == {"message": "Logged out"}
    assert response.headers["set-cookie"] == (
        'session_id=""; Max-Age=0; Path=/; HttpOnly; SameSite=Lax'
    )


def test_logout_by_post_works_too(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    assert client.post("/logout").status_code == 200
    assert client.get("/profile").status_code == 403


def test_token_is_stored_only_as_its_hash(client: TestClient, make_settings: MakeSettings) -> None:
    client.post("/signup", json=SIGNUP)
    token = client.cookies["session_id"]
    rows = _session_rows(make_settings())
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), 1)]


def _replay(client: TestClient, token: str, path: str = "/profile") -> int:
    client.cookies.clear()
    client.cookies.set("session_id", token, domain="testserver.local")
    return int(client.get(path).status_code)


def test_logout_ends_session_on_server(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    token = client.cookies["session_id"]
    client.get("/logout")
    assert _replay(client, token) == 403


def test_password_change_ends_every_other_session_and_rotates_own(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    first = client.cookies["session_id"]
    client.cookies.clear()
    client.post("/login", json={"login": "alice", "password": PASSWORD})
    second = client.cookies["session_id"]
    response = client.put(
        "/password", json={"old_password": PASSWORD, "new_password": "a brand new passphrase"}
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Password changed"}
    third = client.cookies["session_id"]
    assert third not in (first, second)
    assert _replay(client, first) == 403
    assert _replay(client, second) == 403
    assert _replay(client, third) == 200


def test_delete_ends_sessions_on_server(client: TestClient, make_settings: MakeSettings) -> None:
    client.post("/signup", json=SIGNUP)
    token = client.cookies["session_id"]
    response = client.delete("/profile")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith('session_id=""; Max-Age=0; Path=/')
    assert _replay(client, token) == 403
    assert _session_rows(make_settings()) == []


def test_login_starts_new_session_and_never_adopts_a_planted_cookie(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    old = client.cookies["session_id"]
    client.cookies.clear()
    client.cookies.set("session_id", "attacker-chosen-value", domain="testserver.local")
    client.post("/login", json={"login": "alice", "password": PASSWORD})
    new = client.cookies["session_id"]
    assert new not in (old, "attacker-chosen-value")
    assert _replay(client, "attacker-chosen-value") == 403
    assert _replay(client, new) == 200


def test_expired_session_is_refused(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(session_ttl_seconds=60)
    client.post("/signup", json=SIGNUP)
    assert client.get("/profile").status_code == 200
    later = time.time() + 61
    monkeypatch.setattr("core.sessions.now", lambda: later)
    assert client.get("/profile").status_code == 403


def test_same_session_works_on_both_faces(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    me = client.post("/graphql", json={"query": "{ me { username } }"}).json()
    assert me == {"data": {"me": {"username": "alice"}}}
    client.post("/graphql", json={"query": "mutation { logout }"})
    assert client.get("/profile").status_code == 403


def test_session_from_graphql_login_works_on_rest(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.client.get("/profile").json()["username"] == "alice"
    me = face.client.post("/graphql", json={"query": "{ me { username } }"}).json()
    assert me["data"]["me"]["username"] == "alice"


def _last_seen(settings: Settings) -> list[float]:
    async def query() -> list[float]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT last_seen_at FROM sessions"))).all()
        await database.dispose()
        return [row[0] for row in rows]

    return asyncio.run(query())


def test_last_seen_is_written_at_most_once_a_minute(
    client: TestClient, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/signup", json=SIGNUP)
    settings: Settings = make_settings()
    [created] = _last_seen(settings)
    monkeypatch.setattr("core.sessions.now", lambda: created + 30)
    assert client.get("/profile").status_code == 200
    assert _last_seen(settings) == [created]
    monkeypatch.setattr("core.sessions.now", lambda: created + 61)
    assert client.get("/profile").status_code == 200
    assert _last_seen(settings) == [created + 61]


def test_expired_sessions_are_purged_when_new_ones_start(
    make_client: MakeClient, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(session_ttl_seconds=60)
    client.post("/signup", json=SIGNUP)
    later = time.time() + 61
    monkeypatch.setattr("core.sessions.now", lambda: later)
    client.cookies.clear()
    client.post("/login", json={"login": "alice", "password": PASSWORD})
    assert len(_session_rows(make_settings())) == 1


def test_login_while_logged_in_ends_the_old_session(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    old = face.client.cookies["session_id"]
    assert face.login("alice", PASSWORD).status == 200
    new = face.client.cookies["session_id"]
    assert new != old
    assert _replay(face.client, old) == 403
    assert _replay(face.client, new) == 200


def test_signup_while_logged_in_ends_the_old_session(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    alices = face.client.cookies["session_id"]
    assert face.signup("bob", PASSWORD, "bob@example.com").status == 200
    assert _replay(face.client, alices) == 403
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 200  # her account is untouched


def test_failed_login_leaves_the_session_alone(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.login("alice", "wrong password!").status == 403
    assert face.profile().status == 200


def test_head_never_logs_out(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    response = client.head("/logout")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    assert "set-cookie" not in response.headers
    assert client.get("/profile").status_code == 200
    # Where GET only reads, HEAD answers as GET would, without a body.
    head = client.head("/profile")
    assert head.status_code == 200
    assert head.content == b""


def _set_last_seen_back(settings: Settings, token: str, seconds: float) -> None:
    async def update() -> None:
        database = Database(settings)
        async with database.engine.begin() as connection:
            await connection.execute(
                text("UPDATE sessions SET last_seen_at = last_seen_at - :s WHERE token_hash = :h"),
                {"s": seconds, "h": hashlib.sha256(token.encode()).hexdigest()},
            )
        await database.dispose()

    asyncio.run(update())


def _logged_in(face: Face, token: str) -> bool:
    face.client.cookies.clear()
    face.client.cookies.set("session_id", token, domain="testserver.local")
    return face.profile().status == 200


def test_the_51st_session_ends_the_one_used_longest_ago(
    face: Face, make_settings: MakeSettings
) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    tokens = [face.client.cookies["session_id"]]
    for _ in range(49):
        face.client.cookies.clear()  # another browser: the sessions add up
        assert face.login("alice", PASSWORD).status == 200
        tokens.append(face.client.cookies["session_id"])
    assert all(_logged_in(face, token) for token in tokens)
    # The second session is the one used longest ago, though the first is the oldest.
    _set_last_seen_back(make_settings(), tokens[1], 60)
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 200
    tokens.append(face.client.cookies["session_id"])
    assert len(face.sessions().data) == 50
    assert not _logged_in(face, tokens[1])
    assert all(_logged_in(face, token) for token in tokens[:1] + tokens[2:])
    assert len(_session_rows(make_settings())) == 50


def test_sessions_per_user_caps_each_user_alone(make_face: MakeFace) -> None:
    face = make_face(sessions_per_user=2)
    assert face.signup("bob", PASSWORD, "bob@example.com").status == 200
    bobs = face.client.cookies["session_id"]
    face.client.cookies.clear()
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    first = face.client.cookies["session_id"]
    for _ in range(2):
        face.client.cookies.clear()
        assert face.login("alice", PASSWORD).status == 200
    assert len(face.sessions().data) == 2
    assert not _logged_in(face, first)
    assert _logged_in(face, bobs)


def test_a_session_started_meanwhile_waits_for_the_cap(make_settings: MakeSettings) -> None:
    # Each start locks its user's row first. Without the lock, on PostgreSQL, a start in
    # another transaction would not see this one's new session, and both would stay.
    async def scenario() -> int:
        rt = Runtime.create(make_settings(sessions_per_user=2))
        origin = Origin.of("192.0.2.1", "")

        async def start_one() -> None:
            async with rt.db.write() as db:
                await sessions.start(db, rt.settings, user_id=user_id, origin=origin)

        try:
            await rt.db.migrate()
            signed_in = await accounts.signup(
                rt, login="alice", password=PASSWORD, email="a@b.co", client="", user_agent=""
            )
            principal = await sessions.resolve(rt.db, signed_in.session.token)
            assert principal is not None
            user_id = principal.user_id
            async with rt.db.write() as db:
                await sessions.start(db, rt.settings, user_id=user_id, origin=origin)
                meanwhile = asyncio.create_task(start_one())
                await asyncio.sleep(0.5)  # it goes as far as it can while this one is open
            await meanwhile
            async with rt.db.read() as db:
                return (await db.exec(select(func.count()).select_from(Session))).one()
        finally:
            await rt.db.dispose()

    assert asyncio.run(scenario()) == 2


def test_session_and_profile_are_one_read_outside_the_engine(
    client: TestClient, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path of `GET /profile` and `{ me }`: one statement reads the session and the
    profile, on SQLite through `sqlite3` and on PostgreSQL through the asyncpg pool the
    lifespan opens, never through the engine (a checkout, its ping, BEGIN and ROLLBACK)."""
    client.post("/signup", json=SIGNUP)
    token = client.cookies["session_id"]
    settings: Settings = make_settings()
    reads: list[tuple[Database, str]] = []
    fetch_one = Database.fetch_one

    async def counting(database: Database, sql: str, **params: object) -> object:
        reads.append((database, sql))
        return await fetch_one(database, sql, **params)

    monkeypatch.setattr(Database, "fetch_one", counting)

    async def lookups() -> tuple[object, int, object, int]:
        database = Database(settings)
        await database.open()
        through_engine: list[object] = []

        def seen(*args: object) -> None:
            through_engine.append(args[2])

        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        try:
            found = await accounts.profile_of_session(database, token)
            assert found is not None
            # Nothing is kept between lookups: the session ended elsewhere (another
            # instance, here the app), the same lookup on the same pool finds nothing.
            assert client.get("/logout").status_code == 200
            after = await accounts.profile_of_session(database, token)
            ours = sum(1 for reader, _ in reads if reader is database)
            return found[1], len(through_engine), after, ours
        finally:
            await database.dispose()

    profile, engine_statements, after, statements = asyncio.run(lookups())
    assert profile == accounts.Profile(
        username="alice", email="alice@example.com", firstname="", lastname="", avatar_key=None
    )
    assert after is None
    assert statements == 2  # one statement per lookup
    assert engine_statements == 0


def test_connections_the_database_server_ended_are_replaced_not_failed(
    client: TestClient, make_settings: MakeSettings
) -> None:
    """No ping per checkout (neither the engine's pool nor the hot path's): a connection the
    server ended is still never handed to a request, for reads and writes alike."""
    settings: Settings = make_settings()
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's connections")
    client.post("/signup", json=SIGNUP)
    # Both pools hold a connection now: the hot path's (the read) and the engine's (the write).
    assert client.get("/profile").status_code == 200
    assert client.put("/profile", json={"firstname": "Ada"}).status_code == 200

    async def terminate() -> int:
        database = Database(settings)
        try:
            async with database.engine.connect() as connection:
                ended = await connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))"
                        " FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                return int(ended.scalar_one())
        finally:
            await database.dispose()

    assert asyncio.run(terminate()) >= 2
    time.sleep(0.5)  # the server's goodbye reaches the app's event loop (not a timing check)
    assert client.get("/profile").json()["firstname"] == "Ada"
    assert client.put("/profile", json={"firstname": "Grace"}).status_code == 200
    assert client.get("/profile").json()["firstname"] == "Grace"
