"""The second factor: TOTP codes (RFC 6238: SHA-1, 6 digits, 30 s) and recovery codes.

pyotp does the RFC arithmetic; this module keeps the rules: a setup is off until a first
code confirms it, a code is accepted once (the last accepted time step is stored), one step
of clock drift either way is tolerated, and each recovery code works once. The secret is
stored sealed (core/keys.py); recovery codes only as keyed digests.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import Enum

import pyotp
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core import events
from core.db import Database, now
from core.errors import Conflict, InvalidInput, NotAuthenticated
from core.events import Origin
from core.keys import Keys
from core.models import RecoveryCode, TotpSecret, User
from core.runtime import Runtime
from core.sessions import Principal

ISSUER = "Accounts"
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
# 16 characters of base32 (80 bits), shown in groups of four; never all digits, so a
# recovery code cannot be mistaken for a TOTP code.
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
RECOVERY_LENGTH = 16
SIX_DIGITS = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(rf"[{RECOVERY_ALPHABET}]{{{RECOVERY_LENGTH}}}")
# Longer input is neither kind of code; it is not worth normalising.
OTP_MAX = 64


@dataclass(frozen=True, slots=True)
class Setup:
    secret: str
    otpauth_url: str


class Check(Enum):
    """What the second factor says about a login whose password was right."""

    NOT_NEEDED = "not needed"
    CODE_ACCEPTED = "code accepted"
    RECOVERY_CODE_USED = "recovery code used"
    MISSING = "missing"
    WRONG = "wrong"

    @property
    def passed(self) -> bool:
        return self in (Check.NOT_NEEDED, Check.CODE_ACCEPTED, Check.RECOVERY_CODE_USED)


ENABLED_SQL = (
    "SELECT 1 AS yes FROM totp_secrets WHERE user_id = :user_id AND enabled_at IS NOT NULL"
)


async def enabled(database: Database, user_id: int) -> bool:
    """Whether the account has a confirmed second factor (for `GET /account`)."""
    return await database.fetch_one(ENABLED_SQL, user_id=user_id) is not None


async def start_setup(rt: Runtime, principal: Principal) -> Setup:
    """A new secret, not active until `confirm`; replaces an unconfirmed one."""
    secret = pyotp.random_base32()
    at = now()
    async with rt.db.write() as db:
        login = (await db.exec(select(User.login).where(col(User.id) == principal.user_id))).first()
        if login is None:
            raise NotAuthenticated("You must be logged in")
        sealed = rt.keys.seal(_raw(secret), user_id=principal.user_id)
        values = {"secret": sealed, "created_at": at, "enabled_at": None, "last_step": None}
        # One statement decides, even against a setup confirmed at the same moment: the
        # row is replaced only while it is unconfirmed.
        result = await db.exec(
            rt.db.upsert(
                TotpSecret,
                {"user_id": principal.user_id, **values},
                key="user_id",
                where=col(TotpSecret.enabled_at).is_(None),
            )
        )
        if not result.rowcount:
            raise Conflict("Two-factor authentication is already on")
    url = pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=ISSUER)
    return Setup(secret=secret, otpauth_url=url)


async def confirm(
    rt: Runtime, principal: Principal, *, code: str, client: str, user_agent: str
) -> list[str]:
    """Turn the second factor on with a first code; returns the recovery codes, once.

    A wrong code is bad input, not a failed login: the caller is logged in already.
    """
    at = now()
    async with rt.db.write() as db:
        row = await db.get(TotpSecret, principal.user_id)
        if row is None:
            raise InvalidInput("code", "start the two-factor setup first")
        if row.enabled_at is not None:
            raise Conflict("Two-factor authentication is already on")
        secret = rt.keys.unseal(row.secret, user_id=principal.user_id)
        step = matching_step(secret, code, at=at, after=None)
        if step is None:
            raise InvalidInput("code", "wrong code; check the device's clock and try again")
        switched = await db.exec(
            update(TotpSecret)
            .where(
                col(TotpSecret.user_id) == principal.user_id,
                col(TotpSecret.enabled_at).is_(None),
                col(TotpSecret.secret) == row.secret,
            )
            .values(enabled_at=at, last_step=step)
        )
        if not switched.rowcount:
            raise Conflict("The two-factor setup changed meanwhile; start it again")
        codes = _new_recovery_codes()
        await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == principal.user_id))
        db.add_all(
            RecoveryCode(user_id=principal.user_id, digest=rt.keys.digest(_normalised(shown)))
            for shown in codes
        )
        await events.record(
            db,
            rt.settings,
            events.Kind.TOTP_ENABLED,
            user_id=principal.user_id,
            origin=Origin.of(client, user_agent),
        )
    return codes


async def remove(db: AsyncSession, user_id: int) -> bool:
    """Turn the second factor off (or drop an unconfirmed setup); True if it was on."""
    row = await db.get(TotpSecret, user_id)
    if row is None:
        return False
    await db.exec(delete(TotpSecret).where(col(TotpSecret.user_id) == user_id))
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    return row.enabled_at is not None


async def check_login(
    db: AsyncSession, keys: Keys, *, user_id: int, otp: str | None, at: float
) -> Check:
    """The second factor of a login whose password was right, in the login's transaction.

    An accepted code's time step is stored with the check, and a recovery code is deleted
    as it is used, so of two logins racing with one code exactly one gets in.
    """
    row = await db.get(TotpSecret, user_id)
    if row is None or row.enabled_at is None:
        return Check.NOT_NEEDED
    if otp is None or not otp.strip():
        return Check.MISSING
    code = _normalised(otp)
    if SIX_DIGITS.fullmatch(code):
        secret = keys.unseal(row.secret, user_id=user_id)
        step = matching_step(secret, code, at=at, after=row.last_step)
        if step is not None and await _advance(db, user_id, step):
            return Check.CODE_ACCEPTED
    elif RECOVERY_CODE.fullmatch(code):
        used = await db.exec(
            delete(RecoveryCode).where(
                col(RecoveryCode.user_id) == user_id,
                col(RecoveryCode.digest) == keys.digest(code),
            )
        )
        if used.rowcount:
            return Check.RECOVERY_CODE_USED
    return Check.WRONG


def matching_step(secret: bytes, code: str, *, at: float, after: int | None) -> int | None:
    """The time step (now, or one either side) whose code `code` is, if later than `after`."""
    code = _normalised(code)
    if not SIX_DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(base64.b32encode(secret).decode("ascii"))
    current = totp.timecode(at)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def _advance(db: AsyncSession, user_id: int, step: int) -> bool:
    # Conditional, so a second login with the same code (even at the same moment, on
    # another instance) finds the step taken and is refused: no replay.
    result = await db.exec(
        update(TotpSecret)
        .where(
            col(TotpSecret.user_id) == user_id,
            (col(TotpSecret.last_step).is_(None)) | (col(TotpSecret.last_step) < step),
        )
        .values(last_step=step)
    )
    return bool(result.rowcount)


def _new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4)))
    return codes


def _normalised(otp: str) -> str:
    """What a person may type around a code (spaces, dashes, capitals) taken away."""
    if len(otp) > OTP_MAX:
        return ""
    return "".join(otp.split()).replace("-", "").lower()


def _raw(secret_b32: str) -> bytes:
    return pyotp.TOTP(secret_b32).byte_secret()
