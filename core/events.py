"""The security log: what happened to an account, when, and from where.

An event is written in the same transaction as the change it records (`record` takes that
transaction's session), so the log never shows a change that did not happen, nor misses
one that did. Events older than SECURITY_EVENT_RETENTION_DAYS are purged as new ones are
written, without a job of their own; an account's events go with it (ON DELETE CASCADE).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import exists, insert, literal
from sqlalchemy import select as select_columns
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import Settings
from core.db import now
from core.errors import InvalidInput
from core.models import IP_ADDRESS_MAX, USER_AGENT_MAX, SecurityEvent, User
from core.runtime import Runtime

DAY = 86400
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 200, 50
COLUMNS = ("user_id", "kind", "at", "ip_address", "user_agent")


class Kind(StrEnum):
    # (ruff's S105 takes the PASSWORD_* names for hard-coded passwords.)
    SIGNUP = "SIGNUP"
    LOGIN = "LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGOUT = "LOGOUT"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # noqa: S105
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"  # noqa: S105
    PASSWORD_RESET = "PASSWORD_RESET"  # noqa: S105
    EMAIL_CHANGED = "EMAIL_CHANGED"
    EMAIL_VERIFIED = "EMAIL_VERIFIED"
    SESSION_REVOKED = "SESSION_REVOKED"
    TOTP_ENABLED = "TOTP_ENABLED"
    TOTP_DISABLED = "TOTP_DISABLED"
    RECOVERY_CODE_USED = "RECOVERY_CODE_USED"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, as sessions and events record it."""

    ip_address: str
    user_agent: str

    @classmethod
    def of(cls, client: str, user_agent: str) -> Origin:
        # Cut to the columns' sizes: a client chooses its user agent's length.
        return cls(ip_address=client[:IP_ADDRESS_MAX], user_agent=user_agent[:USER_AGENT_MAX])


@dataclass(frozen=True, slots=True)
class Event:
    kind: Kind
    at: float
    ip_address: str
    user_agent: str


async def record(
    db: AsyncSession, settings: Settings, kind: Kind, *, user_id: int, origin: Origin
) -> None:
    """Add an event to the transaction `db` is in; it commits (or not) with the change.

    Nothing is recorded for an account deleted meanwhile (its log went with it), so a
    request racing a deletion is not turned into an error by its event.
    """
    at = now()
    # sqlmodel's select takes at most four columns; SQLAlchemy's takes any number.
    row = select_columns(
        literal(user_id),
        literal(kind.value),
        literal(at),
        literal(origin.ip_address),
        literal(origin.user_agent),
    ).where(exists().where(col(User.id) == user_id))
    await db.exec(insert(SecurityEvent).from_select(COLUMNS, row))
    cutoff = at - settings.security_event_retention_days * DAY
    await db.exec(delete(SecurityEvent).where(col(SecurityEvent.at) <= cutoff))


async def recent(rt: Runtime, *, user_id: int, limit: int = LIMIT_DEFAULT) -> list[Event]:
    """The account's events, newest first."""
    if not LIMIT_MIN <= limit <= LIMIT_MAX:
        raise InvalidInput("limit", f"must be an integer from {LIMIT_MIN} to {LIMIT_MAX}")
    async with rt.db.read() as db:
        rows = (
            await db.exec(
                select(SecurityEvent)
                .where(col(SecurityEvent.user_id) == user_id)
                .order_by(col(SecurityEvent.at).desc(), col(SecurityEvent.id).desc())
                .limit(limit)
            )
        ).all()
    return [
        Event(kind=Kind(row.kind), at=row.at, ip_address=row.ip_address, user_agent=row.user_agent)
        for row in rows
    ]
