"""Rate limits: at most N events per key within a sliding window, counted in the database.

Every limit of the service is a `Limit` (a name, a maximum, a window) in `Limits`, built
from the settings, and every count goes through this module:

- `take(database, *keys)` counts one event against each key in its own transaction, or
  refuses with `TooManyRequests` (and counts nothing) when any key is at its maximum;
  `take_in(db, *keys)` does it inside the caller's write transaction. A new limit is a
  field of `Limits` and its caller is one line, for example:

      await throttle.take(rt.db, rt.limits.password_resets.for_client(client))
      await throttle.take(rt.db, rt.limits.uploads(user_id))

- `Counter` does the same step by step inside a write transaction, for a caller whose
  choice of keys depends on the counts (login's device cookies, in core/accounts.py).
- `clear(db, *keys)` forgets keys' events (a successful login clears its account's count;
  a deletion every count of the account, `Limits.of_account`);
  `give_back(db, taken)` forgets the events one `take` counted.

Exact under concurrency, on every database and across instances: the counted keys are
locked for the rest of the transaction before they are counted, so counting and recording
are one step. On PostgreSQL that is a transaction-scoped advisory lock per key, taken in a
fixed order so two requests never wait for each other's keys; on SQLite the whole database
is already locked by its writer (`Database.write()` begins IMMEDIATE).

Nothing counted is stored in the clear: a key is the HMAC-SHA-256 of its limit's name and
value under a key derived from SECRET_KEY (core/keys.py), so a stolen table cannot be
searched for a known login, email or address, nor reversed with a dictionary of them.
Rows written under another key are never matched again, and expire with their window.
Client addresses count per network (`Limit.for_client`, with core.security.network): an
IPv6 client controls a whole /64, so it counts as one.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import metrics
from core.config import Settings
from core.db import Database, now
from core.errors import TooManyRequests
from core.models import ThrottleEvent
from core.security import network

HOUR = 3600


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `events` events per key within any `window` seconds.

    `name` is the setting that sets the maximum: what an operator sees in a refusal's metric.
    `secret` keys the digests of what is counted (Keys.throttle).
    """

    name: str
    events: int
    window: float
    message: str
    secret: bytes = field(repr=False)

    def key(self, value: str) -> Key:
        counted = f"{self.name}\0{value}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self.secret, counted, "sha256")
        return Key(self, digest.hexdigest())

    def for_client(self, address: str) -> Key:
        """The key of a client address: IPv6 per /64 network (see `network`)."""
        return self.key(network(address))


@dataclass(frozen=True, slots=True)
class Key:
    limit: Limit
    digest: str

    @property
    def lock_id(self) -> int:
        # pg_advisory_xact_lock takes a signed 64-bit integer.
        return int.from_bytes(bytes.fromhex(self.digest[:16]), "big", signed=True)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of the service, from the settings."""

    login_account: Limit
    login_client: Limit
    login_device: Limit
    signups: Limit
    password_resets: Limit
    avatar_uploads: Limit

    def account(self, user_id: int) -> Key:
        """An account's failed-login count, whichever of its login or email was typed."""
        return self.login_account.key(f"user:{user_id}")

    def uploads(self, user_id: int) -> Key:
        """An account's avatar uploads."""
        return self.avatar_uploads.key(f"user:{user_id}")

    def device(self, token_hash: str) -> Key:
        """A device cookie's failed logins (by the hash of its token)."""
        return self.login_device.key(token_hash)

    def of_account(self, user_id: int, devices: Iterable[str]) -> list[Key]:
        """Every count kept for an account and its devices (their tokens' hashes): what
        its deletion clears, so that nothing counted for it outlives it."""
        return [self.account(user_id), self.uploads(user_id), *map(self.device, devices)]

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes) -> Limits:
        """The limits `settings` set, counting under `secret` (Keys.throttle)."""
        window = settings.login_failure_window_seconds
        failed = "Too many failed attempts; try again later"

        def limit(name: str, events: int, window: float, message: str) -> Limit:
            return Limit(name, events, window, message, secret)

        return cls(
            login_account=limit(
                "login_failures_per_account", settings.login_failures_per_account, window, failed
            ),
            login_client=limit(
                "login_failures_per_ip", settings.login_failures_per_ip, window, failed
            ),
            login_device=limit(
                "login_failures_per_device", settings.login_failures_per_device, window, failed
            ),
            signups=limit(
                "signups_per_ip",
                settings.signups_per_ip,
                settings.signup_window_seconds,
                "Too many sign-ups from this address; try again later",
            ),
            password_resets=limit(
                "password_resets_per_ip",
                settings.password_resets_per_ip,
                HOUR,
                "Too many password reset requests from this address; try again later",
            ),
            avatar_uploads=limit(
                "avatar_uploads_per_hour",
                settings.avatar_uploads_per_hour,
                HOUR,
                "Too many avatar uploads; try again later",
            ),
        )


@dataclass(frozen=True, slots=True)
class Taken:
    """The events one `take` counted, so that a success can give them back."""

    ids: tuple[int, ...]


class Counter:
    """The counts of some keys, locked until the write transaction `db` is in ends."""

    def __init__(self, db: AsyncSession, at: float) -> None:
        self.db = db
        self.at = at

    @classmethod
    async def lock(cls, db: AsyncSession, keys: Iterable[Key]) -> Counter:
        connection = await db.connection()
        if connection.dialect.name == "postgresql":
            # One order for everyone: two requests locking overlapping keys never deadlock.
            for lock_id in sorted({key.lock_id for key in keys}):
                await db.exec(select(func.pg_advisory_xact_lock(lock_id)))
        return cls(db, now())

    async def retry_after(self, key: Key) -> int | None:
        """Seconds until `key` may count another event; None when it may now."""
        limit = key.limit
        since = self.at - limit.window
        recent = (col(ThrottleEvent.key) == key.digest) & (col(ThrottleEvent.at) > since)
        count = (await self.db.exec(select(func.count()).where(recent))).one()
        if count < limit.events:
            return None
        # The count drops below the maximum when the `events`-th newest event leaves the window.
        nth_newest = (
            await self.db.exec(
                select(ThrottleEvent.at)
                .where(recent)
                .order_by(col(ThrottleEvent.at).desc())
                .offset(limit.events - 1)
                .limit(1)
            )
        ).one()
        return math.ceil(nth_newest + limit.window - self.at)

    async def check(self, *keys: Key) -> None:
        """Refuse when any of `keys` is at its maximum. The one place a limit refuses."""
        for key in keys:
            retry_after = await self.retry_after(key)
            if retry_after is not None:
                metrics.throttled(key.limit.name)
                raise TooManyRequests(key.limit.message, retry_after, limit=key.limit.name)

    async def record(self, *keys: Key) -> Taken:
        events = [
            ThrottleEvent(key=key.digest, at=self.at, expires_at=self.at + key.limit.window)
            for key in keys
        ]
        self.db.add_all(events)
        # Expired events go as new ones arrive, so the table holds only live windows.
        await self.db.exec(delete(ThrottleEvent).where(col(ThrottleEvent.expires_at) <= self.at))
        await self.db.flush()
        return Taken(tuple(event.id for event in events if event.id is not None))


async def take(database: Database, *keys: Key) -> Taken:
    """Count one event against each of `keys`, or refuse (counting nothing) if any is full."""
    async with database.write() as db:
        return await take_in(db, *keys)


async def take_in(db: AsyncSession, *keys: Key) -> Taken:
    """`take`, inside a write transaction the caller has begun (with `Database.write()`)."""
    counter = await Counter.lock(db, keys)
    await counter.check(*keys)
    return await counter.record(*keys)


async def clear(db: AsyncSession, *keys: Key) -> None:
    digests = [key.digest for key in keys]
    await db.exec(delete(ThrottleEvent).where(col(ThrottleEvent.key).in_(digests)))


async def give_back(db: AsyncSession, taken: Taken) -> None:
    if taken.ids:
        await db.exec(delete(ThrottleEvent).where(col(ThrottleEvent.id).in_(taken.ids)))
