"""`python -m bench.documents`: the server CPU each GraphQL document costs, and the worst.

Starts the service (`python -m app`, a temporary SQLite database), logs in, then sends each
document of tests/documents_corpus.py, and the most expensive documents the limits still
accept (found here by widening a few shapes until schema/documents.py refuses them), many
times each. Every copy differs by a trailing comment, so each request pays for parsing,
the pre-pass, validation and execution, as a client changing one character would make it.
Such a request has nothing to wait for between parsing and answering (introspection never
touches the database), so its CPU time is also the longest it holds the event loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench.run import Server, database_url, free_port, start
from schema.api import Schema
from tests.documents_corpus import (
    INPUT_VALUE,
    hostile_documents,
    introspection_queries,
    type_ref,
)

PASSWORD = "steady load passphrase"
Shape = Callable[[int], str]


def _type_aliases(width: int) -> str:
    inner = " ".join(
        ["name description isDeprecated deprecationReason", f"type {{ {type_ref(8)} }}"]
    )
    return (
        "{ "
        + " ".join(
            f'a{i}: __type(name: "__Type") {{ fields {{ type {{ ofType {{ ofType {{ ofType '
            f"{{ fields {{ {inner} }} }} }} }} }} }} }}"
            for i in range(width)
        )
        + " }"
    )


def _field_lists(width: int) -> str:
    inner = f"name description args {{ {INPUT_VALUE} }} type {{ {type_ref(8)} }}"
    return (
        "{ __schema { types { "
        + " ".join(f"f{i}: fields(includeDeprecated: true) {{ {inner} }}" for i in range(width))
        + " } } }"
    )


def _directive_lists(width: int) -> str:
    return (
        "{ __schema { "
        + " ".join(
            f"d{i}: directives {{ name description locations isRepeatable "
            f"args {{ {INPUT_VALUE} }} }}"
            for i in range(width)
        )
        + f" types {{ name fields {{ name type {{ {type_ref(8)} }} }} }} }} }}"
    )


def _profiles(width: int) -> str:
    fields = "username email firstname lastname avatar __typename"
    return "{ " + " ".join(f"p{i}: me {{ {fields} }}" for i in range(width)) + " }"


def _spreads(width: int) -> str:
    spreads = " ".join(["...F"] * (10 * width))
    return f"{{ me {{ {spreads} }} }} fragment F on Profile {{ username }}"


SHAPES: dict[str, Shape] = {
    "one fragment spread many times": _spreads,
    "aliased __type, nested field lists": _type_aliases,
    "aliased field lists of every type": _field_lists,
    "aliased directive lists": _directive_lists,
    "aliased profiles": _profiles,
}


def costliest_accepted() -> dict[str, str]:
    """Each shape as wide as the limits accept."""
    documents = Schema(introspection=True).documents
    found = {}
    for name, shape in SHAPES.items():
        widest = None
        for width in range(1, 64):
            if documents.prepare(shape(width)).errors:
                break
            widest = shape(width)
        if widest is not None:
            found[f"widest accepted: {name}"] = widest
    found["64 KiB string argument"] = '{ __type(name: "' + "x" * 65_400 + '") { name } }'
    return found


def variants(text: str, count: int) -> Iterator[str]:
    for i in range(count):
        yield f"{text} #{i}-{time.monotonic_ns()}"


def measure(server: Server, cookie: str, text: str, count: int) -> tuple[float, str]:
    """Server CPU ms per request, and the answer's first error code (or "ok")."""
    code = "ok"
    with httpx.Client(base_url=server.url, timeout=60, cookies={"session_id": cookie}) as client:
        before = server.cpu_seconds()
        for variant in variants(text, count):
            response = client.post("/graphql", json={"query": variant})
            errors = response.json().get("errors") if response.status_code == 200 else None
            if response.status_code != 200:
                code = f"HTTP {response.status_code}"
            elif errors:
                code = errors[0]["extensions"]["code"]
        spent = server.cpu_seconds() - before
    return spent / count * 1000, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40, help="copies of each document")
    args = parser.parse_args()
    documents = {**hostile_documents(), **costliest_accepted()}
    standard = introspection_queries()
    documents["standard introspection (every option)"] = standard[max(standard, key=len)]
    documents["{ me { username } }"] = "{ me { username } }"
    with tempfile.TemporaryDirectory(prefix="accounts-documents-") as tmp:
        directory = Path(tmp)
        port = free_port()
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATABASE_URL": database_url(directory),
            "BCRYPT_ROUNDS": "4",
        }
        command = [sys.executable, "-m", "app"]
        server = start("service", command, env, port, directory / "server.log")
        try:
            account = {"login": "bench", "password": PASSWORD, "email": "bench@example.com"}
            signed_up = httpx.post(f"{server.url}/signup", json=account)
            cookie = signed_up.cookies["session_id"]
            rows = [
                (name, *measure(server, cookie, text, args.requests))
                for name, text in documents.items()
            ]
        finally:
            server.stop()
    width = max(len(name) for name, *_ in rows)
    print(f"\nServer CPU per request ({args.requests} distinct copies of each document)\n")
    print(f"{'document':<{width}}  {'CPU ms':>6}  answer")
    for name, cpu, code in rows:
        print(f"{name:<{width}}  {cpu:6.1f}  {code}")
    accepted = [row for row in rows if row[2] == "ok"]
    refused = [row for row in rows if row[2] != "ok"]
    worst = max(accepted, key=lambda row: row[1])
    print(f"\nworst accepted document: {worst[0]}: {worst[1]:.1f} ms of server CPU")
    if refused:
        worst_refused = max(refused, key=lambda row: row[1])
        print(f"worst refused document: {worst_refused[0]}: {worst_refused[1]:.1f} ms")


if __name__ == "__main__":
    main()
