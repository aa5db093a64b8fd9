"""What only the GraphQL face does: transport rules, limits, masking, the IDE."""

from __future__ import annotations

import json
import logging
import time

import pyotp
import pytest
from starlette.testclient import TestClient

from core import accounts
from core.config import Settings
from schema.api import create_schema
from tests.types import MakeClient

PASSWORD = "correct horse battery"


def gql(client: TestClient, query: str, **variables: object) -> dict[str, object]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def first_error_code(body: dict[str, object]) -> str:
    errors = body["errors"]
    assert isinstance(errors, list)
    return str(errors[0]["extensions"]["code"])


def test_me_is_null_when_logged_out(client: TestClient) -> None:
    assert gql(client, "{ me { username } }") == {"data": {"me": None}}


def test_query_over_get_works_but_mutation_over_get_is_refused(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "{ me { username } }"})
    assert response.json() == {"data": {"me": None}}
    response = client.get("/graphql", params={"query": "mutation { logout }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "errors" in response.json()


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE"])
def test_other_methods_are_405_naming_get_and_post(client: TestClient, method: str) -> None:
    response = client.request(method, "/graphql")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


def test_graphiql_is_served_to_browsers(client: TestClient) -> None:
    response = client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_batched_array_is_refused(client: TestClient) -> None:
    batch = [{"query": "{ me { username } }"}, {"query": "{ me { email } }"}]
    response = client.post("/graphql", json=batch)
    assert response.status_code == 400


def test_post_must_be_json_or_multipart(client: TestClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post(
            "/graphql",
            content=json.dumps({"query": "mutation { logout }"}),
            headers={"content-type": content_type},
        )
        assert response.status_code == 415, content_type


def test_multipart_without_preflight_header_is_refused(client: TestClient) -> None:
    operations = {"query": "mutation($f: Upload!) { updateAvatar(file: $f) { avatar } }"}
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("a.png", b"x", "image/png")},
    )
    assert response.status_code == 400
    assert "Preflight" in response.json()["errors"][0]["message"]


def test_eleven_aliases_are_refused_before_execution(client: TestClient) -> None:
    aliases = " ".join(f"a{i}: me {{ username }}" for i in range(11))
    body = gql(client, f"{{ {aliases} }}")
    assert body.get("data") is None
    assert first_error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    ten = " ".join(f"a{i}: me {{ username }}" for i in range(10))
    assert "errors" not in gql(client, f"{{ {ten} }}")


def test_document_over_2000_tokens_is_refused(client: TestClient) -> None:
    fields = " ".join(["username"] * 2100)
    body = gql(client, f"{{ me {{ {fields} }} }}")
    assert body.get("data") is None
    assert "token" in json.dumps(body["errors"]).lower()


def test_introspection_can_be_switched_off(make_client: MakeClient) -> None:
    on = make_client()
    assert "errors" not in gql(on, "{ __schema { queryType { name } } }")
    off = make_client(graphql_introspection=False)
    assert "errors" in gql(off, "{ __schema { queryType { name } } }")


def test_errors_carry_contract_codes(client: TestClient) -> None:
    assert first_error_code(gql(client, "mutation { logout }")) == "UNAUTHENTICATED"
    signup = "mutation($i: SignupInput!) { signup(input: $i) { username } }"
    bad = gql(client, signup, i={"login": "x", "password": PASSWORD, "email": "a@example.com"})
    assert first_error_code(bad) == "BAD_USER_INPUT"
    assert bad["errors"][0]["extensions"]["field"] == "login"  # type: ignore[index]
    wrong_type = gql(client, signup, i={"login": 1, "password": PASSWORD, "email": "x"})
    assert first_error_code(wrong_type) == "BAD_USER_INPUT"
    assert first_error_code(gql(client, "{ nope }")) == "GRAPHQL_VALIDATION_FAILED"
    assert first_error_code(gql(client, "{ me {")) == "GRAPHQL_PARSE_FAILED"


def test_unexpected_error_is_masked_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail: SELECT * FROM users")

    monkeypatch.setattr(accounts, "signup", broken)
    signup = "mutation($i: SignupInput!) { signup(input: $i) { username } }"
    with caplog.at_level(logging.ERROR):
        body = gql(client, signup, i={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
        rest = client.post(
            "/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"}
        )
    assert first_error_code(body) == "INTERNAL_SERVER_ERROR"
    assert "secret" not in json.dumps(body)
    assert rest.status_code == 500
    assert "secret" not in rest.text
    assert "secret detail" in caplog.text
    assert "Traceback" in caplog.text


def test_password_never_appears_in_logs(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
        client.post("/login", json={"login": "alice", "password": "wrong password here"})
    assert PASSWORD not in caplog.text
    assert "wrong password here" not in caplog.text
    assert client.cookies["session_id"] not in caplog.text


def test_json_nested_too_deeply_to_decode_is_400(client: TestClient) -> None:
    too_deep = "[" * 3000 + "]" * 3000
    query = '{"query": "{ me { username } }", "variables": {"v": ' + too_deep + "}}"
    headers = {"content-type": "application/json"}
    for body in (too_deep, query):
        response = client.post("/graphql", content=body, headers=headers)
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    params = {"query": "{ me { username } }", "variables": too_deep}
    assert client.get("/graphql", params=params).status_code == 400


def test_schema_has_the_contracts_account_security_shapes() -> None:
    sdl = create_schema(Settings()).as_str()
    for line in (
        "sessions: [Session!]!",
        "securityEvents(limit: Int! = 50): [SecurityEvent!]!",
        "revokeSession(id: ID!): Boolean!",
        "revokeOtherSessions: Int!",
        "startTotpSetup: TotpSetup!",
        "confirmTotp(code: String!): [String!]!",
        "disableTotp(password: String!): Boolean!",
        "otp: String",
        "createdAt: DateTime!",
        "lastSeenAt: DateTime!",
        "expiresAt: DateTime!",
        "userAgent: String!",
        "ipAddress: String!",
        "current: Boolean!",
        "kind: SecurityEventKind!",
        "at: DateTime!",
        "otpauthUrl: String!",
    ):
        assert line in sdl, line
    kinds = (
        "SIGNUP LOGIN LOGIN_FAILED LOGOUT PASSWORD_CHANGED PASSWORD_RESET_REQUESTED "
        "PASSWORD_RESET EMAIL_CHANGED EMAIL_VERIFIED SESSION_REVOKED TOTP_ENABLED "
        "TOTP_DISABLED RECOVERY_CODE_USED"
    )
    enum = sdl.split("enum SecurityEventKind {")[1].split("}")[0].split()
    assert enum == kinds.split()
    assert "id: ID!" in sdl.split("type Session {")[1].split("}")[0]


def test_wrong_code_at_login_and_a_missing_one_are_both_totp_required(
    client: TestClient,
) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    secret = gql(client, "mutation { startTotpSetup { secret } }")
    assert isinstance(secret["data"], dict)
    totp = pyotp.TOTP(secret["data"]["startTotpSetup"]["secret"])
    gql(client, "mutation($c: String!) { confirmTotp(code: $c) }", c=totp.at(time.time() - 30))
    login = "mutation($i: LoginInput!) { login(input: $i) { username } }"
    for extra in ({}, {"otp": "12345x"}):
        body = gql(client, login, i={"login": "alice", "password": PASSWORD, **extra})
        assert body["data"] is None
        assert first_error_code(body) == "TOTP_REQUIRED"
