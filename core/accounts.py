"""Accounts: sign-up, login, profile, password and deletion. Every rule lives here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import email_flows, rules, sessions, throttle
from core.db import now
from core.errors import Conflict, Forbidden, NotAuthenticated
from core.models import Avatar, User
from core.runtime import Runtime
from core.sessions import NewSession, Principal

WRONG_CREDENTIALS = "Wrong login or password"


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    email: str
    firstname: str
    lastname: str
    avatar_key: str | None


async def signup(
    rt: Runtime, *, login: str, password: str, email: str
) -> tuple[Profile, NewSession]:
    """Create an account and its first session."""
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
            # Email: a verification message, in this transaction (core/email_flows.py).
            await email_flows.on_signup(rt, db, user)
            session = await sessions.start(db, user_id=user.id, ttl=rt.settings.session_ttl_seconds)
            profile = await _profile(db, user.id)
    except IntegrityError as exc:
        raise _conflict(exc) from None
    return profile, session


async def authenticate(
    rt: Runtime, *, login: str, password: str, client: str
) -> tuple[Profile, NewSession]:
    """Check a login (or email) and password and start a new session.

    An unknown login costs the same work and gets the same answer as a wrong password.
    """
    key = rules.lookup_key(login)
    user = None
    if key is not None:
        column = User.email_key if "@" in key else User.login_key
        async with rt.db.read() as db:
            user = (await db.exec(select(User).where(column == key))).first()
    account = f"user:{user.id}" if user else f"name:{key or '?'}"
    await _count_attempt(rt, account=account, client=client)
    if user is None:
        await rt.passwords.verify_dummy(password)
        raise NotAuthenticated(WRONG_CREDENTIALS)
    if not await rt.passwords.verify(password, user.password_hash):
        raise NotAuthenticated(WRONG_CREDENTIALS)
    assert user.id is not None
    rehashed = None
    if rt.passwords.needs_rehash(user.password_hash):
        rehashed = await rt.passwords.hash(password)
    try:
        async with rt.db.write() as db:
            await throttle.clear(db, account=account)
            if rehashed:
                await db.exec(
                    update(User).where(col(User.id) == user.id).values(password_hash=rehashed)
                )
            session = await sessions.start(db, user_id=user.id, ttl=rt.settings.session_ttl_seconds)
            profile = await _profile(db, user.id)
    except IntegrityError:
        # The account was deleted between the password check and now.
        raise NotAuthenticated(WRONG_CREDENTIALS) from None
    return profile, session


async def logout(rt: Runtime, principal: Principal) -> None:
    async with rt.db.write() as db:
        await sessions.end(db, principal)


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
            # Email: a new address is verified anew, the old one told (core/email_flows.py).
            old = (
                None if email is None else await email_flows.current_address(db, principal.user_id)
            )
            if values:
                await db.exec(
                    update(User).where(col(User.id) == principal.user_id).values(**values)
                )
            if old is not None:
                await email_flows.on_email_change(rt, db, user_id=principal.user_id, old=old)
            return await _profile(db, principal.user_id)
    except IntegrityError as exc:
        raise _conflict(exc) from None


async def change_password(
    rt: Runtime, principal: Principal, *, old_password: str, new_password: str, client: str
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
            # Email: a notice to the account's address (core/email_flows.py).
            await email_flows.on_password_changed(rt, db, principal.user_id)
            return await sessions.start(
                db, user_id=principal.user_id, ttl=rt.settings.session_ttl_seconds
            )
    except IntegrityError:
        # The account was deleted while the old password was being checked.
        raise NotAuthenticated("You must be logged in") from None


async def delete_account(rt: Runtime, principal: Principal) -> None:
    """Remove the user; their sessions and avatar go with them (ON DELETE CASCADE)."""
    async with rt.db.write() as db:
        await db.exec(delete(User).where(col(User.id) == principal.user_id))


async def _count_attempt(rt: Runtime, *, account: str, client: str) -> None:
    # The attempt is counted as a failure before the password is checked, and the count
    # cleared on success: parallel guesses are then bounded by the limit too.
    at = now()
    async with rt.db.write() as db:
        await throttle.check(db, rt.limits, account=account, client=client, at=at)
        await throttle.record_failure(db, account=account, client=client, at=at)
        await throttle.purge(db, rt.limits, at=at)


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
