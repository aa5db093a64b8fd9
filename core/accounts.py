"""Accounts: sign-up, login, profile, password and deletion. Every rule lives here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import events, rules, sessions, throttle, totp
from core.db import now
from core.errors import Conflict, Forbidden, NotAuthenticated, TotpRequired
from core.events import Origin
from core.models import Avatar, User
from core.runtime import Runtime
from core.sessions import NewSession, Principal

WRONG_CREDENTIALS = "Wrong login or password"
TOTP_NEEDED = "Enter the code from your authenticator app (or a recovery code)"


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    email: str
    firstname: str
    lastname: str
    avatar_key: str | None


async def signup(
    rt: Runtime, *, login: str, password: str, email: str, client: str, user_agent: str
) -> tuple[Profile, NewSession]:
    """Create an account and its first session."""
    origin = Origin.of(client, user_agent)
    login = rules.login(login)
    email = rules.email(email)
    rules.password(password, login=login, email=email)
    hashed = await rt.passwords.hash(password)
    try:
        async with rt.db.write() as db:
            user = User(
                login=login,
                login_key=rules.key(login),
                email=email,
                email_key=rules.key(email),
                password_hash=hashed,
                created_at=now(),
            )
            db.add(user)
            await db.flush()
            assert user.id is not None
            session = await sessions.start(
                db, user_id=user.id, ttl=rt.settings.session_ttl_seconds, origin=origin
            )
            await events.record(db, rt.settings, events.Kind.SIGNUP, user_id=user.id, origin=origin)
            profile = await _profile(db, user.id)
    except IntegrityError as exc:
        raise _conflict(exc) from None
    return profile, session


async def authenticate(
    rt: Runtime,
    *,
    login: str,
    password: str,
    client: str,
    user_agent: str,
    otp: str | None = None,
) -> tuple[Profile, NewSession]:
    """Check a login (or email) and password, then the second factor if the account has
    one, and start a new session.

    An unknown login costs the same work and gets the same answer as a wrong password.
    """
    origin = Origin.of(client, user_agent)
    key = rules.lookup_key(login)
    user = None
    if key is not None:
        column = User.email_key if "@" in key else User.login_key
        async with rt.db.read() as db:
            user = (await db.exec(select(User).where(column == key))).first()
    account = f"user:{user.id}" if user else f"name:{key or '?'}"
    counted_at = await _count_attempt(rt, account=account, client=client)
    if user is None:
        await rt.passwords.verify_dummy(password)
        raise NotAuthenticated(WRONG_CREDENTIALS)
    assert user.id is not None
    if not await rt.passwords.verify(password, user.password_hash):
        # The security log of the account the login named shows the failure.
        async with rt.db.write() as db:
            await events.record(
                db, rt.settings, events.Kind.LOGIN_FAILED, user_id=user.id, origin=origin
            )
        raise NotAuthenticated(WRONG_CREDENTIALS)
    rehashed = None
    if rt.passwords.needs_rehash(user.password_hash):
        rehashed = await rt.passwords.hash(password)
    try:
        async with rt.db.write() as db:
            # The second factor, checked after the password, in the session's transaction.
            second = await totp.check_login(db, rt.keys, user_id=user.id, otp=otp, at=now())
            if second is totp.Check.MISSING:
                # Asking for the code is not a failed attempt: take back the one counted.
                await throttle.forgive(db, account=account, client=client, at=counted_at)
            elif second is totp.Check.WRONG:
                # A wrong code is: the attempt counted in advance stays counted.
                await events.record(
                    db, rt.settings, events.Kind.LOGIN_FAILED, user_id=user.id, origin=origin
                )
            else:
                await throttle.clear(db, account=account)
                if rehashed:
                    await db.exec(
                        update(User).where(col(User.id) == user.id).values(password_hash=rehashed)
                    )
                session = await sessions.start(
                    db, user_id=user.id, ttl=rt.settings.session_ttl_seconds, origin=origin
                )
                # The events of a login commit with its session.
                await events.record(
                    db, rt.settings, events.Kind.LOGIN, user_id=user.id, origin=origin
                )
                if second is totp.Check.RECOVERY_CODE_USED:
                    await events.record(
                        db,
                        rt.settings,
                        events.Kind.RECOVERY_CODE_USED,
                        user_id=user.id,
                        origin=origin,
                    )
                profile = await _profile(db, user.id)
    except IntegrityError:
        # The account was deleted between the password check and now.
        raise NotAuthenticated(WRONG_CREDENTIALS) from None
    if not second.passed:
        # The one place a login is refused for want of a second factor.
        raise TotpRequired(TOTP_NEEDED)
    return profile, session


async def logout(rt: Runtime, principal: Principal, *, client: str, user_agent: str) -> None:
    async with rt.db.write() as db:
        await sessions.end(db, principal)
        await events.record(
            db,
            rt.settings,
            events.Kind.LOGOUT,
            user_id=principal.user_id,
            origin=Origin.of(client, user_agent),
        )


PROFILE_SQL = (
    "SELECT u.login AS username, u.email, u.firstname, u.lastname, a.key AS avatar_key"
    " FROM users u LEFT JOIN avatars a ON a.user_id = u.id WHERE u.id = :user_id"
)


async def get_profile(rt: Runtime, principal: Principal) -> Profile:
    row = await rt.db.fetch_one(PROFILE_SQL, user_id=principal.user_id)
    if row is None:
        raise NotAuthenticated("You must be logged in")
    return Profile(**row)


async def update_profile(
    rt: Runtime,
    principal: Principal,
    *,
    username: str | None = None,
    email: str | None = None,
    firstname: str | None = None,
    lastname: str | None = None,
    client: str,
    user_agent: str,
) -> Profile:
    """Change the given fields; absent (None) fields stay as they are."""
    values: dict[str, str] = {}
    if username is not None:
        values |= {"login": rules.login(username, "username"), "login_key": rules.key(username)}
    if email is not None:
        email = rules.email(email)
        values |= {"email": email, "email_key": rules.key(email)}
    if firstname is not None:
        values["firstname"] = rules.name(firstname, "firstname")
    if lastname is not None:
        values["lastname"] = rules.name(lastname, "lastname")
    try:
        async with rt.db.write() as db:
            if "email_key" in values:
                before = (
                    await db.exec(select(User.email_key).where(col(User.id) == principal.user_id))
                ).first()
                if before is not None and before != values["email_key"]:
                    await events.record(
                        db,
                        rt.settings,
                        events.Kind.EMAIL_CHANGED,
                        user_id=principal.user_id,
                        origin=Origin.of(client, user_agent),
                    )
            if values:
                await db.exec(
                    update(User).where(col(User.id) == principal.user_id).values(**values)
                )
            return await _profile(db, principal.user_id)
    except IntegrityError as exc:
        raise _conflict(exc) from None


async def change_password(
    rt: Runtime,
    principal: Principal,
    *,
    old_password: str,
    new_password: str,
    client: str,
    user_agent: str,
) -> NewSession:
    """Replace the password after checking the old one.

    Every session of the user ends, and the caller gets a new one in place of its own.
    """
    async with rt.db.read() as db:
        user = await db.get(User, principal.user_id)
    if user is None:
        raise NotAuthenticated("You must be logged in")
    rules.password(new_password, login=user.login, email=user.email, field="new password")
    account = f"user:{principal.user_id}"
    await _count_attempt(rt, account=account, client=client)
    if not await rt.passwords.verify(old_password, user.password_hash):
        raise Forbidden("The old password is wrong")
    hashed = await rt.passwords.hash(new_password)
    try:
        async with rt.db.write() as db:
            await throttle.clear(db, account=account)
            await db.exec(
                update(User).where(col(User.id) == principal.user_id).values(password_hash=hashed)
            )
            await sessions.end_all(db, principal.user_id)
            origin = Origin.of(client, user_agent)
            # Only the change itself is logged, not the sessions it ended.
            await events.record(
                db,
                rt.settings,
                events.Kind.PASSWORD_CHANGED,
                user_id=principal.user_id,
                origin=origin,
            )
            return await sessions.start(
                db, user_id=principal.user_id, ttl=rt.settings.session_ttl_seconds, origin=origin
            )
    except IntegrityError:
        # The account was deleted while the old password was being checked.
        raise NotAuthenticated("You must be logged in") from None


async def disable_totp(
    rt: Runtime, principal: Principal, *, password: str, client: str, user_agent: str
) -> None:
    """Turn the second factor off after checking the password (counted as a login is)."""
    async with rt.db.read() as db:
        user = await db.get(User, principal.user_id)
    if user is None:
        raise NotAuthenticated("You must be logged in")
    account = f"user:{principal.user_id}"
    await _count_attempt(rt, account=account, client=client)
    if not await rt.passwords.verify(password, user.password_hash):
        raise Forbidden("The password is wrong")
    async with rt.db.write() as db:
        await throttle.clear(db, account=account)
        if await totp.remove(db, principal.user_id):
            await events.record(
                db,
                rt.settings,
                events.Kind.TOTP_DISABLED,
                user_id=principal.user_id,
                origin=Origin.of(client, user_agent),
            )


async def delete_account(rt: Runtime, principal: Principal) -> None:
    """Remove the user; their sessions and avatar go with them (ON DELETE CASCADE)."""
    async with rt.db.write() as db:
        await db.exec(delete(User).where(col(User.id) == principal.user_id))


async def _count_attempt(rt: Runtime, *, account: str, client: str) -> float:
    # The attempt is counted as a failure before the password is checked, and the count
    # cleared on success: parallel guesses are then bounded by the limit too. Returns the
    # time it was counted at, which names it for `throttle.forgive`.
    at = now()
    async with rt.db.write() as db:
        await throttle.check(db, rt.limits, account=account, client=client, at=at)
        await throttle.record_failure(db, account=account, client=client, at=at)
        await throttle.purge(db, rt.limits, at=at)
    return at


async def _profile(db: AsyncSession, user_id: int) -> Profile:
    row = (
        await db.exec(
            select(User, col(Avatar.key))
            .outerjoin(Avatar, col(Avatar.user_id) == col(User.id))
            .where(col(User.id) == user_id)
        )
    ).first()
    if row is None:
        raise NotAuthenticated("You must be logged in")
    user, avatar_key = row
    return Profile(
        username=user.login,
        email=user.email,
        firstname=user.firstname,
        lastname=user.lastname,
        avatar_key=avatar_key,
    )


def _conflict(exc: IntegrityError) -> Conflict:
    detail = str(exc.orig)
    if "email_key" in detail:
        return Conflict("email: this address is already taken")
    if "login_key" in detail:
        return Conflict("login: this name is already taken")
    raise exc
