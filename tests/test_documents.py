"""One set of document limits: the prepared fast path and Strawberry's path refuse alike."""

from __future__ import annotations

import asyncio

import pytest

from schema.api import Schema
from tests.types import MakeClient

ALIASES = " ".join(f"a{i}: me {{ username }}" for i in range(11))
REFUSED = [
    "{ me {",
    "{ me { " + "username " * 2100 + "} }",
    f"{{ {ALIASES} }}",
    "{ nope }",
    "{ me { username } } { me { email } }",
    "query($x: Int) { me { username } }",
    'mutation { login(input: {login: "a"}) { username } }',
]
INTROSPECTION = "{ __schema { queryType { name } } }"


@pytest.mark.parametrize("introspection", [True, False])
def test_prepared_and_strawberry_paths_give_the_same_errors(introspection: bool) -> None:
    schema = Schema(introspection=introspection)
    refused = REFUSED if introspection else [*REFUSED, INTROSPECTION]
    for query in refused:
        prepared = schema.documents.prepare(query)
        fast = [error.message for error in (*prepared.parse_errors, *prepared.validation_errors)]
        result = asyncio.run(schema.execute(query))
        full = [error.message for error in result.errors or ()]
        assert fast == full, query
        assert schema.documents.operation(query, None) is None
    assert (schema.documents.operation(INTROSPECTION, None) is None) is not introspection


@pytest.mark.parametrize("introspection", [True, False])
def test_post_and_get_answer_every_query_alike(
    make_client: MakeClient, introspection: bool
) -> None:
    client = make_client(graphql_introspection=introspection)
    accepted = ["{ me { username } }", "{ a: me { username } b: me { email } }"]
    for query in [*REFUSED, INTROSPECTION, *accepted]:
        if query.startswith("mutation"):
            continue
        posted = client.post("/graphql", json={"query": query})
        got = client.get("/graphql", params={"query": query})
        assert posted.json() == got.json(), query
