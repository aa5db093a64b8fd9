"""The two hand-written handlers the service is measured against (plain Starlette, no GraphQL).

Both read the `session_id` cookie, find the session and its user, and answer with the
same profile JSON as `GET /profile`; `PUT /profile` changes the first name the same way.

- `ceiling`: the lookup with the standard library's `sqlite3`, synchronously on the event
  loop: the most this machine's HTTP stack and SQLite allow. On a PostgreSQL URL it is
  `postgres_ceiling`: an asyncpg pool and the same joined lookup with `fetchrow` (a
  prepared statement, as asyncpg caches them), the most the HTTP stack and PostgreSQL allow.
- `orm_baseline`: the lookup through an ORM session on the SQLAlchemy async engine the
  service builds (core.db.Database: same driver, same pragmas, same write transactions).

Run as factories: `BENCH_DATABASE_URL=… uvicorn --factory bench.reference:ceiling`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlmodel import col, select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.config import Settings
from core.db import Database
from core.models import Avatar, User
from core.models import Session as SessionRow

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///var/app.db")

PROFILE_SQL = """
SELECT u.id, u.login, u.email, u.firstname, u.lastname, a.key
FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN avatars a ON a.user_id = u.id
WHERE s.token_hash = ? AND s.expires_at > ?
"""


def _token_hash(request: Request) -> str:
    token = request.cookies.get("session_id", "")
    return hashlib.sha256(token.encode()).hexdigest()


def _profile(login: str, email: str, first: str, last: str, key: str | None) -> dict[str, str]:
    avatar = f"/avatars/{key}" if key else ""
    return {"username": login, "email": email, "firstname": first, "lastname": last} | {
        "avatar": avatar
    }


def _forbidden() -> Response:
    return JSONResponse({"message": "You must be logged in"}, status_code=403)


def ceiling(database_url: str = DATABASE_URL) -> Starlette:
    if not database_url.startswith("sqlite"):
        return postgres_ceiling(database_url)
    path = make_url(database_url).database or ""
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")

    def lookup(token_hash: str) -> Any:
        return connection.execute(PROFILE_SQL, (token_hash, time.time())).fetchone()

    async def get_profile(request: Request) -> Response:
        row = lookup(_token_hash(request))
        if row is None:
            return _forbidden()
        return JSONResponse(_profile(*row[1:]))

    async def put_profile(request: Request) -> Response:
        body = json.loads(await request.body())
        row = lookup(_token_hash(request))
        if row is None:
            return _forbidden()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "UPDATE users SET firstname = ? WHERE id = ?", (body["firstname"], row[0])
        )
        connection.execute("COMMIT")
        return JSONResponse(_profile(*lookup(_token_hash(request))[1:]))

    return Starlette(
        routes=[
            Route("/profile", get_profile, methods=["GET"]),
            Route("/profile", put_profile, methods=["PUT"]),
        ]
    )


def postgres_ceiling(database_url: str = DATABASE_URL) -> Starlette:
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    sql = PROFILE_SQL.replace("?", "$1", 1).replace("?", "$2", 1)
    pool: Any = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
        yield
        await pool.close()

    async def lookup(token_hash: str) -> Any:
        return await pool.fetchrow(sql, token_hash, time.time())

    async def get_profile(request: Request) -> Response:
        row = await lookup(_token_hash(request))
        if row is None:
            return _forbidden()
        return JSONResponse(_profile(*row[1:]))

    async def put_profile(request: Request) -> Response:
        body = json.loads(await request.body())
        row = await lookup(_token_hash(request))
        if row is None:
            return _forbidden()
        await pool.execute(
            "UPDATE users SET firstname = $1 WHERE id = $2", body["firstname"], row[0]
        )
        return JSONResponse(_profile(*(await lookup(_token_hash(request)))[1:]))

    return Starlette(
        routes=[
            Route("/profile", get_profile, methods=["GET"]),
            Route("/profile", put_profile, methods=["PUT"]),
        ],
        lifespan=lifespan,
    )


def orm_baseline(database_url: str = DATABASE_URL) -> Starlette:
    database = Database(Settings(database_url=database_url))

    async def find_user(db: Any, token_hash: str) -> Any:
        # The session, its user and the avatar key in one query, as the ceiling does.
        return (
            await db.exec(
                select(User, col(Avatar.key))
                .join(SessionRow, col(SessionRow.user_id) == col(User.id))
                .outerjoin(Avatar, col(Avatar.user_id) == col(User.id))
                .where(
                    SessionRow.token_hash == token_hash, col(SessionRow.expires_at) > time.time()
                )
            )
        ).first()

    def answer(row: Any) -> Response:
        user, key = row
        return JSONResponse(_profile(user.login, user.email, user.firstname, user.lastname, key))

    async def get_profile(request: Request) -> Response:
        async with database.read() as db:
            row = await find_user(db, _token_hash(request))
        return _forbidden() if row is None else answer(row)

    async def put_profile(request: Request) -> Response:
        body = json.loads(await request.body())
        async with database.read() as db:
            row = await find_user(db, _token_hash(request))
        if row is None:
            return _forbidden()
        async with database.write() as db:
            await db.exec(
                update(User).where(col(User.id) == row[0].id).values(firstname=body["firstname"])
            )
            row = await find_user(db, _token_hash(request))
        return answer(row)

    return Starlette(
        routes=[
            Route("/profile", get_profile, methods=["GET"]),
            Route("/profile", put_profile, methods=["PUT"]),
        ]
    )
