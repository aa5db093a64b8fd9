"""Server-side sessions: opaque tokens whose SHA-256 is the row's key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, delete, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, now
from core.models import Session
from core.security import new_session_token, token_digest

LAST_SEEN_RESOLUTION = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making the request: the user and the session they hold."""

    user_id: int
    token_hash: str


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    max_age: int


async def start(db: AsyncSession, *, user_id: int, ttl: int) -> NewSession:
    """A fresh session; never derived from anything the client sent."""
    token = new_session_token()
    at = now()
    db.add(
        Session(
            token_hash=token_digest(token),
            user_id=user_id,
            created_at=at,
            expires_at=at + ttl,
            last_seen_at=at,
        )
    )
    # Expired rows are purged as new ones arrive, so the table stays the size of the
    # live sessions without a separate job.
    await db.exec(delete(Session).where(col(Session.expires_at) <= at))
    return NewSession(token=token, max_age=ttl)


# The hot path of every authenticated request: one indexed lookup (see Database.fetch_one).
RESOLVE_SQL = (
    "SELECT user_id, last_seen_at FROM sessions"
    " WHERE token_hash = :token_hash AND expires_at > :now"
)


async def resolve(database: Database, token: str | None) -> Principal | None:
    """The session a cookie names, if it exists and has not expired."""
    if not token:
        return None
    token_hash = token_digest(token)
    at = now()
    row = await database.fetch_one(RESOLVE_SQL, token_hash=token_hash, now=at)
    if row is None:
        return None
    if at - row["last_seen_at"] >= LAST_SEEN_RESOLUTION:
        async with database.write() as db:
            await db.exec(
                update(Session).where(col(Session.token_hash) == token_hash).values(last_seen_at=at)
            )
    return Principal(user_id=row["user_id"], token_hash=token_hash)


async def end(db: AsyncSession, principal: Principal) -> None:
    await db.exec(delete(Session).where(col(Session.token_hash) == principal.token_hash))


async def end_token(db: AsyncSession, token: str) -> None:
    """End the session a cookie names, if there is one."""
    await db.exec(delete(Session).where(col(Session.token_hash) == token_digest(token)))


async def end_all(db: AsyncSession, user_id: int) -> None:
    await db.exec(delete(Session).where(col(Session.user_id) == user_id))
