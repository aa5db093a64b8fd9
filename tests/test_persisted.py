"""Persisted documents: Apollo's automatic persisted queries, the manifest, the allow-list."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core import persisted
from core.config import Settings, SettingsError, load_settings
from core.db import Database
from rest_compat.translator import DOCUMENT_PATH
from schema.persisted import standalone_operations
from tests.servers import ROOT, TEST_SECRET_KEY, Server
from tests.types import MakeClient, MakeSettings, StartServer

ME = "query Me { me { username } }"
NEW = "application/graphql-response+json"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def extension(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


class ApqClient:
    """What Apollo's persisted-query link does: the hash first, the text only when asked."""

    def __init__(self, client: httpx.Client | TestClient, *, get: bool = False) -> None:
        self.client = client
        self.get = get

    def send(self, document: str, *, with_text: bool, **headers: str) -> httpx.Response:
        body: dict[str, Any] = {"extensions": extension(document)}
        if with_text:
            body["query"] = document
        if self.get:
            params = {key: json.dumps(v) if key == "extensions" else v for key, v in body.items()}
            return self.client.get("/graphql", params=params, headers=headers)
        return self.client.post("/graphql", json=body, headers=headers)

    def run(self, document: str) -> httpx.Response:
        first = self.send(document, with_text=False)
        if codes(first) == ["PERSISTED_QUERY_NOT_FOUND"]:
            return self.send(document, with_text=True)
        return first


@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_apq_flow_not_found_then_registered_then_by_hash(client: TestClient, get: bool) -> None:
    apq = ApqClient(client, get=get)
    first = apq.send(ME, with_text=False)
    assert first.status_code == 200
    assert "data" not in first.json()
    assert codes(first) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert first.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    registered = apq.send(ME, with_text=True)
    assert registered.json() == {"data": {"me": None}}
    again = apq.send(ME, with_text=False)
    assert again.json() == {"data": {"me": None}}


def test_not_found_is_200_whatever_the_accept_header(client: TestClient) -> None:
    for accept in (NEW, "application/json"):
        response = ApqClient(client).send(ME, with_text=False, accept=accept)
        assert response.status_code == 200
        assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_mismatching_hash_is_400_and_stores_nothing(client: TestClient) -> None:
    other = {"persistedQuery": {"version": 1, "sha256Hash": sha256("{ me { email } }")}}
    response = client.post("/graphql", json={"query": ME, "extensions": other})
    assert response.status_code == 400
    assert "data" not in response.json()
    assert codes(ApqClient(client).send("{ me { email } }", with_text=False)) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


@pytest.mark.parametrize(
    "persisted_query",
    [
        "abc",
        {"version": 2, "sha256Hash": "0" * 64},
        {"version": 1},
        {"version": 1, "sha256Hash": "xyz"},
        {"version": 1, "sha256Hash": 5},
    ],
)
def test_malformed_persisted_query_is_400(client: TestClient, persisted_query: object) -> None:
    body = {"extensions": {"persistedQuery": persisted_query}}
    response = client.post("/graphql", json=body)
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


def test_documents_that_break_a_limit_are_not_stored(client: TestClient) -> None:
    apq = ApqClient(client)
    for document in ("{ nope }", "{ " + "me { username } " * 30 + "}", "{ me {"):
        refused = apq.send(document, with_text=True)
        assert codes(refused)[0].startswith("GRAPHQL_"), document
        assert codes(apq.send(document, with_text=False)) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_mutation_sent_over_get_with_its_hash_is_405_and_not_stored(client: TestClient) -> None:
    apq = ApqClient(client, get=True)
    response = apq.send("mutation { logout }", with_text=True)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    stored = ApqClient(client).send("mutation { logout }", with_text=False)
    assert codes(stored) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_lone_surrogate_in_a_hashed_query_is_400(client: TestClient) -> None:
    body = (
        '{"query": "{ me { username } } #\\ud800", "extensions": '
        + json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}})
        + "}"
    )
    response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_rest_operations_are_pre_registered_under_their_hashes(client: TestClient) -> None:
    operations = {
        document.split()[1].split("(")[0]: document
        for document in standalone_operations(DOCUMENT_PATH.read_text())
    }
    assert set(operations) >= {"Signup", "Login", "Profile", "Logout"}
    response = ApqClient(client).send(operations["Profile"], with_text=False)
    assert response.json() == {"data": {"result": None}}
    body = {
        "extensions": extension(operations["Login"]),
        "variables": {"input": {"login": "nobody", "password": "wrong password"}},
    }
    login = client.post("/graphql", json=body)
    assert codes(login) == ["UNAUTHENTICATED"]


def _manifest(tmp_path: Path, documents: object) -> str:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps(documents))
    return str(path)


def test_manifest_documents_run_by_hash(tmp_path: Path, make_client: MakeClient) -> None:
    document = "query FromManifest { me { email } }"
    client = make_client(
        graphql_persisted_documents=_manifest(tmp_path, {sha256(document): document})
    )
    response = ApqClient(client).send(document, with_text=False)
    assert response.json() == {"data": {"me": None}}


def test_apollo_manifest_format_is_read(tmp_path: Path, make_client: MakeClient) -> None:
    document = "query FromApollo { me { email } }"
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha256(document), "name": "FromApollo", "body": document}],
    }
    client = make_client(graphql_persisted_documents=_manifest(tmp_path, manifest))
    assert ApqClient(client).send(document, with_text=False).json() == {"data": {"me": None}}


@pytest.mark.parametrize(
    "manifest",
    [
        {"0" * 64: "{ me { username } }"},
        {sha256("{ me { username } }").upper(): "{ me { username } }"},
        # GraphQL Codegen hashes with SHA-1 unless told otherwise; the contract says SHA-256.
        {hashlib.sha1(b"{ me { username } }").hexdigest(): "{ me { username } }"},  # noqa: S324
        {sha256("{ me { username } }"): 1},
        ["{ me { username } }"],
    ],
    ids=["wrong hash", "upper case", "sha1", "not a string", "not an object"],
)
def test_manifest_with_a_bad_entry_stops_start_up_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: object
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setenv("GRAPHQL_PERSISTED_DOCUMENTS", str(path))
    with pytest.raises(SettingsError, match="GRAPHQL_PERSISTED_DOCUMENTS"):
        load_settings()


def test_server_refuses_to_start_with_a_mismatching_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"0" * 64: "{ me { username } }"}))
    missing = tmp_path / "absent.json"
    for value in (path, missing):
        result = subprocess.run(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env={**os.environ, "GRAPHQL_PERSISTED_DOCUMENTS": str(value)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "GRAPHQL_PERSISTED_DOCUMENTS" in result.stderr


def test_persisted_only_runs_pre_registered_documents_alone(
    tmp_path: Path, make_client: MakeClient
) -> None:
    allowed = "query Allowed { me { username } }"
    client = make_client(
        graphql_persisted_documents=_manifest(tmp_path, {sha256(allowed): allowed}),
        graphql_persisted_only=True,
    )
    apq = ApqClient(client)
    assert apq.send(allowed, with_text=False).json() == {"data": {"me": None}}
    assert client.post("/graphql", json={"query": allowed}).json() == {"data": {"me": None}}
    other = "query Other { me { email } }"
    for response in (
        apq.send(other, with_text=False),
        apq.send(other, with_text=True),
        client.post("/graphql", json={"query": other}),
        client.get("/graphql", params={"query": other}),
        client.post("/graphql", json={"query": allowed + " "}),
    ):
        assert response.status_code == 400
        assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert "data" not in response.json()
    # Nothing was registered by trying.
    assert apq.send(other, with_text=False).status_code == 400


def test_persisted_only_keeps_the_rest_layer_working(make_client: MakeClient) -> None:
    client = make_client(graphql_persisted_only=True)
    body = {"login": "alice", "password": "correct horse battery", "email": "a@b.co"}
    assert client.post("/signup", json=body).status_code == 200
    assert client.get("/profile").json()["username"] == "alice"


def _count_and_touch(database_url: str, key: str) -> tuple[int, float]:
    async def query() -> tuple[int, float]:
        database = Database(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
        async with database.engine.connect() as connection:
            count = (
                await connection.execute(text("SELECT count(*) FROM persisted_documents"))
            ).scalar_one()
            touched = (
                await connection.execute(
                    text("SELECT last_used_at FROM persisted_documents WHERE hash = :h"), {"h": key}
                )
            ).scalar_one()
        await database.dispose()
        return int(count), float(touched)

    return asyncio.run(query())


def test_a_hit_does_not_write_the_row(client: TestClient, database_url: str) -> None:
    apq = ApqClient(client)
    apq.run(ME)
    count, registered_at = _count_and_touch(database_url, sha256(ME))
    for _ in range(5):
        assert apq.send(ME, with_text=False).json() == {"data": {"me": None}}
    assert _count_and_touch(database_url, sha256(ME)) == (count, registered_at)


def test_store_forgets_the_least_recently_used_past_its_bound(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persisted, "MAX_DOCUMENTS", 20)

    async def scenario() -> tuple[set[str], int]:
        database = Database(make_settings())
        await database.migrate()
        keys = []
        for i in range(30):
            document = f"{{ a{i}: me {{ username }} }}"
            keys.append(persisted.digest(document))
            await persisted.store(database, keys[-1], document, at=1000.0 + i)
            if i == 5:
                # The first one, used again: the newest by use, so it stays.
                await persisted.touch(database, keys[0], at=2000.0)
        async with database.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT hash FROM persisted_documents"))).all()
            total = (
                await connection.execute(text("SELECT sum(size) FROM persisted_documents"))
            ).scalar_one()
        await database.dispose()
        return {row[0] for row in rows}, int(total)

    kept, total = asyncio.run(scenario())
    assert len(kept) <= 20
    keys = [persisted.digest(f"{{ a{i}: me {{ username }} }}") for i in range(30)]
    assert keys[0] in kept
    assert set(keys[-10:]) <= kept
    assert keys[1] not in kept
    assert total == sum(len(f"{{ a{i}: me {{ username }} }}") for i in range(30) if keys[i] in kept)


def test_store_keeps_to_its_byte_bound(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persisted, "MAX_BYTES", 10_000)

    async def scenario() -> int:
        database = Database(make_settings())
        await database.migrate()
        for i in range(10):
            document = f"{{ me {{ username }} }} # {i}" + "x" * 2000
            await persisted.store(database, persisted.digest(document), document, at=float(i))
        async with database.engine.connect() as connection:
            total = (
                await connection.execute(text("SELECT sum(size) FROM persisted_documents"))
            ).scalar_one()
        await database.dispose()
        return int(total)

    assert asyncio.run(scenario()) <= 10_000


@pytest.fixture
def pair(start_server: StartServer) -> tuple[Server, Server]:
    first, second = start_server(), start_server()
    return first.wait_ready(), second.wait_ready()


def test_document_registered_on_one_instance_runs_by_hash_on_the_other(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    document = "query Shared { me { username email } }"
    with a.client() as on_a, b.client() as on_b:
        assert codes(ApqClient(on_b).send(document, with_text=False)) == [
            "PERSISTED_QUERY_NOT_FOUND"
        ]
        assert ApqClient(on_a).send(document, with_text=True).json() == {"data": {"me": None}}
        for get in (False, True):
            response = ApqClient(on_b, get=get).send(document, with_text=False)
            assert response.json() == {"data": {"me": None}}
            assert response.headers["cache-control"] == "no-store"
