"""Fixtures: a fresh database per test, on SQLite or (TEST_DATABASE=postgresql) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlmodel import SQLModel
from starlette.testclient import TestClient

import core.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.server import create_app
from core.config import Settings
from tests.faces import FACES, Face
from tests.mail import Mailbox
from tests.servers import TEST_SECRET_KEY, Server
from tests.types import MakeClient, MakeFace, MakeSettings, StartServer

POSTGRES_ADMIN = os.environ.get(
    "TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Every table the models define: a test starts with all of them empty.
TABLES = ", ".join(table.name for table in SQLModel.metadata.sorted_tables)


def _on_postgres() -> bool:
    return os.environ.get("TEST_DATABASE", "sqlite") == "postgresql"


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


POSTGRES_SERVER = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")


@contextmanager
def _postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for as long as the block runs; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """One database for the whole run, created here and dropped after."""
    if not _on_postgres():
        yield None
        return
    with _postgres_database("accounts_test") as url:
        yield url


@pytest.fixture
def database_url(tmp_path: Path, postgres_url: str | None) -> Iterator[str]:
    if postgres_url is None:
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    yield postgres_url
    # A fresh database for the next test: empty every table (the schema stays migrated).

    async def truncate() -> None:
        connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            await connection.execute(
                f"DO $$ BEGIN IF to_regclass('users') IS NOT NULL THEN "
                f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE; END IF; END $$"
            )
        finally:
            await connection.close()

    asyncio.run(truncate())


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> MakeSettings:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "bcrypt_rounds": 4,
            # Messages (.eml files, unless a test sets SMTP_URL) stay in the test's directory.
            "mail_dir": str(tmp_path / "mail"),
        }
        values |= overrides
        if str(values["database_url"]).startswith("postgresql"):
            values.setdefault("secret_key", TEST_SECRET_KEY)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def make_client(make_settings: MakeSettings) -> Iterator[MakeClient]:
    """Start the app with some settings changed; each client runs the app's lifespan."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        # From a loopback address, as a real peer would be (not Starlette's "testclient"),
        # so that tests can trust it as a proxy and send X-Forwarded-For.
        client = TestClient(create_app(make_settings(**overrides)), client=("127.0.0.1", 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture(params=sorted(FACES))
def face(request: pytest.FixtureRequest, client: TestClient) -> Face:
    """Each scenario that takes `face` runs once against REST and once against GraphQL."""
    return FACES[request.param](client)


@pytest.fixture(params=sorted(FACES))
def make_face(request: pytest.FixtureRequest, make_client: MakeClient) -> MakeFace:
    """`face`, for a scenario that needs some settings changed."""

    def make(**overrides: object) -> Face:
        return FACES[request.param](make_client(**overrides))

    return make


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[StartServer]:
    """Start real server processes on this test's database; all are stopped afterwards."""
    servers: list[Server] = []

    def start(database: str | None = None, **settings: str) -> Server:
        server = Server(database or database_url, tmp_path, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)


@contextmanager
def _fresh_database(directory: Path, postgres_url: str | None) -> Iterator[str]:
    if postgres_url is None:
        yield f"sqlite+aiosqlite:///{directory / 'fresh.db'}"
        return
    with _postgres_database("accounts_fresh") as url:
        yield url


@pytest.fixture
def fresh_database_url(tmp_path: Path, postgres_url: str | None) -> Iterator[str]:
    """A database no migration has touched yet (PostgreSQL: created here, dropped after)."""
    with _fresh_database(tmp_path, postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None
) -> Iterator[str]:
    """A database of its own for a module's servers (PostgreSQL: created here, dropped after)."""
    with _fresh_database(tmp_path_factory.mktemp("module"), postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None
) -> Iterator[Server]:
    """One real server on its own database, shared by a module's tests (the fuzzers).

    Its limits are out of reach: fuzzers fail thousands of logins, sign up and upload
    avatars over and over, all from one address, by design.
    """
    directory = tmp_path_factory.mktemp("server")
    unlimited = {
        name: "1000000"
        for name in (
            "LOGIN_FAILURES_PER_ACCOUNT",
            "LOGIN_FAILURES_PER_IP",
            "LOGIN_FAILURES_PER_DEVICE",
            "SIGNUPS_PER_IP",
            "AVATAR_UPLOADS_PER_HOUR",
        )
    }
    with _fresh_database(directory, postgres_url) as url:
        server = Server(url, directory, **unlimited)
        try:
            yield server.wait_ready()
        finally:
            server.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free port, collecting what it is sent."""
    box = Mailbox().start()
    yield box
    box.stop()
