"""What only the REST face does: the HTTP translation of bodies, statuses and errors."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pyotp
import pytest
from starlette.testclient import TestClient

from app.server import create_app
from core.config import Settings
from rest_compat.routes import ENDPOINTS
from tests.types import MakeClient

PASSWORD = "correct horse battery"
SIGNUP = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}


def test_unknown_path_is_json_404(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_trailing_slash_is_json_404_not_a_redirect(client: TestClient) -> None:
    # Starlette's router would answer 307 to the path without the slash; a client that
    # follows it re-sends the body (a password) to a URL it never chose.
    for method, path in (("POST", "/login/"), ("GET", "/profile/"), ("GET", "/graphql/")):
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code == 404, path
        assert response.json() == {"message": "Not Found"}
        assert "location" not in response.headers


def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.patch("/profile")
    assert response.status_code == 405
    assert response.json() == {"message": "Method Not Allowed"}
    assert client.get("/signup").status_code == 405


def test_json_endpoint_refuses_other_content_type(client: TestClient) -> None:
    response = client.post(
        "/signup", content=b"login=alice", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "message" in response.json()
    form = client.post("/login", data={"login": "alice", "password": PASSWORD})
    assert form.status_code == 415


def test_charset_parameter_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/signup",
        content=json.dumps({**SIGNUP, "email": "a@example.com"}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_malformed_body_is_400(client: TestClient) -> None:
    too_deep = b"[" * 100_000 + b"]" * 100_000
    for body in (b"{", b"[]", b'"text"', b"", b"\xff\xfe", too_deep):
        response = client.post("/login", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        assert response.json()["message"]


def test_missing_or_mistyped_field_is_400(client: TestClient) -> None:
    for body in (
        {"login": "alice", "password": PASSWORD},
        {"login": "alice", "password": 12345678, "email": "a@example.com"},
        {"login": None, "password": PASSWORD, "email": "a@example.com"},
        {**SIGNUP, "admin": True},
    ):
        response = client.post("/signup", json=body)
        assert response.status_code == 400, body
        assert response.json()["message"]


def test_put_profile_ignores_echoed_avatar_and_refuses_other_fields(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    profile = client.get("/profile").json()
    echoed = client.put("/profile", json={**profile, "firstname": "Alice"})
    assert echoed.status_code == 200
    assert echoed.json() == {**profile, "firstname": "Alice"}
    assert client.put("/profile", json={"password": "x"}).status_code == 400
    assert client.put("/profile", json={}).json() == {**profile, "firstname": "Alice"}


def test_password_change_refuses_graphql_field_names(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    body = {"oldPassword": PASSWORD, "newPassword": "a brand new passphrase"}
    assert client.put("/password", json=body).status_code == 400


def test_errors_never_leak_internals(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    response = client.post("/signup", json=SIGNUP)
    assert response.status_code == 409
    text = response.text.lower()
    for leak in ("sql", "unique", "traceback", "integrity", "$2b$"):
        assert leak not in text


def test_responses_carry_security_headers(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    for response in (client.get("/profile"), client.get("/nowhere"), client.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]


def test_healthz_answers_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_describes_every_endpoint_body_and_error(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for endpoint in ENDPOINTS:
        for method in endpoint.methods:
            operation = document["paths"][endpoint.path][method.lower()]
            assert set(operation["responses"]) == {"200", *map(str, endpoint.errors), "503"}
            if endpoint.fields or endpoint.upload:
                assert operation["requestBody"]["required"] is True
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_json_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    big = b'{"login": "' + b"a" * (1024 * 1024) + b'", "password": "x"}'
    response = client.post("/login", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "message" in response.json()


def test_streamed_json_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"login": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    response = client.post("/login", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_healthz_is_503_when_database_is_unreachable(make_client: MakeClient) -> None:
    client = make_client(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/none", migrate_on_start=False
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_a_bug_escaping_a_route_is_a_masked_500_and_logged(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Starlette re-raises after answering, for the server's log; the test client must not.
    client = TestClient(create_app(make_settings()), raise_server_exceptions=False)

    async def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("rest_compat.translator._variables", broken)
    monkeypatch.setattr("app.server.avatars.fetch", broken)
    # A fixed path (served straight from its route) and one with a parameter (via the router).
    for response in (client.post("/login", json={}), client.get("/avatars/abc")):
        assert response.status_code == 500
        assert response.json() == {"message": "Internal server error"}
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "secret" not in response.text
    client.close()
    assert sum("unexpected error" in record.message for record in caplog.records) == 2


def test_an_unexpected_error_in_an_operation_is_logged_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("core.accounts.signup", broken)
    body = {"login": "alice", "password": "correct horse battery", "email": "a@b.co"}
    with caplog.at_level(logging.ERROR):
        response = client.post("/signup", json=body)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    logged = [record for record in caplog.records if "unexpected error" in record.message]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


def test_limit_query_parameter_must_be_an_integer(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    for limit in ("abc", "1.5", "1_0", "+5", "\u0663", "", "9" * 5000, "99999999999"):
        response = client.get("/security-events", params={"limit": limit})
        assert response.status_code == 400, limit
        assert set(response.json()) == {"message"}
    assert len(client.get("/security-events", params={"limit": "1"}).json()) == 1


def test_totp_required_is_told_apart_from_a_wrong_password_by_its_code(client: TestClient) -> None:
    client.post("/signup", json=SIGNUP)
    secret = client.post("/totp/setup").json()["secret"]
    code = pyotp.TOTP(secret).at(time.time() - 30)
    assert client.post("/totp/confirm", json={"code": code}).status_code == 200
    client.cookies.clear()
    wrong = client.post("/login", json={"login": "alice", "password": "not the password"})
    needed = client.post("/login", json={"login": "alice", "password": PASSWORD})
    assert wrong.status_code == needed.status_code == 403
    assert set(wrong.json()) == {"message"}
    assert needed.json() == {"message": needed.json()["message"], "code": "TOTP_REQUIRED"}
    assert "set-cookie" not in needed.headers
    mistyped = client.post("/login", json={"login": "alice", "password": PASSWORD, "otp": 123456})
    assert mistyped.status_code == 400


def test_openapi_describes_path_and_query_parameters(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    [session_id] = paths["/sessions/{id}"]["delete"]["parameters"]
    assert session_id == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    [limit] = paths["/security-events"]["get"]["parameters"]
    assert limit["in"] == "query" and limit["required"] is False
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    listed = paths["/sessions"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["type"] == "array"
    assert set(paths["/sessions"]) == {"get", "delete"}
