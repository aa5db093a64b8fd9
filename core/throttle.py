"""Failed-login accounting in the database, so every instance sees the same counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import TooManyRequests
from core.models import LoginFailure


@dataclass(frozen=True, slots=True)
class Limits:
    per_account: int
    per_client: int
    window: float


async def check(db: AsyncSession, limits: Limits, *, account: str, client: str, at: float) -> None:
    """Refuse the attempt while the account or the client is over its limit."""
    since = at - limits.window
    for column, value, limit in (
        (LoginFailure.account, account, limits.per_account),
        (LoginFailure.client, client, limits.per_client),
    ):
        count, oldest = (
            await db.exec(
                select(func.count(), func.min(LoginFailure.at)).where(
                    column == value, col(LoginFailure.at) > since
                )
            )
        ).one()
        if count >= limit:
            retry_after = math.ceil(oldest + limits.window - at)
            raise TooManyRequests("Too many failed attempts; try again later", retry_after)


async def record_failure(db: AsyncSession, *, account: str, client: str, at: float) -> None:
    db.add(LoginFailure(account=account, client=client, at=at))


async def forgive(db: AsyncSession, *, account: str, client: str, at: float) -> None:
    """Take back one attempt counted in advance that turned out not to be a failure."""
    one = (
        select(LoginFailure.id)
        .where(
            col(LoginFailure.account) == account,
            col(LoginFailure.client) == client,
            col(LoginFailure.at) == at,
        )
        .limit(1)
        .scalar_subquery()
    )
    await db.exec(delete(LoginFailure).where(col(LoginFailure.id) == one))


async def clear(db: AsyncSession, *, account: str) -> None:
    await db.exec(delete(LoginFailure).where(col(LoginFailure.account) == account))


async def purge(db: AsyncSession, limits: Limits, *, at: float) -> None:
    await db.exec(delete(LoginFailure).where(col(LoginFailure.at) <= at - limits.window))
