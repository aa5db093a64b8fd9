"""A database that cannot serve (pool exhausted, database gone) is `503` + `Retry-After`.

Real servers on PostgreSQL (TEST_DATABASE=postgresql), where the pool and the network are:
never a `500`, logged in one line per failure, and the server keeps running.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest

from tests.servers import Server
from tests.types import StartServer

PASSWORD = "correct horse battery"
ME = {"query": "{ me { username } }"}
ADMIN = os.environ.get("TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
WAIT_LIMIT = 30.0  # how long to wait for the server's requests to be blocked, not a measurement


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a connection pool and a database server to lose: PostgreSQL only")


def signup(server: Server) -> dict[str, str]:
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    response = httpx.post(f"{server.url}/signup", json=body)
    assert response.status_code == 200, response.text
    return {"cookie": f"session_id={response.cookies['session_id']}"}


def assert_rest_unavailable(response: httpx.Response, retry_after: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == retry_after
    assert set(response.json()) == {"message"}


def assert_graphql_unavailable(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 200, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": retry_after}


def assert_no_internal_errors(server: Server) -> None:
    # Each failure is one warning line: no masked 500, no traceback (the mail sender's
    # background passes included).
    log = server.log()
    assert "unexpected error" not in log
    assert "Traceback" not in log


async def _blocked(database: str) -> int:
    connection = await asyncpg.connect(ADMIN)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            database,
        )
        return count
    finally:
        await connection.close()


def wait_for_blocked(database: str, count: int) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while asyncio.run(_blocked(database)) < count:
        assert time.monotonic() < deadline, "the server's requests never reached the lock"
        time.sleep(0.05)


class Lock:
    """A lock held from another connection until `release()`."""

    def __init__(self, url: str, statement: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(url))
        self.loop.run_until_complete(self.connection.execute("BEGIN"))
        self.loop.run_until_complete(self.connection.execute(statement))

    def release(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.connection.execute("ROLLBACK"))
            self.loop.run_until_complete(self.connection.close())
            self.loop.close()


# Blocks writes to the accounts but not reads of them; the other blocks both.
ROWS = "SELECT 1 FROM users FOR UPDATE"
TABLES = "LOCK TABLE sessions, users IN ACCESS EXCLUSIVE MODE"


@pytest.mark.parametrize(
    ("lock_statement", "method", "stuck_count"),
    [(ROWS, "PUT", 2), (TABLES, "GET", 1)],
    ids=["writes-engine-pool", "reads-hot-path-pool"],
)
def test_exhausted_pool_is_503_with_retry_after(
    start_server: StartServer, database_url: str, lock_statement: str, method: str, stuck_count: int
) -> None:
    # Pools of one: the engine's (writes: one plus one overflow) and the hot path's asyncpg
    # pool (reads). Requests stuck behind a lock hold every connection of one pool, so the
    # next request needing it finds none free within the timeout. The stuck ones have
    # three times as long (asyncpg's command timeout) before they give up themselves.
    server = start_server(DB_POOL_SIZE="1", DB_POOL_TIMEOUT_SECONDS="3").wait_ready()
    cookie = signup(server)
    database = database_url.rsplit("/", 1)[1]
    profile = f"{server.url}/profile"
    body = {"firstname": "Ada"} if method == "PUT" else None
    lock = Lock(database_url.replace("+asyncpg", ""), lock_statement)

    def send() -> httpx.Response:
        return httpx.request(method, profile, json=body, headers=cookie, timeout=60)

    try:
        with ThreadPoolExecutor(stuck_count) as pool:
            stuck = [pool.submit(send) for _ in range(stuck_count)]
            wait_for_blocked(database, stuck_count)
            assert_rest_unavailable(send(), "1")
            if method == "GET":
                graphql = httpx.post(f"{server.url}/graphql", json=ME, headers=cookie, timeout=60)
                assert_graphql_unavailable(graphql, 1)
            lock.release()
            # Answered once the lock is gone, or refused the same way if it took too long.
            assert {future.result().status_code for future in stuck} <= {200, 503}
    finally:
        lock.release()
    assert send().status_code == 200
    assert server.log().count("database pool exhausted") >= (2 if method == "GET" else 1)
    assert_no_internal_errors(server)


@pytest.fixture
def doomed_database() -> Iterator[str]:
    """A database of its own, which the test drops while a server uses it."""
    name = f"accounts_doomed_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield name
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_database_gone_mid_run_is_503_and_the_server_survives(
    start_server: StartServer, doomed_database: str
) -> None:
    server_url = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    server = start_server(f"{server_url}/{doomed_database}").wait_ready()
    cookie = signup(server)

    async def drop() -> None:
        connection = await asyncpg.connect(ADMIN)
        try:
            await connection.execute(f'DROP DATABASE "{doomed_database}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())

    assert_rest_unavailable(httpx.get(f"{server.url}/profile", headers=cookie), "5")
    login = {"login": "alice", "password": PASSWORD}
    assert_rest_unavailable(httpx.post(f"{server.url}/login", json=login), "5")
    assert_graphql_unavailable(httpx.post(f"{server.url}/graphql", json=ME, headers=cookie), 5)
    # A persisted query's text is looked up before anything runs: refused the same way.
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
    looked_up = httpx.post(f"{server.url}/graphql", json=by_hash)
    assert looked_up.status_code == 503
    assert looked_up.headers["retry-after"] == "5"
    (error,) = looked_up.json()["errors"]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 5}
    assert_rest_unavailable(httpx.get(f"{server.url}/avatars/{'0' * 64}"), "5")
    assert httpx.get(f"{server.url}/healthz").status_code == 503
    assert server.process.poll() is None
    assert server.log().count("database unavailable") >= 5
    assert_no_internal_errors(server)
