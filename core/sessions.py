"""Server-side sessions: opaque tokens whose SHA-256 is the row's key.

Each session also has a public random id, and the user agent and address it started from,
so its user can see where they are logged in and end any of those sessions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import events
from core.config import Settings
from core.db import Database, now
from core.errors import NotFound
from core.events import Origin
from core.models import SESSION_ID_MAX, Session, User
from core.runtime import Runtime
from core.security import new_session_id, new_session_token, token_digest

LAST_SEEN_RESOLUTION = 60.0
# What a session id can look like; anything else is unknown without asking the database
# (and NUL bytes or odd text in a path never reach it).
SESSION_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{SESSION_ID_MAX}}}")
NO_SUCH_SESSION = "No such session"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making the request: the user and the session they hold."""

    user_id: int
    token_hash: str


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    max_age: int


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as its user sees it in their list."""

    id: str
    created_at: float
    last_seen_at: float
    expires_at: float
    user_agent: str
    ip_address: str
    current: bool


async def start(
    db: AsyncSession, settings: Settings, *, user_id: int, origin: Origin
) -> NewSession:
    """A fresh session; never derived from anything the client sent.

    Past SESSIONS_PER_USER live sessions, those of the user used longest ago end, in
    this transaction: the user's logins queue on a lock of the user's row, so the cap is
    exact however many start at once (on SQLite the writer holds the whole database).
    """
    # NO KEY UPDATE: rows that merely refer to the user (its security events) still go in.
    await db.exec(select(User.id).where(col(User.id) == user_id).with_for_update(key_share=True))
    token = new_session_token()
    token_hash = token_digest(token)
    at = now()
    ttl = settings.session_ttl_seconds
    db.add(
        Session(
            token_hash=token_hash,
            id=new_session_id(),
            user_id=user_id,
            created_at=at,
            expires_at=at + ttl,
            last_seen_at=at,
            user_agent=origin.user_agent,
            ip_address=origin.ip_address,
        )
    )
    await db.flush()
    # Expired rows are purged as new ones arrive, so the table stays the size of the
    # live sessions without a separate job.
    await db.exec(delete(Session).where(col(Session.expires_at) <= at))
    others = col(Session.user_id) == user_id, col(Session.token_hash) != token_hash
    kept = (
        select(Session.token_hash)
        .where(*others)
        .order_by(col(Session.last_seen_at).desc(), col(Session.created_at).desc())
        .limit(settings.sessions_per_user - 1)
    )
    await db.exec(delete(Session).where(*others, col(Session.token_hash).not_in(kept)))
    return NewSession(token=token, max_age=ttl)


# The hot path of every authenticated request: one indexed lookup (see Database.fetch_one).
# It reads only what every request needs; the columns shown in the list of sessions stay
# out of it. Another query may read more alongside (accounts.profile_of_session) as long
# as it names the session's columns as `user_id` and `last_seen_at` and keeps this WHERE.
RESOLVE_SQL = (
    "SELECT user_id, last_seen_at FROM sessions"
    " WHERE token_hash = :token_hash AND expires_at > :now"
)


async def resolve(database: Database, token: str | None) -> Principal | None:
    """The session a cookie names, if it exists and has not expired."""
    found = await resolve_with(database, token, RESOLVE_SQL)
    return None if found is None else found[0]


async def resolve_with(
    database: Database, token: str | None, sql: str
) -> tuple[Principal, Mapping[str, Any]] | None:
    """The session a cookie names, found by `sql` (RESOLVE_SQL or a query joining more to
    it, taking `:token_hash` and `:now`), and the row read.

    Every call asks the database: nothing about a session is kept between requests, so a
    session ended by any instance is refused by every other at its next request.
    """
    if not token:
        return None
    token_hash = token_digest(token)
    at = now()
    row = await database.fetch_one(sql, token_hash=token_hash, now=at)
    if row is None:
        return None
    if at - row["last_seen_at"] >= LAST_SEEN_RESOLUTION:
        async with database.write() as db:
            await db.exec(
                update(Session).where(col(Session.token_hash) == token_hash).values(last_seen_at=at)
            )
    return Principal(user_id=row["user_id"], token_hash=token_hash), row


async def end(db: AsyncSession, principal: Principal) -> None:
    await db.exec(delete(Session).where(col(Session.token_hash) == principal.token_hash))


async def end_token(db: AsyncSession, token: str) -> None:
    """End the session a cookie names, if there is one."""
    await db.exec(delete(Session).where(col(Session.token_hash) == token_digest(token)))


async def end_all(db: AsyncSession, user_id: int) -> None:
    await db.exec(delete(Session).where(col(Session.user_id) == user_id))


async def listing(rt: Runtime, principal: Principal) -> list[SessionInfo]:
    """The user's live sessions, newest first, the one making the request marked."""
    async with rt.db.read() as db:
        rows = (
            await db.exec(
                select(Session)
                .where(col(Session.user_id) == principal.user_id, col(Session.expires_at) > now())
                .order_by(col(Session.created_at).desc(), col(Session.id))
            )
        ).all()
    return [
        SessionInfo(
            id=row.id,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            ip_address=row.ip_address,
            current=row.token_hash == principal.token_hash,
        )
        for row in rows
    ]


async def revoke(
    rt: Runtime, principal: Principal, session_id: str, *, client: str, user_agent: str
) -> bool:
    """End one of the user's sessions; True when it was the caller's own (a logout).

    An id that is unknown, expired, already ended or another user's gets the same
    NotFound, so ids cannot be probed.
    """
    if not SESSION_ID.fullmatch(session_id):
        raise NotFound(NO_SUCH_SESSION)
    origin = Origin.of(client, user_agent)
    async with rt.db.write() as db:
        token_hash = (
            await db.exec(
                select(Session.token_hash).where(
                    col(Session.id) == session_id,
                    col(Session.user_id) == principal.user_id,
                    col(Session.expires_at) > now(),
                )
            )
        ).first()
        # The delete decides: of two requests ending one session at once, one ends it.
        if token_hash is None or not await _deleted(db, token_hash):
            raise NotFound(NO_SUCH_SESSION)
        current = token_hash == principal.token_hash
        kind = events.Kind.LOGOUT if current else events.Kind.SESSION_REVOKED
        await events.record(db, rt.settings, kind, user_id=principal.user_id, origin=origin)
    return current


async def revoke_others(rt: Runtime, principal: Principal, *, client: str, user_agent: str) -> int:
    """End every session of the user but the caller's; how many were live."""
    origin = Origin.of(client, user_agent)
    async with rt.db.write() as db:
        ended = await db.exec(
            delete(Session).where(
                col(Session.user_id) == principal.user_id,
                col(Session.token_hash) != principal.token_hash,
                col(Session.expires_at) > now(),
            )
        )
        # One event for the one action, however many sessions it ended.
        await events.record(
            db,
            rt.settings,
            events.Kind.SESSION_REVOKED,
            user_id=principal.user_id,
            origin=origin,
        )
    return int(ended.rowcount)


async def _deleted(db: AsyncSession, token_hash: str) -> bool:
    result = await db.exec(delete(Session).where(col(Session.token_hash) == token_hash))
    return bool(result.rowcount)
