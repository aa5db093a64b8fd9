"""Device cookies: browsers that have logged in to an account before.

OWASP's "slow down online guessing attacks with device cookies": a login that carries a
valid device token for the account it names is limited by the device's own failures, not
the account's, so strangers' guesses that lock an account do not lock out its owner's
browser (core/accounts.py decides which count applies). The token is opaque and random;
the table keeps its SHA-256, so a leaked database cannot be replayed as cookies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, now
from core.models import Device
from core.security import new_session_token, token_digest

COOKIE_MAX_AGE = 365 * 24 * 3600
# Each login binds a new token. A client that drops its cookies would otherwise leave a
# row per login for a year; the newest few per account are all a person's browsers.
DEVICES_PER_ACCOUNT = 20


@dataclass(frozen=True, slots=True)
class NewDevice:
    token: str
    max_age: int


RECOGNISE_SQL = (
    "SELECT 1 AS known FROM devices"
    " WHERE token_hash = :token_hash AND user_id = :user_id AND expires_at > :now"
)


async def recognise(database: Database, token: str | None, user_id: int | None) -> str | None:
    """The token's hash when it is a live device of `user_id`, else None."""
    if not token or user_id is None:
        return None
    token_hash = token_digest(token)
    row = await database.fetch_one(RECOGNISE_SQL, token_hash=token_hash, user_id=user_id, now=now())
    return token_hash if row else None


async def bind(db: AsyncSession, *, user_id: int, replacing: str | None) -> NewDevice:
    """A new device token for `user_id`, in place of the hash `replacing` if one was used."""
    token = new_session_token()
    at = now()
    if replacing is not None:
        await db.exec(delete(Device).where(col(Device.token_hash) == replacing))
    db.add(
        Device(
            token_hash=token_digest(token),
            user_id=user_id,
            created_at=at,
            expires_at=at + COOKIE_MAX_AGE,
        )
    )
    await db.flush()
    await db.exec(delete(Device).where(col(Device.expires_at) <= at))
    newest = (
        select(Device.token_hash)
        .where(Device.user_id == user_id)
        .order_by(col(Device.created_at).desc())
        .limit(DEVICES_PER_ACCOUNT)
    )
    await db.exec(
        delete(Device).where(col(Device.user_id) == user_id, col(Device.token_hash).not_in(newest))
    )
    return NewDevice(token=token, max_age=COOKIE_MAX_AGE)
