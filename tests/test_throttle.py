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


def test_aliased_logins_are_refused_before_any_attempt(client: TestClient) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
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
