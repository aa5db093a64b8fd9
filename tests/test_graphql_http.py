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


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1" * 5000, "holds an integer of more than 4300 digits"),
        ("-" + "9" * 4301, "holds an integer of more than 4300 digits"),
        ("NaN", "is not valid JSON"),
        ("Infinity", "is not valid JSON"),
        ("-Infinity", "is not valid JSON"),
    ],
)
def test_huge_integers_and_non_json_numbers_in_variables_are_400(
    client: TestClient, value: str, reason: str
) -> None:
    headers = {"content-type": "application/json"}
    body = '{"query": "' + BOOLEAN_QUERY + '", "variables": {"b": ' + value + "}}"
    posted = client.post("/graphql", content=body, headers=headers)
    params = {"query": BOOLEAN_QUERY, "variables": '{"b": ' + value + "}"}
    got = client.get("/graphql", params=params)
    for response, name in ((posted, "body"), (got, "variables")):
        assert response.status_code == 400, value
        assert response.json() == {
            "errors": [{"message": f"The {name} {reason}", "extensions": {"code": "BAD_REQUEST"}}]
        }
    rest = client.post("/login", content='{"login": ' + value + "}", headers=headers)
    assert rest.status_code == 400, value
    assert rest.json() == {"message": f"The body {reason}"}


def test_integer_literal_too_long_to_read_is_refused_plainly(client: TestClient) -> None:
    query = "{ securityEvents(limit: " + "1" * 5000 + ") { kind } }"
    for headers in (PREFERS_NEW, {}):
        response = post(client, {"query": query}, **headers)
        assert response.status_code == (400 if headers else 200)
        assert response.json() == {
            "errors": [
                {
                    "message": "The document holds an integer of more than 4300 digits",
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ]
        }


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


UPLOAD = {"query": "mutation($f: Upload!) { updateAvatar(file: $f) { avatar } }"}
PREFLIGHT = {"apollo-require-preflight": "1"}


def request_error(response: httpx.Response, status: int, media: str = "application/json") -> str:
    """The message of a request refused with `status`, after checking GraphQL's error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == media
    body = response.json()
    assert set(body) == {"errors"}
    (error,) = body["errors"]
    assert set(error) == {"message", "extensions"}
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE" if status == 413 else "BAD_REQUEST"}
    message: str = error["message"]
    assert "Traceback" not in message
    return message


def upload(client: TestClient, operations: str, files_map: str) -> httpx.Response:
    response: httpx.Response = client.post(
        "/graphql",
        data={"operations": operations, "map": files_map},
        files={"0": ("a.png", b"x", "image/png")},
        headers=PREFLIGHT,
    )
    return response


def test_upload_with_two_files_is_400(client: TestClient) -> None:
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(UPLOAD), "map": '{"0": ["variables.f"]}'},
        files=[("0", ("a.png", b"x", "image/png")), ("1", ("b.png", b"y", "image/png"))],
        headers=PREFLIGHT,
    )
    assert "Too many files" in request_error(response, 400)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"anything", "multipart/form-data"),
        (
            b"".join(
                b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i
                for i in range(20)
            )
            + b"--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
            + b"x" * (1024 * 1024 + 1)
            + b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["no boundary", "too many fields", "a field over 1 MiB"],
)
def test_multipart_body_that_cannot_be_read_is_400_in_graphql_shape(
    client: TestClient, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type, **PREFLIGHT}
    response = client.post("/graphql", content=body, headers=headers)
    assert "The multipart body could not be read" in request_error(response, 400)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("operations", "files_map", "message"),
    [
        (
            '{"query": "{ me { username } }", "variables": {"f": null, "deep": '
            + nested(700)
            + "}}",
            '{"0": ["variables.f"]}',
            "The operations is nested more than 32 levels deep",
        ),
        (json.dumps(UPLOAD), '{"0": ' + nested(40) + "}", "The map is nested more than 32"),
        (json.dumps(UPLOAD), '{"0": ' + nested(5000) + "}", "The map is nested more than 32"),
        (json.dumps(UPLOAD), '{"0": ' + nested(20) + "}", "map must be a JSON object"),
        (
            json.dumps(UPLOAD),
            json.dumps({"0": ["variables." + ".".join(["a"] * 100_000)]}),
            "A path in map is longer than 256 characters or 8 keys",
        ),
        (
            json.dumps(UPLOAD),
            json.dumps({"0": ["variables" + ".0" * 8]}),
            "A path in map is longer than 256 characters or 8 keys",
        ),
        (
            json.dumps(UPLOAD),
            json.dumps({"0": ["variables.f"] * 9}),
            "map may name at most 8 places for files",
        ),
        (
            json.dumps({**UPLOAD, "variables": {"f": [None]}}),
            json.dumps({"0": ["variables.f.-1"]}),
            "not in operations",
        ),
    ],
    ids=[
        "operations 700 deep",
        "map 40 deep",
        "map 5000 deep",
        "map 20 deep",
        "path of 100,000 keys",
        "path of 9 keys",
        "nine paths",
        "negative index",
    ],
)
def test_upload_with_nested_or_long_map_or_operations_is_400_in_graphql_shape(
    client: TestClient, operations: str, files_map: str, message: str
) -> None:
    assert message in request_error(upload(client, operations, files_map), 400)


def test_upload_into_a_list_of_variables_still_works(client: TestClient) -> None:
    operations = {**UPLOAD, "variables": {"f": None, "unused": [[None]]}}
    response = upload(client, json.dumps(operations), '{"0": ["variables.unused.0.0"]}')
    # The file went where map said; the document's own $f is still null.
    assert codes(response) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("kwargs", "headers"),
    [
        ({"data": {"query": "{ me { username } }"}}, {}),
        ({"files": {"query": ("q", b"{ me { username } }", "text/plain")}}, PREFLIGHT),
        ({"files": {"query": ("q", b"{ me { username } }", "text/plain")}}, {}),
        ({"content": b'{"query": "{ me { username } }"}'}, {"content-type": "text/plain"}),
        ({"content": b'{"query": "{ me { username } }"}'}, {}),
        ({}, {}),
    ],
    ids=[
        "urlencoded form",
        "multipart form",
        "multipart form without preflight",
        "text",
        "no content type",
        "no body",
    ],
)
def test_post_that_is_not_graphql_json_or_an_upload_is_415(
    client: TestClient, kwargs: dict[str, Any], headers: dict[str, str]
) -> None:
    for accept, media in ((PREFERS_NEW, NEW), ({}, "application/json")):
        response = client.post("/graphql", **kwargs, headers={**headers, **accept})
        assert "Send application/json" in request_error(response, 415, media)


def test_graphql_upload_without_preflight_header_is_still_400(client: TestClient) -> None:
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(UPLOAD), "map": '{"0": ["variables.f"]}'},
        files={"0": ("a.png", b"x", "image/png")},
    )
    assert "Apollo-Require-Preflight" in request_error(response, 400)


def test_upload_over_the_declared_limit_is_413_in_graphql_shape(make_client: MakeClient) -> None:
    client = make_client(avatar_max_bytes=1024)
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(UPLOAD), "map": '{"0": ["variables.f"]}'},
        files={"0": ("a.png", b"x" * 200_000, "image/png")},
        headers=PREFLIGHT,
    )
    assert "larger than" in request_error(response, 413)


def test_graphql_responses_carry_no_store_and_a_content_policy(client: TestClient) -> None:
    for headers in (PREFERS_NEW, {}):
        response = post(client, {"query": "{ me { username } }"}, **headers)
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
