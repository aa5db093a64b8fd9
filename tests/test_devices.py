"""Device cookies: a browser that logged in before still gets in while strangers' guesses
have locked the account (OWASP's "slow down online guessing attacks with device cookies")."""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy import text
from starlette.testclient import TestClient

from core.config import Settings
from core.db import Database
from tests.faces import Face
from tests.types import MakeClient, MakeFace, MakeSettings

PASSWORD = "correct horse battery"
YEAR = 365 * 24 * 3600


def _device_cookie(headers: list[str]) -> str:
    return next(cookie for cookie in headers if cookie.startswith("device_id="))


def _set_device(face: Face, token: str | None) -> None:
    face.client.cookies.clear()
    if token is not None:
        face.client.cookies.set("device_id", token, domain="testserver.local")


def _lock(face: Face, login: str, failures: int = 10) -> None:
    """A stranger (no cookies) fails `failures` times at `login`."""
    _set_device(face, None)
    for _ in range(failures):
        assert face.login(login, "not the password").status == 403
    assert face.login(login, PASSWORD).status == 429


def test_login_and_signup_set_the_device_cookie(client: TestClient) -> None:
    signup = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    for path, body in (("/signup", signup), ("/login", {"login": "alice", "password": PASSWORD})):
        response = client.post(path, json=body)
        token = client.cookies["device_id"]
        assert _device_cookie(response.headers.get_list("set-cookie")) == (
            f"device_id={token}; Max-Age={YEAR}; Path=/; HttpOnly; SameSite=Lax"
        )
        assert len(token) >= 43


def test_device_cookie_is_secure_as_the_session_cookie(make_client: MakeClient) -> None:
    client = make_client(cookie_secure=True)
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    cookies = client.post("/signup", json=body).headers.get_list("set-cookie")
    assert all(cookie.endswith("; HttpOnly; SameSite=Lax; Secure") for cookie in cookies)
    assert len(cookies) == 2


def _device_rows(settings: Settings) -> list[tuple[str, int]]:
    async def query() -> list[tuple[str, int]]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT token_hash, user_id FROM devices"))).all()
        await database.dispose()
        return [(row[0], row[1]) for row in rows]

    return asyncio.run(query())


def test_device_token_is_stored_only_as_its_hash(
    client: TestClient, make_settings: MakeSettings
) -> None:
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    client.post("/signup", json=body)
    token = client.cookies["device_id"]
    assert _device_rows(make_settings()) == [(hashlib.sha256(token.encode()).hexdigest(), 1)]


def test_owner_with_a_device_cookie_gets_into_a_locked_account(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    device = face.client.cookies["device_id"]
    _lock(face, "alice")
    _set_device(face, device)
    assert face.login("alice", PASSWORD).status == 200
    assert face.profile().status == 200
    # By the email too; and a wrong password from the device is only a wrong password.
    _set_device(face, face.client.cookies["device_id"])
    assert face.login("alice", "not the password").status == 403
    assert face.login("ALICE@example.com", PASSWORD).status == 200


def test_a_login_through_a_device_leaves_the_accounts_lock_on_other_clients(face: Face) -> None:
    # The owner's login clears its device's count, not the strangers' guesses: else each
    # login of the owner would hand whoever is guessing a fresh set of tries.
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    device = face.client.cookies["device_id"]
    _lock(face, "alice")
    _set_device(face, device)
    assert face.login("alice", PASSWORD).status == 200
    _set_device(face, None)
    assert face.login("alice", "another guess").status == 429
    assert face.login("alice@example.com", PASSWORD).status == 429


def test_a_device_cookie_of_another_account_bypasses_nothing(face: Face) -> None:
    assert face.signup("mallory", PASSWORD, "mallory@example.com").status == 200
    mallorys = face.client.cookies["device_id"]
    _set_device(face, None)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    _lock(face, "alice")
    for device in (mallorys, "made-up-device-token", ""):
        _set_device(face, device)
        assert face.login("alice", PASSWORD).status == 429


def test_a_device_past_its_own_limit_bypasses_nothing(make_face: MakeFace) -> None:
    face = make_face(login_failures_per_device=3)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    device = face.client.cookies["device_id"]
    _lock(face, "alice")
    _set_device(face, device)
    for _ in range(3):
        assert face.login("alice", "not the password").status == 403
    refused = face.login("alice", PASSWORD)
    assert refused.status == 429
    assert refused.retry_after is not None and refused.retry_after > 0


def test_a_device_is_limited_even_when_the_account_is_not(make_face: MakeFace) -> None:
    # Past its own limit the device counts as any browser: against the account's limit.
    face = make_face(login_failures_per_device=3, login_failures_per_account=5)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    _set_device(face, face.client.cookies["device_id"])
    statuses = [face.login("alice", "not the password").status for _ in range(9)]
    assert statuses == [403] * 8 + [429]


def test_a_successful_login_with_a_device_replaces_its_token(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    first = face.client.cookies["device_id"]
    _set_device(face, first)
    assert face.login("alice", PASSWORD).status == 200
    second = face.client.cookies["device_id"]
    assert second != first
    _lock(face, "alice")
    _set_device(face, first)
    assert face.login("alice", PASSWORD).status == 429  # the old token is gone
    _set_device(face, second)
    assert face.login("alice", PASSWORD).status == 200


def test_logout_keeps_the_device(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    device = face.client.cookies["device_id"]
    assert face.logout().status == 200
    assert face.client.cookies.get("device_id") == device
    _lock(face, "alice")
    _set_device(face, device)
    assert face.login("alice", PASSWORD).status == 200


def test_a_password_change_gets_no_device_exemption(face: Face) -> None:
    # The old-password check guards against whoever holds the browser, cookies and all.
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    session, device = face.client.cookies["session_id"], face.client.cookies["device_id"]
    _lock(face, "alice")
    face.client.cookies.set("session_id", session, domain="testserver.local")
    face.client.cookies.set("device_id", device, domain="testserver.local")
    assert face.profile().status == 200
    assert face.change_password(PASSWORD, "a brand new passphrase").status == 429
