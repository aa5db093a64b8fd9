"""/graphql to the GraphQL-over-HTTP specification: media types, status codes, request errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from app.server import create_app
from schema.documents import MAX_QUERY_CHARS
from tests.types import MakeClient, MakeSettings

NEW = "application/graphql-response+json"
PREFERS_NEW = {"accept": f"{NEW}, application/json;q=0.9"}
PASSWORD = "correct horse battery"
SIGNUP = "mutation($i: SignupInput!) { signup(input: $i) { username } }"
BOOLEAN_QUERY = "query($b: Boolean!) { me @include(if: $b) { username } }"


def post(client: TestClient, body: object, **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(
        "/graphql",
        content=json.dumps(body),
        headers={"content-type": "application/json", **headers},
    )
    return response


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


NOT_RUN = [
    pytest.param({"query": "{ me {"}, "GRAPHQL_PARSE_FAILED", id="parse"),
    pytest.param({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED", id="validation"),
    pytest.param(
        {"query": "{ " + "me { username } " * 30 + "}"},
        "GRAPHQL_VALIDATION_FAILED",
        id="cost",
    ),
    pytest.param(
        {"query": SIGNUP, "variables": {"i": {"login": 1}}}, "BAD_USER_INPUT", id="variables"
    ),
    pytest.param(
        {"query": "query A { me { username } } query B { me { email } }"},
        "BAD_REQUEST",
        id="no operation name",
    ),
    pytest.param(
        {"query": "query A { me { username } }", "operationName": "B"},
        "BAD_REQUEST",
        id="unknown operation",
    ),
]


@pytest.mark.parametrize(("body", "code"), NOT_RUN)
def test_operation_that_never_ran_is_400_without_data_for_the_new_media_type(
    client: TestClient, body: dict[str, Any], code: str
) -> None:
    response = post(client, body, **PREFERS_NEW)
    assert response.status_code == 400
    assert response.headers["content-type"] == NEW
    assert "data" not in response.json()
    assert codes(response)[0] == code


@pytest.mark.parametrize(("body", "code"), NOT_RUN)
def test_operation_that_never_ran_is_200_without_data_for_plain_json(
    client: TestClient, body: dict[str, Any], code: str
) -> None:
    for accept in ("application/json", "*/*", None):
        response = post(client, body, **({"accept": accept} if accept else {}))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert "data" not in response.json()
        assert codes(response)[0] == code


def test_operation_that_started_is_200_with_data_for_both_media_types(client: TestClient) -> None:
    for headers in (PREFERS_NEW, {"accept": "application/json"}):
        response = post(client, {"query": "mutation { logout }"}, **headers)
        assert response.status_code == 200
        assert response.json()["data"] is None
        assert codes(response) == ["UNAUTHENTICATED"]
        ok = post(client, {"query": "{ me { username } }"}, **headers)
        assert ok.status_code == 200
        assert ok.json() == {"data": {"me": None}}


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (NEW, NEW),
        (f"{NEW}, application/json", NEW),
        (f"application/json;q=0.9, {NEW}", NEW),
        (f"application/json, {NEW}", "application/json"),
        (f"{NEW};q=0.5, application/json", "application/json"),
        (f"{NEW};q=0", "application/json"),
        ("*/*", "application/json"),
        ("text/plain", "application/json"),
    ],
)
def test_accept_header_chooses_the_media_type(client: TestClient, accept: str, media: str) -> None:
    response = post(client, {"query": "{ nope }"}, accept=accept)
    assert response.headers["content-type"] == media
    assert response.status_code == (400 if media == NEW else 200)


@pytest.mark.parametrize("accept", [NEW, "application/json"])
def test_mutation_over_get_is_405_allowing_post(client: TestClient, accept: str) -> None:
    for query in ("mutation { logout }", "mutation{logout}"):
        response = client.get("/graphql", params={"query": query}, headers={"accept": accept})
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert "data" not in response.json()


@pytest.mark.parametrize("extensions", ["string", 0, 1.5, False, ["array"]])
def test_extensions_that_is_not_an_object_is_400(client: TestClient, extensions: object) -> None:
    response = post(client, {"query": "{ me { username } }", "extensions": extensions})
    assert response.status_code == 400
    assert "data" not in response.json()
    params = {"query": "{ me { username } }", "extensions": json.dumps(extensions)}
    assert client.get("/graphql", params=params).status_code == 400


def test_extensions_null_or_an_object_is_accepted(client: TestClient) -> None:
    for extensions in (None, {"some": "value"}):
        response = post(client, {"query": "{ me { username } }", "extensions": extensions})
        assert response.json() == {"data": {"me": None}}


@pytest.mark.parametrize(
    "body",
    [
        [{"query": "{ me { username } }"}],
        {"query": ["{ me { username } }"]},
        {"query": "{ me { username } }", "variables": "x"},
        {"query": "{ me { username } }", "operationName": 1},
        {"notquery": "{ me { username } }"},
        "{ me { username } }",
    ],
)
def test_request_error_is_400_without_data(client: TestClient, body: object) -> None:
    for headers in (PREFERS_NEW, {}):
        response = post(client, body, **headers)
        assert response.status_code == 400
        assert "data" not in response.json()
        assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($x: String) { me { username } }", {}),
        ("mutation { signup(input: $i) { username } }", {}),
        ("query($x: Profile) { me { username } }", {}),
        ("mutation($i: LoginInput!) { signup(input: $i) { username } }", {}),
        ("mutation($i: String!) { signup(input: $i) { username } }", {}),
    ],
    ids=["never used", "not defined", "non-input type", "another input type", "scalar for input"],
)
def test_variable_definition_errors_are_validation_errors(
    client: TestClient, query: str, variables: dict[str, Any]
) -> None:
    response = post(client, {"query": query, "variables": variables})
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"] * len(codes(response))
    assert any("$" in error["message"] for error in response.json()["errors"]), response.json()


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"i": None},
        {"i": "not an object"},
        {"i": {"login": 1, "password": PASSWORD, "email": "a@b.co"}},
        {"i": {"login": "alice", "password": PASSWORD, "email": "a@b.co", "extra": 1}},
    ],
)
def test_variable_values_that_do_not_coerce_are_bad_user_input(
    client: TestClient, variables: dict[str, Any]
) -> None:
    response = post(client, {"query": SIGNUP, "variables": variables})
    assert "data" not in response.json()
    assert set(codes(response)) == {"BAD_USER_INPUT"}


def test_query_text_over_64_kib_is_413_before_parsing(client: TestClient) -> None:
    too_long = "{ me { username } }" + " " * (MAX_QUERY_CHARS - 18)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    for response in (
        post(client, {"query": too_long}),
        post(client, {"query": too_long, "extensions": persisted}),
    ):
        assert response.status_code == 413
        assert codes(response) == ["PAYLOAD_TOO_LARGE"]
    assert post(client, {"query": too_long[:-1]}).json() == {"data": {"me": None}}


def test_query_text_over_64_kib_in_a_get_is_413(make_settings: MakeSettings) -> None:
    # httpx refuses URLs this long (and uvicorn request lines past about 64 KiB): the
    # request goes to the application as the server would hand it over.
    app = create_app(make_settings())
    text = "{ me { username } } #" + "x" * (MAX_QUERY_CHARS - 20)
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": urlencode({"query": text}).encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        await app(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(message.get("body", b"") for message in sent[1:]))
    assert body["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_huge_integers_and_non_json_numbers_in_variables_are_400(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    for value in ("1" * 5000, "NaN", "Infinity", "-Infinity"):
        body = '{"query": "' + BOOLEAN_QUERY + '", "variables": {"b": ' + value + "}}"
        response = client.post("/graphql", content=body, headers=headers)
        assert response.status_code == 400, value
        assert codes(response) == ["BAD_REQUEST"]
        params = {"query": BOOLEAN_QUERY, "variables": '{"b": ' + value + "}"}
        assert client.get("/graphql", params=params).status_code == 400, value
        rest = client.post("/login", content='{"login": ' + value + "}", headers=headers)
        assert rest.status_code == 400, value


def test_a_just_too_large_integer_is_bad_user_input(client: TestClient) -> None:
    body = {"query": BOOLEAN_QUERY, "variables": {"b": int("9" * 4000)}}
    response = post(client, body)
    assert response.status_code == 200
    assert codes(response) == ["BAD_USER_INPUT"]


def test_ten_aliased_signups_create_no_account(client: TestClient) -> None:
    signups = " ".join(
        f's{i}: signup(input: {{login: "user{i}", password: "{PASSWORD}", '
        f'email: "user{i}@example.com"}}) {{ username }}'
        for i in range(10)
    )
    response = post(client, {"query": f"mutation {{ {signups} }}"})
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "set-cookie" not in response.headers
    for i in range(10):
        login = {"login": f"user{i}", "password": PASSWORD}
        assert client.post("/login", json=login).status_code == 403


def test_ten_aliased_logins_start_no_session(client: TestClient) -> None:
    client.post("/signup", json={"login": "erin", "password": PASSWORD, "email": "e@b.co"})
    client.cookies.clear()
    logins = " ".join(
        f'l{i}: login(input: {{login: "erin", password: "{PASSWORD}"}}) {{ username }}'
        for i in range(10)
    )
    response = post(client, {"query": f"mutation {{ {logins} }}"})
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "set-cookie" not in response.headers


def test_no_suggestions_over_http_when_introspection_is_off(make_client: MakeClient) -> None:
    misspelt = [
        {"query": "{ mee { username } }"},
        {"query": SIGNUP, "variables": {"i": {"logn": "a", "password": "b", "email": "c"}}},
        {"query": "mutation { chngePassword }"},
    ]
    for introspection in (True, False):
        client = make_client(graphql_introspection=introspection)
        text = " ".join(post(client, body).text for body in misspelt)
        assert ("Did you mean" in text) is introspection


@pytest.mark.parametrize(
    "files_map",
    [
        "not json",
        '["variables.f"]',
        '{"0": "variables.f"}',
        '{"0": [1]}',
        '{"0": ["variables.f.x.y"]}',
        '{"0": ["query"]}',
        '{"0": ["variables.0"]}',
        '{"1": ["variables.f"]}',
    ],
)
def test_malformed_upload_map_is_400(client: TestClient, files_map: str) -> None:
    operations = {"query": "mutation($f: Upload!) { updateAvatar(file: $f) { avatar } }"}
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": files_map},
        files={"0": ("a.png", b"x", "image/png")},
        headers={"apollo-require-preflight": "1"},
    )
    assert response.status_code == 400, response.text
    assert codes(response) == ["BAD_REQUEST"]


def test_upload_with_two_files_is_400(client: TestClient) -> None:
    operations = {"query": "mutation($f: Upload!) { updateAvatar(file: $f) { avatar } }"}
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": '{"0": ["variables.f"]}'},
        files=[("0", ("a.png", b"x", "image/png")), ("1", ("b.png", b"y", "image/png"))],
        headers={"apollo-require-preflight": "1"},
    )
    assert response.status_code == 400


def test_graphql_responses_carry_no_store_and_a_content_policy(client: TestClient) -> None:
    for headers in (PREFERS_NEW, {}):
        response = post(client, {"query": "{ me { username } }"}, **headers)
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
