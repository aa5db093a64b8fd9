"""A PostgreSQL database of the bench's own, created before a run and dropped after.

The server is the local one (`BENCH_POSTGRES_ADMIN`, by default
postgresql://postgres@127.0.0.1:5432/postgres, as the tests use); the database's name is
unique to the run, so runs never share rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

# Settings refuse PostgreSQL without a secret key (instances must share it); one per run.
SECRET_KEY = secrets.token_hex(32)
ADMIN = os.environ.get("BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def database(prefix: str = "accounts_bench") -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, for as long as the block runs."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        server = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{server}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
