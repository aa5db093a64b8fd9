"""Email verification, password reset and security notices. Every rule of them lives here.

Messages go through the outbox (core/mail/outbox.py) in the same transaction as the change
that causes them. Tokens are 256-bit random strings; only their SHA-256 is stored, bound to
one kind (a verification token cannot reset a password), single use, expiring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import events, rules, sessions, throttle
from core.db import now
from core.errors import InvalidInput, NotAuthenticated, TooManyRequests
from core.events import Origin
from core.mail import outbox, templates
from core.models import EmailToken, User
from core.runtime import Runtime
from core.security import new_session_token, token_digest
from core.sessions import Principal

VERIFY, RESET = outbox.VERIFY, outbox.RESET
HOUR = 3600.0
# One answer for every token that cannot be used (unknown, used, expired, another kind),
# so the answer tells nothing about which.
UNUSABLE_LINK = "this link is invalid or has expired; ask for a new one"


@dataclass(frozen=True, slots=True)
class AccountStatus:
    email: str
    email_verified: bool
    totp_enabled: bool
    created_at: datetime


# `0 AS totp_enabled`: TOTP is the `sessions` feature's; until its column lands no account
# has a second factor. This query is the one place to change then.
ACCOUNT_SQL = (
    "SELECT u.email, u.email_verified, u.created_at, t.enabled_at IS NOT NULL AS totp_enabled"
    " FROM users u LEFT JOIN totp_secrets t ON t.user_id = u.id WHERE u.id = :user_id"
)


async def account_status(rt: Runtime, principal: Principal) -> AccountStatus:
    """What `GET /account` and `me { emailVerified totpEnabled createdAt }` show."""
    row = await rt.db.fetch_one(ACCOUNT_SQL, user_id=principal.user_id)
    if row is None:
        raise NotAuthenticated("You must be logged in")
    return AccountStatus(
        email=row["email"],
        email_verified=bool(row["email_verified"]),
        totp_enabled=bool(row["totp_enabled"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
    )


# --- Called inside the account services' own transactions (core/accounts.py) ----------


async def on_signup(rt: Runtime, db: AsyncSession, user: User) -> None:
    """A new account: a verification message to its address."""
    _verification(rt, db, user, at=now())


@dataclass(frozen=True, slots=True)
class Address:
    email: str
    email_key: str


async def current_address(db: AsyncSession, user_id: int) -> Address | None:
    """The account's address before a profile update, to tell whether it changed."""
    user = await db.get(User, user_id)
    return None if user is None else Address(user.email, user.email_key)


async def on_email_change(
    rt: Runtime, db: AsyncSession, *, user_id: int, old: Address, origin: Origin
) -> None:
    """After a profile update: when the address changed (beyond letter case), the account
    becomes unverified, verification and reset links sent to the old address stop working,
    the old address is told, the security log records it, and the new address gets a
    verification message (unless over the hourly limit; the user can ask again later)."""
    user = await db.get(User, user_id, populate_existing=True)
    if user is None or user.email_key == old.email_key:
        return
    await events.record(db, rt.settings, events.Kind.EMAIL_CHANGED, user_id=user_id, origin=origin)
    at = now()
    await db.exec(update(User).where(col(User.id) == user_id).values(email_verified=False))
    # Every outstanding link was sent to the old address (changing back does not revive
    # them either).
    await db.exec(delete(EmailToken).where(col(EmailToken.user_id) == user_id))
    notice = templates.render(
        "email_changed", login=user.login, old_email=old.email, new_email=user.email
    )
    rt.outbox.add(
        db,
        user_id=user_id,
        kind=outbox.NOTICE,
        recipient=old.email,
        name=_name(user),
        message=notice,
        at=at,
    )
    if await _under_limit(rt, db, user_id, at):
        _verification(rt, db, user, at=at)


async def on_password_changed(rt: Runtime, db: AsyncSession, user_id: int) -> None:
    """The account's outstanding reset links stop working (a link asked for before the
    change must not undo it), and its address is told the password was changed."""
    await _spend_resets(db, user_id)
    user = await db.get(User, user_id)
    if user is not None:
        _notice(rt, db, user, "password_changed")


# --- The flows' own services ------------------------------------------------------------


async def send_verification(rt: Runtime, principal: Principal) -> None:
    """Send a new verification message, unless the address is already verified.

    Over EMAILS_PER_ACCOUNT_PER_HOUR: TooManyRequests.
    """
    at = now()
    async with rt.db.write() as db:
        user = (
            await db.exec(select(User).where(col(User.id) == principal.user_id).with_for_update())
        ).first()
        if user is None:
            raise NotAuthenticated("You must be logged in")
        if user.email_verified:
            return
        count, oldest = await outbox.recent(db, user_id=principal.user_id, since=at - HOUR)
        if count >= rt.settings.emails_per_account_per_hour:
            retry_after = math.ceil((oldest or at) + HOUR - at)
            raise TooManyRequests(
                "Too many emails sent to this account; try again later", retry_after
            )
        _verification(rt, db, user, at=at)


async def request_password_reset(rt: Runtime, *, login: str, client: str, user_agent: str) -> None:
    """Send a reset message to the account a login or email names, if there is one and it
    is under EMAILS_PER_ACCOUNT_PER_HOUR.

    The answer is the same either way, and so is the work: the same lookup, the same
    rendering, the same two rows written in one transaction, and the same settling of the
    message row by the sender. Without an account to send to, the token row names no
    account (it can never be used) and the message row no recipient (it is never sent).
    """
    await throttle.take(rt.db, rt.limits.password_resets.for_client(client))
    key = rules.lookup_key(login) or ""
    column = User.email_key if "@" in key else User.login_key
    token = new_session_token()
    at = now()
    async with rt.db.write() as db:
        user = (await db.exec(select(User).where(column == key).with_for_update())).first()
        count, _ = await outbox.recent(db, user_id=(user.id or 0) if user else 0, since=at - HOUR)
        # Who the message goes to: nobody without an account, or over its hourly limit.
        # Nothing the client typed is stored for a request that sends nothing.
        to = user if user is not None and count < rt.settings.emails_per_account_per_hour else None
        message = templates.render(
            "reset",
            login=user.login if user else key,
            link=_link(rt, "reset-password", token),
            ttl=templates.duration(rt.settings.password_reset_ttl_seconds),
        )
        db.add(
            EmailToken(
                token_hash=token_digest(token),
                user_id=to.id if to else None,
                kind=RESET,
                email_key=to.email_key if to else "",
                created_at=at,
                expires_at=at + rt.settings.password_reset_ttl_seconds,
            )
        )
        rt.outbox.add(
            db,
            user_id=to.id if to else None,
            kind=RESET,
            recipient=to.email if to else "",
            name=_name(to) if to else "",
            message=message,
            at=at,
        )
        # Recorded on the account the request named; for no account the same statement
        # runs and records nothing (the same work either way).
        await events.record(
            db,
            rt.settings,
            events.Kind.PASSWORD_RESET_REQUESTED,
            user_id=(user.id or 0) if user else 0,
            origin=Origin.of(client, user_agent),
        )
        await _purge_tokens(db, at)


LINK_SQL = (
    "SELECT t.user_id, t.email_key AS sent_to, u.login, u.email, u.email_key"
    " FROM email_tokens t JOIN users u ON u.id = t.user_id"
    " WHERE t.token_hash = :token_hash AND t.kind = :kind AND t.expires_at > :now"
)


async def reset_password(
    rt: Runtime, *, token: str, new_password: str, client: str, user_agent: str
) -> None:
    """Set a new password with a reset token.

    The token works only while the account's address is the one it was sent to. Every
    reset token of the account is spent, every session ends, the failed-login count is
    cleared, and the address is marked verified (the token proved it is read). No session
    starts. A password the rules refuse leaves the token usable.
    """
    digest = token_digest(token)
    row = await rt.db.fetch_one(LINK_SQL, token_hash=digest, kind=RESET, now=now())
    if row is None or row["sent_to"] != row["email_key"]:
        raise InvalidInput("token", UNUSABLE_LINK)
    rules.password(new_password, login=row["login"], email=row["email"], field="new password")
    hashed = await rt.passwords.hash(new_password, client=client)
    user_id: int = row["user_id"]
    async with rt.db.write() as db:
        await _spend(db, digest, RESET, user_id)
        await _spend_resets(db, user_id)
        changed = await db.exec(
            update(User)
            .where(col(User.id) == user_id, col(User.email_key) == row["sent_to"])
            .values(password_hash=hashed, email_verified=True)
        )
        if changed.rowcount != 1:
            raise InvalidInput("token", UNUSABLE_LINK)  # the address changed meanwhile
        await sessions.end_all(db, user_id)
        await throttle.clear(db, rt.limits.account(user_id))
        # Only the reset is logged, not the sessions it ended.
        origin = Origin.of(client, user_agent)
        await events.record(
            db, rt.settings, events.Kind.PASSWORD_RESET, user_id=user_id, origin=origin
        )
        user = await db.get(User, user_id, populate_existing=True)
        assert user is not None
        _notice(rt, db, user, "password_reset")


async def verify_email(rt: Runtime, *, token: str, client: str, user_agent: str) -> None:
    """Mark the address verified with a verification token sent to it."""
    digest = token_digest(token)
    row = await rt.db.fetch_one(LINK_SQL, token_hash=digest, kind=VERIFY, now=now())
    if row is None or row["sent_to"] != row["email_key"]:
        raise InvalidInput("token", UNUSABLE_LINK)
    user_id: int = row["user_id"]
    async with rt.db.write() as db:
        await _spend(db, digest, VERIFY, user_id)
        # The address is verified: its other verification links have nothing left to do.
        await db.exec(
            delete(EmailToken).where(
                col(EmailToken.user_id) == user_id, col(EmailToken.kind) == VERIFY
            )
        )
        changed = await db.exec(
            update(User)
            .where(col(User.id) == user_id, col(User.email_key) == row["sent_to"])
            .values(email_verified=True)
        )
        if changed.rowcount != 1:
            raise InvalidInput("token", UNUSABLE_LINK)  # the address changed meanwhile
        origin = Origin.of(client, user_agent)
        await events.record(
            db, rt.settings, events.Kind.EMAIL_VERIFIED, user_id=user_id, origin=origin
        )


# --- Helpers ----------------------------------------------------------------------------


async def _spend(db: AsyncSession, digest: str, kind: str, user_id: int) -> None:
    """Delete the token, or refuse it if another request spent it first (single use)."""
    spent = await db.exec(
        delete(EmailToken).where(
            col(EmailToken.token_hash) == digest,
            col(EmailToken.kind) == kind,
            col(EmailToken.user_id) == user_id,
            col(EmailToken.expires_at) > now(),
        )
    )
    if spent.rowcount != 1:
        raise InvalidInput("token", UNUSABLE_LINK)


async def _spend_resets(db: AsyncSession, user_id: int) -> None:
    await db.exec(
        delete(EmailToken).where(col(EmailToken.user_id) == user_id, col(EmailToken.kind) == RESET)
    )


def _verification(rt: Runtime, db: AsyncSession, user: User, *, at: float) -> None:
    assert user.id is not None
    token = new_session_token()
    db.add(
        EmailToken(
            token_hash=token_digest(token),
            user_id=user.id,
            kind=VERIFY,
            email_key=user.email_key,
            created_at=at,
            expires_at=at + rt.settings.email_token_ttl_seconds,
        )
    )
    message = templates.render(
        "verify",
        login=user.login,
        email=user.email,
        link=_link(rt, "verify-email", token),
        ttl=templates.duration(rt.settings.email_token_ttl_seconds),
    )
    rt.outbox.add(
        db,
        user_id=user.id,
        kind=VERIFY,
        recipient=user.email,
        name=_name(user),
        message=message,
        at=at,
    )


def _notice(rt: Runtime, db: AsyncSession, user: User, template: str) -> None:
    rt.outbox.add(
        db,
        user_id=user.id,
        kind=outbox.NOTICE,
        recipient=user.email,
        name=_name(user),
        message=templates.render(template, login=user.login),
        at=now(),
    )


async def _under_limit(rt: Runtime, db: AsyncSession, user_id: int, at: float) -> bool:
    count, _ = await outbox.recent(db, user_id=user_id, since=at - HOUR)
    return count < rt.settings.emails_per_account_per_hour


async def _purge_tokens(db: AsyncSession, at: float) -> None:
    # Expired tokens go as new ones arrive, as sessions do: no separate job.
    await db.exec(delete(EmailToken).where(col(EmailToken.expires_at) <= at))


def _link(rt: Runtime, page: str, token: str) -> str:
    return f"{rt.settings.app_base_url}/{page}?token={token}"


def _name(user: User) -> str:
    return f"{user.firstname} {user.lastname}".strip()
