"""The second factor on both faces, with real clock-driven codes computed by pyotp from the
secret the service handed out (as an authenticator app would)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pyotp
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.config import Settings
from core.db import Database
from tests.faces import FACES, Face
from tests.types import MakeClient, MakeSettings

PASSWORD = "correct horse battery"
STEP = 30


def _steady() -> None:
    """Wait out the last seconds of a time step, so a code computed now is checked in the
    same step (the test's clock and the service's are one)."""
    left = STEP - time.time() % STEP
    if left < 3:
        time.sleep(left + 0.1)


def _code(secret: str, steps_from_now: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps_from_now * STEP)


def _turned_on(face: Face) -> tuple[str, list[str]]:
    """alice signed up with TOTP on; confirmed with the previous step's code (within the
    tolerated drift), so the current code is still unused. Returns secret and recovery codes."""
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    setup = face.start_totp_setup()
    assert setup.status == 200, setup
    secret = setup.data["secret"]
    _steady()
    confirmed = face.confirm_totp(_code(secret, -1))
    assert confirmed.status == 200, confirmed
    return secret, confirmed.data["recovery_codes"]


def _sessions(face: Face) -> int:
    return len(face.sessions().data)


def test_setup_gives_a_base32_secret_and_its_otpauth_url(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    setup = face.start_totp_setup()
    assert setup.status == 200
    secret = setup.data["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert setup.data == {
        "secret": secret,
        "otpauth_url": f"otpauth://totp/Accounts:alice?secret={secret}&issuer=Accounts",
    }
    parsed = pyotp.parse_uri(setup.data["otpauth_url"])
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.digits, parsed.interval, parsed.issuer) == (6, 30, "Accounts")


def test_setup_is_off_until_confirmed(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.start_totp_setup().status == 200
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 200
    kinds = [event["kind"] for event in face.security_events().data]
    assert "TOTP_ENABLED" not in kinds


def test_new_setup_replaces_an_unconfirmed_one(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    first = face.start_totp_setup().data["secret"]
    second = face.start_totp_setup().data["secret"]
    assert first != second
    _steady()
    assert face.confirm_totp(_code(first)).status == 400
    assert face.confirm_totp(_code(second)).status == 200


def test_setup_while_on_is_a_conflict(face: Face) -> None:
    _turned_on(face)
    outcome = face.start_totp_setup()
    assert outcome.status == 409
    assert outcome.code in (None, "CONFLICT")


def test_wrong_code_at_confirmation_is_400_and_not_a_failed_attempt(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    secret = face.start_totp_setup().data["secret"]
    wrong = f"{(int(_code(secret)) + 1) % 1_000_000:06d}"
    for code in [wrong] * 12 + ["", "abcdef", "1234567", "x" * 10_000]:
        outcome = face.confirm_totp(code)
        assert outcome.status == 400, code
        assert outcome.code in (None, "BAD_USER_INPUT")
    # Twelve wrong codes and still under the account's limit of ten failed logins.
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 200


def test_confirm_returns_ten_different_recovery_codes_and_logs_it(face: Face) -> None:
    _, codes = _turned_on(face)
    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)
    assert face.security_events().data[0]["kind"] == "TOTP_ENABLED"
    assert face.confirm_totp("123456").status == 409


def test_login_with_totp_on_needs_a_current_code(face: Face) -> None:
    secret, _ = _turned_on(face)
    face.client.cookies.clear()
    wrong_password = face.login("alice", "not the password", otp=_code(secret))
    assert wrong_password.status == 403
    assert wrong_password.code != "TOTP_REQUIRED"
    for otp in (None, "", "000000" if _code(secret) != "000000" else "111111"):
        refused = face.login("alice", PASSWORD, otp=otp)
        assert (refused.status, refused.code) == (403, "TOTP_REQUIRED"), otp
        assert "session_id" not in face.client.cookies
    _steady()
    accepted = face.login("alice", PASSWORD, otp=_code(secret))
    assert accepted.status == 200
    assert accepted.profile is not None and accepted.profile["username"] == "alice"
    assert _sessions(face) == 2  # signup's (its cookie dropped, not ended) and this one


def test_totp_required_starts_no_session_and_logs_no_login(face: Face) -> None:
    _turned_on(face)
    before = _sessions(face)
    phone = face.beside("Phone")
    assert phone.login("alice", PASSWORD).code == "TOTP_REQUIRED"
    assert phone.profile().status == 403
    assert _sessions(face) == before
    assert "LOGIN" not in [event["kind"] for event in face.security_events().data]


def test_a_code_is_accepted_once(face: Face) -> None:
    secret, _ = _turned_on(face)
    _steady()
    code = _code(secret)
    phone, tablet = face.beside("Phone"), face.beside("Tablet")
    assert phone.login("alice", PASSWORD, otp=code).status == 200
    replay = tablet.login("alice", PASSWORD, otp=code)
    assert (replay.status, replay.code) == (403, "TOTP_REQUIRED")
    # An older code than the last one accepted is no better.
    assert tablet.login("alice", PASSWORD, otp=_code(secret, -1)).code == "TOTP_REQUIRED"


def test_one_step_of_clock_drift_is_tolerated_either_way(face: Face) -> None:
    # Confirmed with the previous step's code: drift backwards (see _turned_on).
    secret, _ = _turned_on(face)
    _steady()
    phone = face.beside("Phone")
    assert phone.login("alice", PASSWORD, otp=_code(secret, +2)).code == "TOTP_REQUIRED"
    assert phone.login("alice", PASSWORD, otp=_code(secret, +1)).status == 200


def test_codes_two_steps_old_are_refused(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    secret = face.start_totp_setup().data["secret"]
    _steady()
    assert face.confirm_totp(_code(secret, -2)).status == 400
    assert face.confirm_totp(_code(secret, +2)).status == 400
    assert face.confirm_totp(_code(secret, +1)).status == 200


def test_recovery_code_works_once(face: Face) -> None:
    _, codes = _turned_on(face)
    phone = face.beside("Phone")
    assert phone.login("alice", PASSWORD, otp=codes[0]).status == 200
    kinds = [event["kind"] for event in face.security_events().data]
    assert kinds[:2] == ["RECOVERY_CODE_USED", "LOGIN"]
    again = face.beside("Tablet").login("alice", PASSWORD, otp=codes[0])
    assert (again.status, again.code) == (403, "TOTP_REQUIRED")
    # Typed as people type them: capitals, spaces instead of dashes.
    typed = codes[1].upper().replace("-", " ")
    assert face.beside("Laptop").login("alice", PASSWORD, otp=typed).status == 200


def test_wrong_code_counts_as_a_failed_attempt_and_a_missing_one_does_not(face: Face) -> None:
    secret, _ = _turned_on(face)
    phone = face.beside("Phone")
    for _ in range(12):
        assert phone.login("alice", PASSWORD).code == "TOTP_REQUIRED"
    wrong = f"{(int(_code(secret)) + 500_000) % 1_000_000:06d}"
    for _ in range(10):
        assert phone.login("alice", PASSWORD, otp=wrong).code == "TOTP_REQUIRED"
    _steady()
    throttled = phone.login("alice", PASSWORD, otp=_code(secret))
    assert throttled.status == 429
    kinds = [event["kind"] for event in face.security_events().data]
    assert kinds.count("LOGIN_FAILED") == 10


def test_disable_needs_the_password(face: Face) -> None:
    _turned_on(face)
    wrong = face.disable_totp("not the password")
    assert wrong.status == 403
    assert wrong.code in (None, "FORBIDDEN")
    assert face.disable_totp(PASSWORD).status == 200
    assert face.security_events().data[0]["kind"] == "TOTP_DISABLED"
    assert face.beside("Phone").login("alice", PASSWORD).status == 200
    # On again with a new secret and new recovery codes.
    assert face.start_totp_setup().status == 200


def test_wrong_passwords_at_disable_count_against_the_account(face: Face) -> None:
    _turned_on(face)
    for _ in range(10):
        assert face.disable_totp("not the password").status == 403
    assert face.disable_totp(PASSWORD).status == 429


def test_password_change_leaves_totp_on(face: Face) -> None:
    _turned_on(face)
    assert face.change_password(PASSWORD, "a brand new passphrase").status == 200
    phone = face.beside("Phone")
    assert phone.login("alice", "a brand new passphrase").code == "TOTP_REQUIRED"


def _stored(settings: Settings) -> bytes:
    """Everything the database holds, as bytes: SQLite's files, or every PostgreSQL row."""
    if settings.is_sqlite:
        path = Path(str(make_url(settings.database_url).database))
        return b"".join(
            candidate.read_bytes()
            for candidate in (path, path.with_name(path.name + "-wal"))
            if candidate.exists()
        )

    async def dump() -> bytes:
        database = Database(settings)
        async with database.engine.connect() as connection:
            tables = (
                await connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            rows = []
            for table in list(tables):
                # The names come from PostgreSQL's own catalogue.
                query = f'SELECT t::text FROM "{table}" t'  # noqa: S608
                found = await connection.execute(text(query))
                rows += [str(row) for row in found.scalars()]
        await database.dispose()
        return "\n".join(rows).encode()

    return asyncio.run(dump())


def test_database_never_holds_the_secret_or_recovery_codes_in_clear(
    face: Face, make_settings: MakeSettings
) -> None:
    secret, codes = _turned_on(face)
    raw = pyotp.TOTP(secret).byte_secret()
    stored = _stored(make_settings())
    assert b"totp_secrets" in stored or b"aesgcm$1$" in stored  # the dump is not empty
    assert b"aesgcm$1$" in stored
    for clear in (secret.encode(), secret.lower().encode(), raw, raw.hex().encode()):
        assert clear not in stored
    for code in codes:
        assert code.encode() not in stored and code.replace("-", "").encode() not in stored


def test_second_factor_survives_a_restart(make_client: MakeClient) -> None:
    # On SQLite without SECRET_KEY the key lives in secret.key beside the database, so a
    # new process opens the secrets the last one sealed.
    secret, _ = _turned_on(FACES["rest"](make_client()))
    restarted = FACES["rest"](make_client())
    _steady()
    assert restarted.login("alice", PASSWORD).code == "TOTP_REQUIRED"
    assert restarted.login("alice", PASSWORD, otp=_code(secret)).status == 200
