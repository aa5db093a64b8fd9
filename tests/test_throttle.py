"""Throttling: failed logins per account and per client address, sign-ups per address;
exact under concurrency, keyed on hashes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter

import pytest
from sqlalchemy import text
from starlette.requests import Request
from starlette.testclient import TestClient

from core import security
from core.config import Settings
from core.db import Database
from core.keys import Keys
from schema.context import client_address
from tests.asgi import Call, statuses
from tests.faces import Face
from tests.images import encode
from tests.mail import query
from tests.types import MakeClient, MakeFace, MakeSettings

PASSWORD = "correct horse battery"


def test_account_is_throttled_after_its_limit(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    face.client.cookies.clear()
    for _ in range(10):
        assert face.login("alice", "wrong password!").status == 403
    blocked = face.login("alice", PASSWORD)
    assert blocked.status == 429
    assert blocked.retry_after is not None and 0 < blocked.retry_after <= 900
    assert face.login("ALICE@example.com", PASSWORD).status == 429


def test_successful_login_clears_the_account_count(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    for _ in range(9):
        assert face.login("alice", "wrong password!").status == 403
    assert face.login("alice", PASSWORD).status == 200
    for _ in range(9):
        assert face.login("alice", "wrong password!").status == 403
    assert face.login("alice", PASSWORD).status == 200


def test_aliased_logins_are_refused_before_any_attempt(client: TestClient) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    client.cookies.clear()  # a stranger: no device cookie of alice's
    guesses = " ".join(
        f'g{i}: login(input: {{login: "alice", password: "guess number {i}"}}) {{ username }}'
        for i in range(10)
    )
    # One credential mutation per document (schema/documents.py): a document of ten
    # guesses checks none of them, so it neither guesses nor counts against the owner.
    for _ in range(20):
        body = client.post("/graphql", json={"query": f"mutation {{ {guesses} }}"}).json()
        assert "data" not in body
        assert [error["extensions"]["code"] for error in body["errors"]] == [
            "GRAPHQL_VALIDATION_FAILED"
        ]
    response = client.post("/login", json={"login": "alice", "password": PASSWORD})
    assert response.status_code == 200


def test_client_address_is_throttled_across_accounts(make_client: MakeClient) -> None:
    client = make_client(login_failures_per_ip=5)
    for i in range(5):
        response = client.post("/login", json={"login": f"user{i}", "password": "whatever1"})
        assert response.status_code == 403
    response = client.post("/login", json={"login": "someone", "password": "whatever1"})
    assert response.status_code == 429


def test_wrong_old_password_counts_against_the_account(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    for _ in range(10):
        assert face.change_password("not my password", "a brand new passphrase").status == 403
    assert face.change_password(PASSWORD, "a brand new passphrase").status == 429


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


def test_client_address_is_the_socket_peer_unless_a_proxy_is_trusted() -> None:
    trusted = Settings(trusted_proxies="10.0.0.0/8").trusted_proxies
    spoofed = "198.51.100.7, 203.0.113.9"
    assert client_address(_request("192.0.2.1", spoofed), ()) == "192.0.2.1"
    assert client_address(_request("192.0.2.1", spoofed), trusted) == "192.0.2.1"
    assert client_address(_request("10.1.1.1", spoofed), trusted) == "203.0.113.9"
    assert client_address(_request("10.1.1.1", "203.0.113.9, 10.2.2.2"), trusted) == "203.0.113.9"
    assert client_address(_request("10.1.1.1", None), trusted) == "10.1.1.1"


def test_101_wrong_passwords_in_a_row_are_stopped(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    face.client.cookies.clear()
    statuses = [face.login("alice", f"wrong guess {i}").status for i in range(101)]
    assert statuses[:10] == [403] * 10
    assert set(statuses[10:]) == {429}
    assert face.login("alice", PASSWORD).status == 429


def _from(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


WRONG = {"login": "alice", "password": "wrong guess"}
SIGNUP_ALICE = Call("POST", "/signup", {"login": "alice", "password": PASSWORD, "email": "a@b.co"})


def test_simultaneous_wrong_logins_from_one_address_get_exactly_its_limit(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(login_failures_per_ip=5)
    guesses = [Call("POST", "/login", {**WRONG, "login": f"user{i}"}) for i in range(30)]
    assert statuses(settings, guesses) == Counter({403: 5, 429: 25})


def test_simultaneous_wrong_logins_on_one_account_get_exactly_its_limit(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(trusted_proxies="127.0.0.1/32")
    guesses = [Call("POST", "/login", WRONG, _from(f"198.51.100.{i}")) for i in range(40)]
    assert statuses(settings, guesses, prepare=[SIGNUP_ALICE]) == Counter({403: 10, 429: 30})


def test_simultaneous_signups_from_one_address_get_exactly_its_limit(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(signups_per_ip=5)
    signups = [
        Call("POST", "/signup", {"login": f"user{i}", "password": PASSWORD, "email": f"u{i}@b.co"})
        for i in range(30)
    ]
    assert statuses(settings, signups) == Counter({200: 5, 429: 25})


def test_signups_from_one_address_are_limited_and_others_are_not(
    make_face: MakeFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    face = make_face(signups_per_ip=3, signup_window_seconds=600, trusted_proxies="127.0.0.1/32")
    for i in range(3):
        assert face.signup(f"user{i}", PASSWORD, f"user{i}@example.com").status == 200
    hashed: list[str] = []
    real_hash = security._hash

    def counted(password: str, rounds: int) -> str:
        hashed.append(password)
        return real_hash(password, rounds)

    monkeypatch.setattr(security, "_hash", counted)
    refused = face.signup("user3", PASSWORD, "user3@example.com")
    assert refused.status == 429
    assert refused.retry_after is not None and 0 < refused.retry_after <= 600
    assert hashed == []
    # Refused before hashing or storing anything: the name is still free.
    face.client.headers["x-forwarded-for"] = "203.0.113.1"
    assert face.signup("user3", PASSWORD, "user3@example.com").status == 200
    assert hashed == [PASSWORD]


def test_invalid_signups_cost_nothing_of_the_limit(make_face: MakeFace) -> None:
    face = make_face(signups_per_ip=2)
    for _ in range(5):
        assert face.signup("x", PASSWORD, "user@example.com").status == 400
    assert face.signup("user1", PASSWORD, "user1@example.com").status == 200
    assert face.signup("user1", PASSWORD, "user2@example.com").status == 409  # a hash, counted
    assert face.signup("user3", PASSWORD, "user3@example.com").status == 429


def test_unknown_names_are_locked_like_accounts(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    face.client.cookies.clear()
    for name in ("alice", "ghost"):
        for _ in range(10):
            assert face.login(name, "wrong password!").status == 403
    locked, unknown = face.login("alice", PASSWORD), face.login("ghost", PASSWORD)
    assert (locked.status, locked.message) == (unknown.status, unknown.message)
    assert locked.status == 429


def test_a_lock_applies_alike_to_the_login_and_the_email(face: Face) -> None:
    assert face.signup("erin", PASSWORD, "erin@example.com").status == 200
    face.client.cookies.clear()
    for name in ("erin", "ERIN@example.com") * 5:
        assert face.login(name, "wrong password!").status == 403
    assert face.login("erin@example.com", PASSWORD).status == 429
    assert face.login("Erin", PASSWORD).status == 429


def _stored_keys(settings: Settings) -> list[str]:
    async def query() -> list[str]:
        database = Database(settings)
        async with database.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM throttle_events"))).all()
        await database.dispose()
        return [" ".join(str(value) for value in row) for row in rows]

    return asyncio.run(query())


def test_nothing_typed_in_the_login_field_is_stored(
    make_client: MakeClient, make_settings: MakeSettings
) -> None:
    client = make_client(trusted_proxies="127.0.0.1/32")
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    client.cookies.clear()
    for login in ("alice", "A@B.CO", "ghost", "ghost@example.com"):
        response = client.post(
            "/login", json={"login": login, "password": "wrong guess"}, headers=_from("192.0.2.77")
        )
        assert response.status_code == 403
    rows = _stored_keys(make_settings())
    assert len(rows) >= 8  # per account (or name) and per address, each attempt
    stored = " ".join(rows).lower()
    for typed in ("alice", "a@b.co", "ghost", "192.0.2.77", "user:"):
        assert typed not in stored


def _digest(key: bytes, limit: str, value: str) -> str:
    return hmac.new(key, f"{limit}\0{value}".encode(), "sha256").hexdigest()


def test_stored_keys_are_keyed_by_the_secret_key_so_a_dictionary_cannot_reverse_them(
    make_client: MakeClient, make_settings: MakeSettings
) -> None:
    secret = "a secret key of this deployment, 32+ characters"
    client = make_client(secret_key=secret, trusted_proxies="127.0.0.1/32")
    response = client.post(
        "/login", json={"login": "ghost", "password": "wrong guess"}, headers=_from("192.0.2.77")
    )
    assert response.status_code == 403
    stored = " ".join(_stored_keys(make_settings()))
    counted = [
        ("login_failures_per_account", "name:ghost"),
        ("login_failures_per_ip", "192.0.2.77"),
    ]
    # Whoever holds the table and this code, but not SECRET_KEY, hashes a dictionary of
    # logins and addresses in vain: neither a key fixed in the code nor another one works.
    fixed = b"accounts-api/throttle-key/v1"
    assert not any(_digest(fixed, *value) in stored for value in counted)
    another = Keys.derive(secret + "!").throttle
    assert not any(_digest(another, *value) in stored for value in counted)
    assert all(_digest(Keys.derive(secret).throttle, *value) in stored for value in counted)


def test_deleting_an_account_clears_every_count_kept_for_it(
    make_face: MakeFace, make_settings: MakeSettings
) -> None:
    secret = "a secret key of this deployment, 32+ characters"
    face = make_face(secret_key=secret)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    session, device = face.client.cookies["session_id"], face.client.cookies["device_id"]
    assert face.upload_avatar(encode("PNG")).status == 200
    face.client.cookies.clear()
    face.client.cookies.set("device_id", device, domain="testserver.local")
    assert face.login("alice", "wrong guess").status == 403  # counted on the device
    face.client.cookies.clear()
    assert face.login("alice", "wrong guess").status == 403  # counted on the account
    key = Keys.derive(secret).throttle
    [user_id] = _user_ids(make_settings())
    counted = [
        _digest(key, "login_failures_per_account", f"user:{user_id}"),
        _digest(key, "avatar_uploads_per_hour", f"user:{user_id}"),
        _digest(key, "login_failures_per_device", hashlib.sha256(device.encode()).hexdigest()),
    ]
    assert all(digest in " ".join(_stored_keys(make_settings())) for digest in counted)
    face.client.cookies.set("session_id", session, domain="testserver.local")
    assert face.delete_profile().status == 200
    # Nothing counted for the account outlives it (the address's count is the client's).
    stored = " ".join(_stored_keys(make_settings()))
    assert not any(digest in stored for digest in counted)
    assert _digest(key, "login_failures_per_ip", "127.0.0.1") in stored


def _user_ids(settings: Settings) -> list[int]:
    return [row[0] for row in query(settings, "SELECT id FROM users")]


def test_ipv6_clients_are_counted_per_64_network(make_client: MakeClient) -> None:
    client = make_client(login_failures_per_ip=3, trusted_proxies="127.0.0.1/32")

    def attempt(address: str) -> int:
        return int(client.post("/login", json=WRONG, headers=_from(address)).status_code)

    for address in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"):
        assert attempt(address) == 403
    assert attempt("2001:db8:1:2:abcd::9") == 429
    assert attempt("2001:db8:1:3::1") == 403
    assert attempt("192.0.2.1") == 403


def test_ipv4_mapped_addresses_count_as_their_ipv4_address(make_client: MakeClient) -> None:
    client = make_client(login_failures_per_ip=2, trusted_proxies="127.0.0.1/32")
    for address in ("192.0.2.1", "::ffff:192.0.2.1"):
        assert client.post("/login", json=WRONG, headers=_from(address)).status_code == 403
    assert client.post("/login", json=WRONG, headers=_from("192.0.2.1")).status_code == 429
