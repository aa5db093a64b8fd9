"""Accounts: sign-up, login, profile, password and deletion. Every rule lives here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import devices, email_flows, events, metrics, rules, sessions, throttle, totp
from core.db import Database, now
from core.devices import NewDevice
from core.errors import Conflict, Forbidden, NotAuthenticated, TotpRequired
from core.events import Origin
from core.models import Avatar, Device, User
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


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A successful signup or login: the profile, and the two cookies to set."""

    profile: Profile
    session: NewSession
    device: NewDevice


async def signup(
    rt: Runtime,
    *,
    login: str,
    password: str,
    email: str,
    client: str,
    user_agent: str,
    replacing: str | None = None,
) -> SignedIn:
    """Create an account and its first session.

    Sign-ups are limited per client address before the password is hashed. `replacing` is
    the session token the request carried: that session ends as the new one starts.
    """
    origin = Origin.of(client, user_agent)
    login = rules.login(login)
    email = rules.email(email)
    rules.password(password, login=login, email=email)
    await throttle.take(rt.db, rt.limits.signups.for_client(client))
    hashed = await rt.passwords.hash(password, client=client)
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
            await events.record(db, rt.settings, events.Kind.SIGNUP, user_id=user.id, origin=origin)
            return await _sign_in(db, rt, user.id, replacing=replacing, device=None, origin=origin)
    except IntegrityError as exc:
        raise _conflict(exc) from None


@metrics.counts_logins
async def authenticate(
    rt: Runtime,
    *,
    login: str,
    password: str,
    client: str,
    user_agent: str,
    otp: str | None = None,
    device: str | None = None,
    replacing: str | None = None,
) -> SignedIn:
    """Check a login (or email) and password, then the second factor if the account has
    one, and start a new session.

    `client` is the request's address, `device` its device cookie and `replacing` its
    session cookie (that session ends as the new one starts). Every attempt is counted
    before the password is checked (see _count_attempt). An unknown login is counted, costs
    the same work and gets the same answer as a wrong password.
    """
    origin = Origin.of(client, user_agent)
    user = await _find_user(rt, login)
    user_id = user.id if user else None
    known_device = await devices.recognise(rt.db, device, user_id)
    account = _account(rt, user_id, typed=login)
    attempt = await _count_attempt(rt, account=account, client=client, device=known_device)
    # An unknown name is checked too (against a dummy hash), so it answers as slowly.
    if not await _password_matches(rt, user, password, client=client) or user is None:
        if user_id is not None:
            # The security log of the account the login named shows the failure.
            async with rt.db.write() as db:
                await events.record(
                    db, rt.settings, events.Kind.LOGIN_FAILED, user_id=user_id, origin=origin
                )
        raise NotAuthenticated(WRONG_CREDENTIALS)
    rehashed = None
    if rt.passwords.needs_rehash(user.password_hash):
        rehashed = await rt.passwords.hash(password, client=client)
    signed_in = None
    try:
        async with rt.db.write() as db:
            # The second factor, checked after the password, in the session's transaction.
            second = await totp.check_login(db, rt.keys, user_id=user.id, otp=otp, at=now())
            if second is totp.Check.MISSING:
                # Asking for the code is not a failed attempt: give back the one counted.
                await throttle.give_back(db, attempt.taken)
            elif second is totp.Check.WRONG:
                # A wrong code is: the attempt counted in advance stays counted.
                await events.record(
                    db, rt.settings, events.Kind.LOGIN_FAILED, user_id=user.id, origin=origin
                )
            else:
                await _forgive(db, attempt)
                if rehashed:
                    await db.exec(
                        update(User).where(col(User.id) == user.id).values(password_hash=rehashed)
                    )
                signed_in = await _sign_in(
                    db, rt, user.id, replacing=replacing, device=known_device, origin=origin
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
    except IntegrityError:
        # The account was deleted between the password check and now.
        raise NotAuthenticated(WRONG_CREDENTIALS) from None
    if signed_in is None:
        # The one place a login is refused for want of a second factor.
        raise TotpRequired(TOTP_NEEDED)
    return signed_in


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


# The session and its user's profile in one statement: what GET /profile and `{ me }` need,
# in one round trip instead of two (sessions.RESOLVE_SQL's columns and WHERE, and the
# profile's columns as PROFILE_SQL names them).
SESSION_PROFILE_SQL = (
    "SELECT s.user_id, s.last_seen_at, u.login AS username, u.email, u.firstname,"
    " u.lastname, a.key AS avatar_key"
    " FROM sessions s JOIN users u ON u.id = s.user_id"
    " LEFT JOIN avatars a ON a.user_id = u.id"
    " WHERE s.token_hash = :token_hash AND s.expires_at > :now"
)


async def profile_of_session(
    database: Database, token: str | None
) -> tuple[Principal, Profile] | None:
    """The session a cookie names and its user's profile, read together (None: no session)."""
    found = await sessions.resolve_with(database, token, SESSION_PROFILE_SQL)
    if found is None:
        return None
    principal, row = found
    profile = Profile(
        username=row["username"],
        email=row["email"],
        firstname=row["firstname"],
        lastname=row["lastname"],
        avatar_key=row["avatar_key"],
    )
    return principal, profile


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
    changed = update(User).where(col(User.id) == principal.user_id).values(**values)
    try:
        if values and email is None:
            # Names only: the row written and read back in one statement committed on its
            # own, so the row's lock, for which every other write to this account waits,
            # is held for that statement alone (Database.write_alone).
            return _written(await rt.db.write_alone(changed.returning(*PROFILE_COLUMNS)))
        async with rt.db.write() as db:
            # Email: a new address is verified anew, the old one told (core/email_flows.py).
            old = (
                None if email is None else await email_flows.current_address(db, principal.user_id)
            )
            if values:
                await db.exec(changed)
            if old is not None:
                await email_flows.on_email_change(
                    rt, db, user_id=principal.user_id, old=old, origin=Origin.of(client, user_agent)
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
    """Replace the password after checking the old one (see `recheck_password`).

    Every session of the user ends, and the caller gets a new one in place of its own.
    """
    async with rt.db.read() as db:
        user = await db.get(User, principal.user_id)
    if user is None:
        raise NotAuthenticated("You must be logged in")
    rules.password(new_password, login=user.login, email=user.email, field="new password")
    if not await recheck_password(rt, user, old_password, client=client):
        raise Forbidden("The old password is wrong")
    hashed = await rt.passwords.hash(new_password, client=client)
    try:
        async with rt.db.write() as db:
            await db.exec(
                update(User).where(col(User.id) == principal.user_id).values(password_hash=hashed)
            )
            await sessions.end_all(db, principal.user_id)
            # Email: a notice to the account's address (core/email_flows.py).
            await email_flows.on_password_changed(rt, db, principal.user_id)
            origin = Origin.of(client, user_agent)
            # Only the change itself is logged, not the sessions it ended.
            await events.record(
                db,
                rt.settings,
                events.Kind.PASSWORD_CHANGED,
                user_id=principal.user_id,
                origin=origin,
            )
            return await sessions.start(db, rt.settings, user_id=principal.user_id, origin=origin)
    except IntegrityError:
        # The account was deleted while the old password was being checked.
        raise NotAuthenticated("You must be logged in") from None


async def recheck_password(rt: Runtime, user: User, password: str, *, client: str) -> bool:
    """Whether `password` is a logged-in user's password (an old password, a confirmation).

    Counted against the account's failed-login limit as a login is, with no device cookie
    exemption: the check guards against whoever holds the browser, cookies and all. A
    right password clears the count; past the limit, TooManyRequests.
    """
    assert user.id is not None
    attempt = await _count_attempt(rt, account=_account(rt, user.id), client=client, device=None)
    if not await _password_matches(rt, user, password, client=client):
        return False
    async with rt.db.write() as db:
        await _forgive(db, attempt)
    return True


async def disable_totp(
    rt: Runtime, principal: Principal, *, password: str, client: str, user_agent: str
) -> None:
    """Turn the second factor off after checking the password (counted as a login is)."""
    async with rt.db.read() as db:
        user = await db.get(User, principal.user_id)
    if user is None:
        raise NotAuthenticated("You must be logged in")
    if not await recheck_password(rt, user, password, client=client):
        raise Forbidden("The password is wrong")
    async with rt.db.write() as db:
        if await totp.remove(db, principal.user_id):
            await events.record(
                db,
                rt.settings,
                events.Kind.TOTP_DISABLED,
                user_id=principal.user_id,
                origin=Origin.of(client, user_agent),
            )


async def delete_account(rt: Runtime, principal: Principal) -> None:
    """Remove the user; their sessions and avatar go with them (ON DELETE CASCADE), and
    so do the rate-limit counts kept for them and their device cookies."""
    user_id = principal.user_id
    async with rt.db.write() as db:
        known = (
            await db.exec(select(Device.token_hash).where(col(Device.user_id) == user_id))
        ).all()
        await db.exec(delete(User).where(col(User.id) == user_id))
        await throttle.clear(db, *rt.limits.of_account(user_id, known))


@dataclass(frozen=True, slots=True)
class _Named:
    """The account a login names, as far as checking its password needs."""

    id: int
    password_hash: str


# By the database's fast path (no ORM session, no trip to another thread on SQLite).
FIND_BY_LOGIN_SQL = "SELECT id, password_hash FROM users WHERE login_key = :key"
FIND_BY_EMAIL_SQL = "SELECT id, password_hash FROM users WHERE email_key = :key"


async def _find_user(rt: Runtime, login: str) -> _Named | None:
    key = rules.lookup_key(login)
    if key is None:
        return None
    sql = FIND_BY_EMAIL_SQL if "@" in key else FIND_BY_LOGIN_SQL
    row = await rt.db.fetch_one(sql, key=key)
    return None if row is None else _Named(row["id"], row["password_hash"])


def _account(rt: Runtime, user_id: int | None, *, typed: str = "") -> throttle.Key:
    """The failed-login count an attempt goes to: the account's, whichever of its login or
    email was typed; for a name that is no account, that name's own (so a locked account
    and an unknown name answer alike)."""
    if user_id is not None:
        return rt.limits.account(user_id)
    return rt.limits.login_account.key(f"name:{rules.lookup_key(typed) or typed}")


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A password check, counted as a failure before it is made: against `counted`, the
    account's count or a known device's."""

    counted: throttle.Key
    taken: throttle.Taken


async def _count_attempt(
    rt: Runtime, *, account: throttle.Key, client: str, device: str | None
) -> _Attempt:
    """Count a password check against its limits before it is made, or refuse it.

    It counts as a failure until a success gives it back, so parallel guesses are bounded
    by the limits too. A device that has logged in to the account before (`device`, its
    token's hash) counts against its own limit instead of the account's while it is under
    that limit: strangers' failures that lock the account do not lock out its owner's
    browser (OWASP's device cookies). Every attempt also counts against its client address.
    """
    by_client = rt.limits.login_client.for_client(client)
    by_device = rt.limits.device(device) if device else None
    candidates = [account, by_client] if by_device is None else [account, by_client, by_device]
    async with rt.db.write() as db:
        counter = await throttle.Counter.lock(db, candidates)
        first = account
        if by_device is not None and await counter.retry_after(by_device) is None:
            first = by_device  # a browser the account knows, under its own limit
        await counter.check(first, by_client)
        return _Attempt(first, await counter.record(first, by_client))


async def _password_matches(
    rt: Runtime, user: User | _Named | None, password: str, *, client: str
) -> bool:
    if user is None:
        await rt.passwords.verify_dummy(password, client=client)
        return False
    return await rt.passwords.verify(password, user.password_hash, client=client)


async def _forgive(db: AsyncSession, attempt: _Attempt) -> None:
    """A right password: the count the attempt went to is cleared, and the attempt given
    back. A login through a known device clears that device's count only: the account's
    count is what locks out other clients, and a stranger's guesses stay counted there."""
    await throttle.clear(db, attempt.counted)
    await throttle.give_back(db, attempt.taken)


async def _sign_in(
    db: AsyncSession,
    rt: Runtime,
    user_id: int,
    *,
    replacing: str | None,
    device: str | None,
    origin: Origin,
) -> SignedIn:
    if replacing:
        # Whatever session the browser held ends here, not in 30 days.
        await sessions.end_token(db, replacing)
    session = await sessions.start(db, rt.settings, user_id=user_id, origin=origin)
    new_device = await devices.bind(db, user_id=user_id, replacing=device)
    return SignedIn(await _profile(db, user_id), session, new_device)


# A profile's columns, the avatar's key as a scalar subquery (for UPDATE … RETURNING).
PROFILE_COLUMNS = (
    col(User.login),
    col(User.email),
    col(User.firstname),
    col(User.lastname),
    select(col(Avatar.key)).where(col(Avatar.user_id) == col(User.id)).scalar_subquery(),
)


def _written(rows: list[Row[Any]]) -> Profile:
    if not rows:
        raise NotAuthenticated("You must be logged in")
    login, email, firstname, lastname, avatar_key = tuple(rows[0])
    return Profile(
        username=login, email=email, firstname=firstname, lastname=lastname, avatar_key=avatar_key
    )


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
