"""Failed-login throttling, per account and per client address."""

from __future__ import annotations

from starlette.requests import Request
from starlette.testclient import TestClient

from core.config import Settings
from schema.context import client_address
from tests.faces import Face
from tests.types import MakeClient

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


def test_aliases_in_one_document_count_one_by_one(client: TestClient) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    guesses = " ".join(
        f'g{i}: login(input: {{login: "alice", password: "guess number {i}"}}) {{ username }}'
        for i in range(10)
    )
    # login returns Profile!, so the first failed guess nulls the whole result and
    # stops the serial execution: a document never gets more attempts than it pays for.
    for _ in range(10):
        body = client.post("/graphql", json={"query": f"mutation {{ {guesses} }}"}).json()
        assert body["data"] is None
        assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]
    response = client.post("/login", json={"login": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


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


def test_101_wrong_passwords_spread_over_aliases_are_stopped(client: TestClient) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    guesses = [f"wrong guess {i}" for i in range(101)]
    codes: list[str] = []
    for start in range(0, len(guesses), 10):
        aliases = " ".join(
            f'g{i}: login(input: {{login: "alice", password: "{guess}"}}) {{ username }}'
            for i, guess in enumerate(guesses[start : start + 10])
        )
        body = client.post("/graphql", json={"query": f"mutation {{ {aliases} }}"}).json()
        codes += [error["extensions"]["code"] for error in body["errors"]]
    # No more than the account's limit of attempts is ever checked; the rest are refused.
    assert codes.count("UNAUTHENTICATED") == 10
    assert codes[10:] and set(codes[10:]) == {"TOO_MANY_REQUESTS"}
    response = client.post("/login", json={"login": "alice", "password": PASSWORD})
    assert response.status_code == 429
