"""Fuzzing: generated REST calls from /openapi.json and arbitrary GraphQL documents.

Whatever arrives, the answer is a documented status with a JSON body: never a 5xx and
never a traceback. Bounded (max_examples) so that `make test` stays quick.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from rest_compat.openapi import openapi_document
from rest_compat.routes import ENDPOINTS
from rest_compat.translator import DOCUMENT_PATH
from tests.servers import Server

FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
PASSWORD = "fuzzing passphrase"
ACCOUNTS = itertools.count()
current = {"login": "fuzzer0"}


def _log_in(base_url: str) -> str:
    """A fresh session for the fuzzer. Examples may rename or delete its account, so when
    the login fails a new account is signed up."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.post("/login", json={"login": current["login"], "password": PASSWORD})
        if response.status_code != 200:
            current["login"] = login = f"fuzzer{next(ACCOUNTS)}"
            body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com"}
            response = client.post("/signup", json=body)
        assert response.status_code == 200, response.text
        return response.cookies["session_id"]


@pytest.fixture(scope="module")
def fuzz_client(module_server: Server) -> Iterator[httpx.Client]:
    cookies = {"session_id": _log_in(module_server.url)}
    with httpx.Client(base_url=module_server.url, cookies=cookies, timeout=30) as client:
        yield client


def _assert_clean(status: int, text: str) -> None:
    assert status < 500, text
    assert "Traceback" not in text
    assert 'File "' not in text


rest_schema = schemathesis.openapi.from_dict(openapi_document())


@rest_schema.auth(refresh_interval=None)
class FuzzerSession:
    """Logs in before every example: an earlier one may have logged out or deleted the account.

    Schemathesis leaves it out where it tests that a missing session is refused.
    """

    base_url = ""

    def get(self, case: Any, context: Any) -> str | None:
        # Schemathesis also asks while collecting examples, before any server is running.
        return _log_in(self.base_url) if self.base_url else None

    def set(self, case: Any, token: str, context: Any) -> None:
        case.cookies = {**(case.cookies or {}), "session_id": token}


@rest_schema.parametrize()
@FUZZ_SETTINGS
def test_rest_endpoints_never_fail_on_generated_input(case: Any, module_server: Server) -> None:
    FuzzerSession.base_url = module_server.url
    response = case.call_and_validate(
        base_url=module_server.url,
        # The contract's rules say more than JSON Schema can (no login inside the password,
        # no common password, DNS label lengths in emails): schema-valid data may be a 400.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    _assert_clean(response.status_code, response.text)


# Values of any JSON type, nested: what a hostile client may put in `variables`.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
INPUT_FIELDS = "login password email username firstname lastname oldPassword newPassword"
input_objects = st.dictionaries(
    st.sampled_from(INPUT_FIELDS.split()),
    json_values | st.text(),
    max_size=5,
)
OPERATIONS = DOCUMENT_PATH.read_text()


@FUZZ_SETTINGS
@given(
    name=st.sampled_from(sorted({endpoint.operation for endpoint in ENDPOINTS})),
    variables=st.dictionaries(st.sampled_from(["input", "file", "x"]), input_objects | json_values),
)
def test_graphql_operations_never_fail_on_arbitrary_variables(
    fuzz_client: httpx.Client, name: str, variables: dict[str, Any]
) -> None:
    fuzz_client.cookies.set("session_id", _log_in(str(fuzz_client.base_url)))
    response = fuzz_client.post(
        "/graphql",
        content=json.dumps({"query": OPERATIONS, "operationName": name, "variables": variables}),
        headers={"content-type": "application/json"},
    )
    _assert_clean(response.status_code, response.text)
    for error in response.json().get("errors", []):
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", error


# Documents of arbitrary shape: random selections, arguments and nesting, valid or not.
names = st.sampled_from(["me", "login", "signup", "input", "username", "__typename", "x"])
scalars = st.integers().map(str) | st.text(max_size=20).map(json.dumps) | st.just("null")


@st.composite
def selections(draw: st.DrawFn, depth: int = 0) -> str:
    fields = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(names)
        if draw(st.booleans()):
            field += f"(input: {{login: {draw(scalars)}, password: {draw(scalars)}}})"
        if depth < 3 and draw(st.booleans()):
            field += " { " + draw(selections(depth + 1)) + " }"
        fields.append(field)
    return " ".join(fields)


@FUZZ_SETTINGS
@given(kind=st.sampled_from(["query", "mutation", "subscription", ""]), body=selections())
def test_graphql_documents_of_any_shape_never_fail(
    fuzz_client: httpx.Client, kind: str, body: str
) -> None:
    response = fuzz_client.post("/graphql", json={"query": f"{kind} {{ {body} }}"})
    _assert_clean(response.status_code, response.text)
    assert response.status_code in (200, 400, 403, 409, 429)


# Whole /graphql requests of any shape: every parameter any JSON type, persisted-query
# extensions well and badly formed, over POST, GET and multipart.
GRAPHQL_STATUSES = (200, 400, 403, 405, 409, 413, 415, 429)
queries = st.sampled_from(
    [
        "{ me { username } }",
        "query Q($b: Boolean!) { me @include(if: $b) { username } }",
        "mutation { logout }",
        "{ nope }",
        "{ me {",
        "",
    ]
)
persisted_queries = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 2, "1", None]) | json_values,
        "sha256Hash": st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=66)
        | json_values,
    },
)
extensions = st.none() | json_values | st.fixed_dictionaries({"persistedQuery": persisted_queries})
parameters = st.fixed_dictionaries(
    {},
    optional={
        "query": queries | json_values,
        "variables": st.dictionaries(st.sampled_from(["b", "i", "x"]), json_values) | json_values,
        "operationName": st.sampled_from(["Q", "Nope"]) | json_values,
        "extensions": extensions,
    },
)
# Numbers Python's json reads and JSON does not allow, or that no integer type can hold.
raw_numbers = st.sampled_from(["1" * 5000, "-" + "9" * 4301, "NaN", "Infinity", "-Infinity"])
accepts = st.sampled_from(
    ["application/json", "application/graphql-response+json", "*/*", "text/html", ""]
)


@FUZZ_SETTINGS
@given(body=parameters | json_values, accept=accepts)
def test_graphql_posts_of_any_shape_never_fail(
    fuzz_client: httpx.Client, body: Any, accept: str
) -> None:
    headers = {"content-type": "application/json", "accept": accept}
    response = fuzz_client.post("/graphql", content=json.dumps(body), headers=headers)
    _assert_clean(response.status_code, response.text)
    assert response.status_code in GRAPHQL_STATUSES


@FUZZ_SETTINGS
@given(params=parameters, accept=accepts)
def test_graphql_gets_of_any_shape_never_fail(
    fuzz_client: httpx.Client, params: dict[str, Any], accept: str
) -> None:
    query = {key: v if isinstance(v, str) else json.dumps(v) for key, v in params.items()}
    response = fuzz_client.get("/graphql", params=query, headers={"accept": accept})
    _assert_clean(response.status_code, response.text)
    assert response.status_code in GRAPHQL_STATUSES


@FUZZ_SETTINGS
@given(number=raw_numbers, where=st.sampled_from(["variables", "extensions"]))
def test_graphql_numbers_json_cannot_hold_are_400(
    fuzz_client: httpx.Client, number: str, where: str
) -> None:
    body = '{"query": "{ me { username } }", "' + where + '": {"b": ' + number + "}}"
    headers = {"content-type": "application/json"}
    response = fuzz_client.post("/graphql", content=body, headers=headers)
    _assert_clean(response.status_code, response.text)
    assert response.status_code == 400
    params = {"query": "{ me { username } }", where: '{"b": ' + number + "}"}
    response = fuzz_client.get("/graphql", params=params)
    _assert_clean(response.status_code, response.text)
    assert response.status_code == 400


@FUZZ_SETTINGS
@given(operations=parameters | json_values, files_map=json_values | st.text(max_size=30))
def test_graphql_uploads_of_any_shape_never_fail(
    fuzz_client: httpx.Client, operations: Any, files_map: Any
) -> None:
    response = fuzz_client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(files_map)},
        files={"0": ("a.png", b"not an image", "image/png")},
        headers={"apollo-require-preflight": "1"},
    )
    _assert_clean(response.status_code, response.text)
    assert response.status_code in GRAPHQL_STATUSES
