"""One set of document limits: every path refuses alike, before the expensive work starts."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sys
import threading
import types
from typing import Any

import graphql
import pytest
from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_schema, parse

from core import events, totp
from core.config import SESSIONS_PER_USER_MAX
from schema import documents
from schema.api import Schema
from schema.cost import Figures, measure
from schema.documents import (
    CACHE_BYTES,
    MAX_QUERY_CHARS,
    Prepared,
    QueryTooLarge,
    entry_bytes,
)
from tests.asgi import Call
from tests.asgi import responses as asyncio_responses
from tests.documents_corpus import fan_out, hostile_documents, introspection_queries
from tests.types import MakeClient, MakeSettings

ALIASES = " ".join(f"a{i}: me {{ username }}" for i in range(11))
LOGIN = 'login(input: {login: "erin", password: "correct horse"}) { username }'
REFUSED = [
    "{ me {",
    "{ me { " + "username " * 2100 + "} }",
    f"{{ {ALIASES} }}",
    "{ nope }",
    "{ me { username } } { me { email } }",
    "query($x: Int) { me { username } }",
    'mutation { login(input: {login: "a"}) { username } }',
    "{ " + "me { username } " * 30 + "}",
    f"mutation {{ a: {LOGIN} b: {LOGIN} }}",
]
INTROSPECTION = "{ __schema { queryType { name } } }"


@pytest.mark.parametrize("introspection", [True, False])
def test_prepared_and_strawberry_paths_give_the_same_errors(introspection: bool) -> None:
    schema = Schema(introspection=introspection)
    refused = REFUSED if introspection else [*REFUSED, INTROSPECTION]
    for query in refused:
        prepared = schema.documents.prepare(query)
        fast = [error.message for error in prepared.errors]
        result = asyncio.run(schema.execute(query))
        full = [error.message for error in result.errors or ()]
        assert fast, query
        assert fast == full, query
    accepted = schema.documents.prepare(INTROSPECTION)
    assert bool(accepted.errors) is not introspection


def test_both_paths_refuse_a_text_over_the_limit_before_parsing_or_caching() -> None:
    schema = Schema(introspection=True)
    longest = "{ me { username } }" + " " * (MAX_QUERY_CHARS - 19)
    assert schema.documents.prepare(longest).errors == ()
    before = len(schema.documents.cache)
    with pytest.raises(QueryTooLarge):
        schema.documents.prepare(longest + " ")
    assert len(schema.documents.cache) == before
    result = asyncio.run(schema.execute(longest + " "))
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "PAYLOAD_TOO_LARGE"}


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


def test_every_standard_introspection_query_is_accepted() -> None:
    schema = Schema(introspection=True)
    for name, query in introspection_queries().items():
        assert schema.documents.prepare(query).errors == (), name


def _counting_validation(monkeypatch: pytest.MonkeyPatch) -> list[DocumentNode]:
    """Records each document graphql-core's validation is asked to validate."""
    validated: list[DocumentNode] = []
    real = graphql.validate

    def counting(
        schema: GraphQLSchema, document: DocumentNode, *args: Any, **kw: Any
    ) -> list[GraphQLError]:
        validated.append(document)
        return real(schema, document, *args, **kw)

    monkeypatch.setattr(documents, "validate", counting)
    return validated


@pytest.mark.parametrize("name", sorted(hostile_documents()))
def test_expensive_document_is_refused_before_validation(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = _counting_validation(monkeypatch)
    prepared = Schema(introspection=True).documents.prepare(hostile_documents()[name])
    assert prepared.parse_errors == ()
    assert [error.extensions for error in prepared.validation_errors] == [
        {"code": "GRAPHQL_VALIDATION_FAILED"}
    ]
    assert validated == []


@pytest.mark.parametrize(
    "document",
    [
        f"mutation {{ a: {LOGIN} b: {LOGIN} }}",
        f"mutation {{ {LOGIN} signup(input: $i) {{ username }} }}",
        f"mutation A {{ {LOGIN} }} mutation B {{ {LOGIN} }}",
        f"mutation {{ ...L logout }} fragment L on Mutation {{ {LOGIN} }} "
        f"mutation Other {{ {LOGIN} }}",
        f"mutation {{ ... on Mutation {{ {LOGIN} }} ... {{ {LOGIN} }} }}",
        f"mutation {{ {LOGIN} }} fragment Unused on Mutation {{ {LOGIN} }}",
        # Operations the schema does not have yet count already.
        f"mutation {{ {LOGIN} resetPassword(input: {{}}) }}",
        'mutation { disableTotp(password: "x") confirmTotp(code: "1") }',
        'mutation { changePassword(input: {oldPassword: "a", newPassword: "b"}) '
        'updateAvatar(file: "x") { username } }',
    ],
)
def test_document_with_two_credential_operations_is_refused(
    document: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = _counting_validation(monkeypatch)
    prepared = Schema(introspection=True).documents.prepare(document)
    assert len(prepared.validation_errors) == 1
    assert "at most 1 of" in prepared.validation_errors[0].message
    assert validated == []


def test_document_with_one_credential_operation_is_accepted() -> None:
    schema = Schema(introspection=True)
    for document in (
        f"mutation {{ {LOGIN} logout }}",
        f"mutation {{ ...L }} fragment L on Mutation {{ {LOGIN} }}",
        f"mutation In {{ {LOGIN} }} query Me {{ me {{ username }} }}",
    ):
        assert schema.documents.prepare(document).errors == (), document


def test_no_suggestions_when_introspection_is_off() -> None:
    misspelt = [
        "{ mee { username } }",
        "{ me { usernme } }",
        "mutation($i: LoginInpt!) { login(input: $i) { username } }",
        'mutation { login(input: {logn: "a", password: "b"}) { username } }',
    ]
    for introspection in (True, False):
        schema = Schema(introspection=introspection)
        messages = " ".join(
            error.message for query in misspelt for error in schema.documents.prepare(query).errors
        )
        assert ("Did you mean" in messages) is introspection


def deep_size(root: object) -> int:
    """The bytes of every object reachable from `root` (classes and functions aside)."""
    shared = (bool, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    pending = [root]
    total = 0
    while pending:
        item = pending.pop()
        if id(item) in seen or item is None or isinstance(item, shared):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        pending.extend(gc.get_referents(item))
    return total


def _ordinary_documents() -> list[str]:
    return [
        "{ me { username } }",
        "{ nope }",
        "{ me {",
        '{ __type(name: "' + "x" * 60_000 + '") { name } }',
        '{ __type(name: """' + "x" * 60_000 + '""") { name } }',
        '{ __type(name: "' + "\\u0041" * 10_000 + '") { name } }',
        "{ __typename } #" + "x" * 60_000,
        "{ " + " ".join(f"a{i}: nope{i}" for i in range(300)) + " }",
        "{ __type(" + " ".join(f"a{i}: 1" for i in range(600)) + ") { name } }",
        "{ " + "__typename " * 1990 + "}",
    ]


def test_cache_entry_estimate_covers_what_an_entry_holds() -> None:
    schema = Schema(introspection=True)
    texts = [
        *_ordinary_documents(),
        *hostile_documents().values(),
        *list(introspection_queries().values())[:4],
    ]
    for text in texts:
        prepared = schema.documents._prepare(text)
        assert deep_size((text, prepared)) <= entry_bytes(text, prepared), text[:60]


def test_cache_stays_within_its_byte_bound_under_padded_queries() -> None:
    schema = Schema(introspection=True)
    pad = MAX_QUERY_CHARS - 40
    for i in range(300):
        # Comments are not tokens: each text is the longest allowed, issue 11's padding.
        schema.documents.prepare(f"{{ nope{i} }} #😀" + "x" * pad)
    cache = schema.documents.cache
    assert 0 < cache.bytes <= CACHE_BYTES
    entries: list[tuple[str, Prepared]] = [
        (key, value) for key, (value, _) in cache._entries.items()
    ]
    assert deep_size(entries) <= CACHE_BYTES
    assert len(cache) < 300


def test_parsed_documents_are_reused_from_the_cache() -> None:
    schema = Schema(introspection=True)
    first = schema.documents.prepare("{ me { username } }")
    assert schema.documents.prepare("{ me { username } }") is first
    assert first.document is not None
    assert isinstance(parse("{ me { username } }"), DocumentNode)


def _prepared_where(schema: Schema) -> list[str]:
    """The names of the threads that prepare `schema`'s new documents, one per text."""
    threads: list[str] = []
    prepare = schema.documents._prepare

    def recorded(query: str) -> Prepared:
        threads.append(threading.current_thread().name)
        return prepare(query)

    schema.documents._prepare = recorded  # type: ignore[method-assign]
    return threads


def test_new_documents_are_prepared_off_the_event_loop_once_per_text() -> None:
    schema = Schema(introspection=True)
    threads = _prepared_where(schema)
    widest = "{ " + "me { username } " * 499 + "}"

    async def send() -> list[Prepared]:
        try:
            same = [schema.documents.prepare_new(widest, client="192.0.2.1") for _ in range(30)]
            return await asyncio.gather(*same)
        finally:
            schema.documents.close()

    answers = asyncio.run(send())
    assert len(threads) == 1 and threads[0].startswith("graphql-documents")
    assert all(answer is answers[0] for answer in answers)  # thirty requests, one parse
    assert answers[0].validation_errors
    assert schema.documents.prepare(widest) is answers[0]  # and then from the cache


def test_a_client_flooding_new_documents_is_refused_and_others_are_not(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(trusted_proxies="127.0.0.0/8")
    widest = "{ " + "me { username } " * 499 + "}"

    def sent_by(address: str, n: int) -> Call:
        body = {"query": f"{widest} # {n}"}  # each one new
        return Call("POST", "/graphql", body, {"x-forwarded-for": address})

    flood = [sent_by("198.51.100.7", n) for n in range(60)]
    answers = asyncio_responses(settings, [*flood, sent_by("203.0.113.9", 60)])
    *flooded, other = answers
    refused = [answer for answer in flooded if answer.status_code == 429]
    assert len(refused) >= 60 - 2 * documents.NEW_DOCUMENTS_PER_CLIENT
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS"
    assert {answer.status_code for answer in flooded} == {200, 429}
    assert other.status_code == 200  # its turn came before the flood's queue
    assert other.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_the_cache_keeps_no_tokens_and_no_refused_syntax_trees() -> None:
    # What the garbage collector walks on each full collection: a cache full of refused
    # 2,000-token documents held 187,575 objects (a 134 ms collection here) before.
    schema = Schema(introspection=True)
    gc.collect()
    before = len(gc.get_objects())
    widest = "{ " + "me { username } " * 499 + "}"
    for i in range(60):
        refused = schema.documents.prepare(f"{widest} #{i}")
        assert refused.document is None
        (error,) = refused.validation_errors
        assert error.nodes is None  # the error keeps no part of the document
    gc.collect()
    assert len(gc.get_objects()) - before < 2_000
    accepted = schema.documents.prepare("query Me { me { username } }")
    assert accepted.document is not None and accepted.document.loc is not None
    assert accepted.document.loc.start_token is None
    (operation,) = accepted.document.definitions
    assert operation.loc is not None and operation.loc.start == 0


def test_errors_of_a_cached_document_still_say_where_they_are(make_client: MakeClient) -> None:
    client = make_client()
    for _ in range(2):  # prepared, then answered from the cache
        answer = client.post("/graphql", json={"query": "query S {\n  sessions { id }\n}"})
        (error,) = answer.json()["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["locations"] == [{"line": 2, "column": 3}]
        refused = client.post("/graphql", json={"query": "{\n  nope\n}"}).json()
        assert refused["errors"][0]["locations"] == [{"line": 2, "column": 3}]


def _figures(document: str, *, unlimited: bool = False) -> Figures:
    """The pre-pass's figures for `document` under the service's budget (or none at all)."""
    prepared = Schema(introspection=True).documents
    budget = prepared.budget
    if unlimited:
        huge = 2**64
        budget = dataclasses.replace(
            budget, selections=huge, depth=huge, cost=huge, pairs=huge, fragment_pairs=huge
        )
    return measure(parse(document), prepared.schema, budget, prepared.lengths)


def test_fragment_fan_out_multiplies_without_being_expanded() -> None:
    levels = 40
    document = fan_out(levels)
    # Each fragment spreads two of the next level: its selections are its two spreads and
    # what each of them brings; the last level selects one field.
    per_fragment = 1
    for _ in range(levels):
        per_fragment = 2 * (1 + per_fragment)
    figures = _figures(document, unlimited=True)
    # `me`, its spread of F0 and F0 expanded, and G0 (which nothing spreads, but validation
    # reads): 2^42 and more, measured by walking each of the 82 fragments once.
    assert figures.selections == 1 + 1 + 2 * per_fragment
    assert figures.selections > 2**42


@pytest.mark.parametrize(
    ("selection", "length"),
    [
        ("securityEvents { kind }", events.LIMIT_DEFAULT),
        ("securityEvents(limit: 7) { kind }", 7),
        (f"securityEvents(limit: {events.LIMIT_MAX}) {{ kind }}", events.LIMIT_MAX),
        ("securityEvents(limit: 100000) { kind }", events.LIMIT_MAX),
        ("securityEvents(limit: $n) { kind }", events.LIMIT_MAX),
        ("sessions { id }", SESSIONS_PER_USER_MAX),
    ],
)
def test_lists_are_as_long_as_their_bound_says(selection: str, length: int) -> None:
    assert _figures(f"query($n: Int!) {{ {selection} }}").cost == length
    assert _figures(f"query($n: Int!) {{ {selection} }}".replace("kind", "kind at")).cost == (
        2 * length if "kind" in selection else length
    )


def test_recovery_codes_are_a_list_of_their_count() -> None:
    assert _figures('mutation { confirmTotp(code: "1") }').cost == totp.RECOVERY_CODE_COUNT


def test_a_list_field_without_a_bound_stops_the_schema_from_starting() -> None:
    schema = build_schema("type Query { me: Int items: [Int!] more: [[String]]! }")
    with pytest.raises(ValueError, match=r"Query\.items, Query\.more"):
        documents.Documents(schema, introspection=True)


def test_every_spread_and_argument_value_counts_as_a_selection() -> None:
    assert _figures("{ me { username } }").selections == 2
    assert _figures("{ me { ...F ...F } } fragment F on Profile { username }").selections == 5
    assert _figures("{ securityEvents(limit: 5) { kind } }").selections == 3
    assert _figures("{ me @include(if: true) { username } }").selections == 3
    assert _figures("query($a: Int = 1) { me { username } }").selections == 3
    assert _figures('{ __type(name: "a") { ... on __Type { name } } }').selections == 4


def test_integer_literal_too_long_to_read_is_refused_plainly() -> None:
    prepared = Schema(introspection=True).documents
    for literal in ("1" * 5000, "-" + "9" * 4301):
        (error,) = prepared.prepare(f"{{ securityEvents(limit: {literal}) {{ kind }} }}").errors
        assert error.message == "The document holds an integer of more than 4300 digits"
        assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    (error,) = prepared.prepare("{ securityEvents(limit: " + "9" * 4300 + ") { kind } }").errors
    assert "sys." not in error.message
    assert "non 32-bit signed integer" in error.message


def test_distinct_fragments_spread_together_pass_the_pre_pass_up_to_their_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    validated = _counting_validation(monkeypatch)

    def side_by_side(count: int) -> str:
        spreads = " ".join(f"...F{i}" for i in range(count))
        fragments = " ".join(f"fragment F{i} on Query {{ ...Elsewhere }}" for i in range(count))
        return f"{{ {spreads} }} {fragments}"

    prepared = Schema(introspection=True).documents
    # 45 side by side (990 pairs) reach validation, which finds the fragment they spread
    # missing; 46 (1035 pairs) do not.
    assert "Unknown fragment 'Elsewhere'" in prepared.prepare(side_by_side(45)).errors[0].message
    assert len(validated) == 1
    (error,) = prepared.prepare(side_by_side(46)).errors
    assert "too many distinct fragments into one selection (1035 pairs" in error.message
    assert len(validated) == 1
