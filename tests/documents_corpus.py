"""Documents a hostile client may send, and the largest ones an honest client sends.

Shared by tests/test_documents.py (every hostile one is refused before validation) and
bench/documents.py (the CPU each costs, and the worst accepted one).
"""

from __future__ import annotations

import itertools

from graphql import get_introspection_query

INTROSPECTION_OPTIONS = (
    "descriptions",
    "specified_by_url",
    "directive_is_repeatable",
    "schema_description",
    "input_value_deprecation",
    "experimental_directive_deprecation",
    "one_of",
)


def type_ref(depth: int) -> str:
    """The nested `ofType` selection introspection queries use, `depth` levels deep."""
    inner = "kind name"
    for _ in range(depth):
        inner = f"kind name ofType {{ {inner} }}"
    return inner


INPUT_VALUE = f"name description defaultValue type {{ {type_ref(7)} }}"


def introspection_queries() -> dict[str, str]:
    """graphql-core's standard introspection query with every combination of its options."""
    queries = {}
    for combination in itertools.product((False, True), repeat=len(INTROSPECTION_OPTIONS)):
        options = dict(zip(INTROSPECTION_OPTIONS, combination, strict=True))
        name = "+".join(key for key, on in options.items() if on) or "plain"
        queries[f"introspection:{name}"] = get_introspection_query(**options)
    for depth in range(1, 10):
        queries[f"introspection:type_depth={depth}"] = get_introspection_query(type_depth=depth)
    # GraphiQL 4 (app/static) asks graphql-js 16 for these two options (its text is the same
    # as graphql-core's), then may drop the subscription type and rename the operation.
    graphiql = get_introspection_query(input_value_deprecation=True, schema_description=True)
    queries["graphiql"] = graphiql
    queries["graphiql:without subscriptions"] = graphiql.replace("subscriptionType { name }", "")
    queries["graphiql:renamed"] = graphiql.replace(
        "query IntrospectionQuery", "query GraphiQLIntrospection"
    )
    return queries


def _repeat(text: str, times: int) -> str:
    return " ".join([text] * times)


def fan_out(levels: int) -> str:
    """Fragments spreading two others each: the expanded document doubles per level."""
    fragments = " ".join(
        f"fragment F{i} on Profile {{ ...F{i + 1} ...G{i + 1} }} "
        f"fragment G{i} on Profile {{ ...F{i + 1} ...G{i + 1} }}"
        for i in range(levels)
    )
    return (
        f"{{ me {{ ...F0 }} }} {fragments} "
        f"fragment F{levels} on Profile {{ username }} fragment G{levels} on Profile {{ email }}"
    )


def _chain(levels: int, leaf: str, width: int = 2) -> str:
    """Fragments each spreading the next `width` times, down to `leaf`; no field above it."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ " + f"...F{i + 1} " * width + "}" for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ {leaf} }}"


def _literal(values: int) -> str:
    return "[" + " ".join(["1"] * values) + "]"


def _nested_lists(inner_aliases: int) -> str:
    """Introspection lists nested as deep as graphql-core's own rule allows, widened."""
    widened = " ".join(f"t{i}: type {{ {type_ref(8)} }}" for i in range(inner_aliases))
    inner = f"name args {{ {INPUT_VALUE} }} type {{ {type_ref(8)} }} {widened}"
    path = ["__schema", "types", "fields", "type", "ofType", "ofType", "fields"]
    return "{ " + " { ".join(path) + f" {{ {inner} " + "} " * len(path) + "}"


def hostile_documents() -> dict[str, str]:
    """Documents that would cost far more to validate or execute than any honest one."""
    documents = {
        # The two reproduced in issue 11: 1.6 s and 4.1 s of validation, each under 8 KB.
        "issue-11: me { username } me { email } x249": "{ "
        + _repeat("me { username } me { email }", 249)
        + " }",
        "issue-11: me { username } x499": "{ " + _repeat("me { username }", 499) + " }",
        "same field x40": "{ me { " + _repeat("username", 40) + " } }",
        "same object x25": "{ " + _repeat("me { username email }", 25) + " }",
        "__typename x60": "{ " + _repeat("__typename", 60) + " }",
        "fragments selecting one field x40": "{ "
        + " ".join(f"...F{i}" for i in range(40))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ me {{ username email }} }}" for i in range(40)),
        "fragment fan-out x2^12": fan_out(12),
        "fragment fan-out x2^40": fan_out(40),
        "selection nesting 60 deep": "{ __schema { types { "
        + "ofType { " * 60
        + "name"
        + " }" * 60
        + " } } }",
        "introspection lists nested twice": _nested_lists(0),
        "introspection lists nested twice, widened": _nested_lists(6),
        "introspection types with ten aliased field lists": "{ __schema { types { "
        + " ".join(
            f"f{i}: fields {{ name args {{ {INPUT_VALUE} }} type {{ {type_ref(8)} }} }}"
            for i in range(10)
        )
        + " } } }",
        # Spreads cost validation as much as fields do, selecting something or not.
        "spreads of a fragment that selects no known field x900": "{ "
        + _repeat("...F", 900)
        + " } fragment F on Query { ...Nope }",
        "fragment spreading itself, spread x900": "{ "
        + _repeat("...F", 900)
        + " } fragment F on Query { ...F }",
        "two fragments spreading each other": "{ me { ...A } } "
        "fragment A on Profile { username ...B } fragment B on Profile { email ...A }",
        "fragments spreading the next twice, 20 levels, no field": _chain(20, "...Nope"),
        "fragments spreading the next twice, 20 levels, a cycle at the end": _chain(20, "...F0"),
        "one fragment chain spread by 100 operations": " ".join(
            f"query Q{i} {{ ...F0 }}" for i in range(100)
        )
        + _chain(20, "...Nope", width=1).removeprefix("{ ...F0 }"),
        # Validation compares every pair of distinct fragments spread into one set.
        "140 distinct fragments spread together": "{ "
        + " ".join(f"...F{i}" for i in range(140))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ ...Nope }}" for i in range(140)),
        # Values written in arguments are validated one by one, wherever they are.
        "list literal of 1,900 values": f"{{ securityEvents(limit: {_literal(1900)}) {{ kind }} }}",
        "object literal of 600 fields": "{ __type(name: {"
        + " ".join(f"a{i}: 1" for i in range(600))
        + "}) { name } }",
        "list literal in a directive": f"{{ me @include(if: {_literal(1900)}) {{ username }} }}",
        "list literal as a variable's default": f"query($a: Int = {_literal(1900)}) "
        "{ me { username } }",
        "list literal compared in nine pairs": "{ ...F "
        + _repeat('__type(name: "a") { name }', 9)
        + f" }} fragment F on Query {{ __type(name: {_literal(1800)}) {{ name }} }}",
        "integer of 5,000 digits": "{ securityEvents(limit: " + "1" * 5000 + ") { kind } }",
        "eleven aliases": "{ " + " ".join(f"a{i}: me {{ username }}" for i in range(11)) + " }",
        "ten aliased logins": "mutation { "
        + " ".join(
            f'l{i}: login(input: {{login: "erin", password: "p{i}xxxxxxxx"}}) {{ username }}'
            for i in range(10)
        )
        + " }",
    }
    return documents
