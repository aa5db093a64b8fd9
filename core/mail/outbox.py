"""The transactional outbox: a message is a row written in the transaction of the change
that causes it, so a change that rolls back sends nothing and a committed one is never lost.

A row's body (the text, which may hold a link with a token) is stored sealed with a key
derived from SECRET_KEY (core/keys.py), never in the clear. The sender (sender.py) claims
due rows, opens and delivers them, and marks them sent (erasing the body). Rows stay a
while after that, without their body: they are what the per-account hourly limit counts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.headerregistry import Address
from typing import Any

from sqlalchemy import event
from sqlmodel import col, delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import request_id
from core.db import Database
from core.keys import Keys
from core.mail.message import new_message_id
from core.mail.templates import Rendered
from core.models import OutboxMessage

# States of a row.
WAITING = "waiting"  # to be sent once `next_attempt_at` has passed (or is being sent)
SENT = "sent"
FAILED = "failed"  # given up after MAX_AGE, or refused for good; logged
# A row written only so that a request does the same work whether or not it sends anything
# (a reset request for an unknown account): no recipient, no body. The sender claims and
# settles it like any other, without handing anything over, and marks it void.
VOID = "void"

# Kinds: the hourly limit counts verification and reset messages; notices always go.
VERIFY = "verify"
RESET = "reset"
NOTICE = "notice"
LIMITED_KINDS = (VERIFY, RESET)

# Rows of sent (and void) messages stay this long: longer than the hour the limit counts.
KEEP_SENT_SECONDS = 24 * 3600
KEEP_FAILED_SECONDS = 7 * 24 * 3600


class Outbox:
    """This process's side of the outbox: writes rows into a caller's transaction, and
    wakes the sender once that transaction commits (the sender also polls, for messages
    other instances wrote)."""

    def __init__(self, sender: Address, keys: Keys) -> None:
        self.sender = sender
        self.keys = keys
        self.wakeup = asyncio.Event()

    def add(
        self,
        db: AsyncSession,
        *,
        user_id: int | None,
        kind: str,
        recipient: str,
        name: str,
        message: Rendered,
        at: float,
    ) -> None:
        """Write a message into the caller's transaction; an empty `recipient` makes it a
        stand-in that is settled as VOID and never sent."""
        message_id = new_message_id(self.sender)
        # Sealed for a stand-in too, so a request does the same work either way.
        body = self.keys.seal_mail(message.body, message_id=message_id)
        db.add(
            OutboxMessage(
                user_id=user_id,
                kind=kind,
                state=WAITING,
                recipient=recipient,
                display_name=name[:129],
                subject=message.subject,
                message_id=message_id,
                body=body if recipient else None,
                created_at=at,
                next_attempt_at=at,
                request_id=request_id.current(),
            )
        )
        self._wake_after_commit(db)

    def _wake_after_commit(self, db: AsyncSession) -> None:
        session = db.sync_session
        if session.info.get("outbox_wake"):
            return
        session.info["outbox_wake"] = True

        def committed(_: Any) -> None:
            self.wakeup.set()

        event.listen(session, "after_commit", committed, once=True)


async def recent(db: AsyncSession, *, user_id: int, since: float) -> tuple[int, float | None]:
    """How many verification and reset messages the account was sent since `since`, and
    when the oldest of them was written (for Retry-After)."""
    count, oldest = (
        await db.exec(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                col(OutboxMessage.user_id) == user_id,
                col(OutboxMessage.kind).in_(LIMITED_KINDS),
                col(OutboxMessage.created_at) > since,
            )
        )
    ).one()
    return int(count), oldest


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    recipient: str
    display_name: str
    subject: str
    message_id: str
    body: str  # sealed: Outbox.keys.unseal_mail opens it
    created_at: float
    attempts: int
    request_id: str | None


DUE_SQL = "SELECT 1 AS due FROM outbox WHERE state = 'waiting' AND next_attempt_at <= :now LIMIT 1"


async def any_due(database: Database, *, at: float) -> bool:
    """A lock-free look before claiming: most polls find nothing to do."""
    return await database.fetch_one(DUE_SQL, now=at) is not None


async def claim(database: Database, *, at: float, lease: float, limit: int) -> list[Claimed]:
    """Take up to `limit` due messages for this process for `lease` seconds.

    PostgreSQL: rows locked by another instance's claim are skipped (FOR UPDATE SKIP
    LOCKED); SQLite: the claim holds the database's write lock (BEGIN IMMEDIATE). Either
    way a message is claimed by one instance at a time; if that instance dies before
    marking it, the lease runs out and the message is sent again (at least once).
    """
    async with database.write() as db:
        rows = (
            await db.exec(
                select(OutboxMessage)
                .where(
                    col(OutboxMessage.state) == WAITING, col(OutboxMessage.next_attempt_at) <= at
                )
                .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        claimed = []
        for row in rows:
            assert row.id is not None
            row.next_attempt_at = at + lease
            row.attempts += 1
            claimed.append(
                Claimed(
                    id=row.id,
                    recipient=row.recipient,
                    display_name=row.display_name,
                    subject=row.subject,
                    message_id=row.message_id,
                    body=row.body or "",
                    created_at=row.created_at,
                    attempts=row.attempts,
                    request_id=row.request_id,
                )
            )
    return claimed


async def mark_sent(database: Database, ids: list[int], *, void: list[int], at: float) -> None:
    """Record messages handed over (their body erased) and stand-ins settled, in one go."""
    if ids or void:
        async with database.write() as db:
            for state, chosen in ((SENT, ids), (VOID, void)):
                if chosen:
                    await db.exec(
                        update(OutboxMessage)
                        .where(col(OutboxMessage.id).in_(chosen))
                        .values(state=state, body=None, sent_at=at)
                    )


async def retry_at(database: Database, retries: dict[int, float]) -> None:
    """Put messages back in the queue, each due again at its time."""
    if retries:
        async with database.write() as db:
            for message_id, due in retries.items():
                await db.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == message_id)
                    .values(next_attempt_at=due)
                )


async def mark_failed(database: Database, ids: list[int]) -> None:
    if ids:
        async with database.write() as db:
            await db.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .values(state=FAILED, body=None)
            )


async def purge(database: Database, *, at: float) -> None:
    """Forget delivered messages after a day and failed ones after a week."""
    async with database.write() as db:
        await db.exec(
            delete(OutboxMessage).where(
                col(OutboxMessage.state).in_((SENT, VOID)),
                col(OutboxMessage.created_at) < at - KEEP_SENT_SECONDS,
            )
        )
        await db.exec(
            delete(OutboxMessage).where(
                col(OutboxMessage.state) == FAILED,
                col(OutboxMessage.created_at) < at - KEEP_FAILED_SECONDS,
            )
        )


COUNTS_SQL = (
    "SELECT"
    " (SELECT count(*) FROM outbox WHERE state = 'waiting') AS waiting,"
    " (SELECT count(*) FROM outbox WHERE state = 'failed') AS failed"
)


async def counts(database: Database) -> dict[str, int]:
    """Messages waiting to be sent and messages given up on, for the metrics gauge
    `accounts_outbox_messages{state}`: two index-only counts."""
    row = await database.fetch_one(COUNTS_SQL)
    assert row is not None
    return {WAITING: int(row["waiting"]), FAILED: int(row["failed"])}
