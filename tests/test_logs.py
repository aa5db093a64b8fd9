"""The log of a real server: JSON lines with their fields, request ids, and no secrets in it."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, quote_plus

import asyncpg
import httpx
import pytest

from tests.servers import Server
from tests.types import StartServer

PASSWORD = "correct horse battery"
FIELDS = {"time", "level", "message", "request_id"}


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server wrote, each of which must be one JSON object."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


@dataclass
class Run:
    """A client of a real server, and every secret the run has sent or been given."""

    client: httpx.Client
    secrets: set[str] = field(default_factory=set)
    tokens: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        request_id = f"run-{next(self._numbers)}"
        self.request_ids.append(request_id)
        headers = {"x-request-id": request_id, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def graphql(self, query: str, **variables: Any) -> httpx.Response:
        return self.send("POST", "/graphql", json={"query": query, "variables": variables})

    def keep(self, *values: str) -> None:
        self.secrets.update(values)

    def keep_cookie(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        # Every cookie the service sets is a secret (the session's, and any other).
        self.keep(*response.cookies.values())
        self.tokens.append(response.cookies["session_id"])


Step = Callable[[Run], None]


def rest_signup(run: Run) -> None:
    run.keep(PASSWORD)
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    run.keep_cookie(run.send("POST", "/signup", json=body))


def rest_login(run: Run) -> None:
    body = {"login": "alice", "password": PASSWORD}
    run.keep_cookie(run.send("POST", "/login", json=body))


def rest_wrong_password(run: Run) -> None:
    run.keep("a wrong guess at it")
    body = {"login": "alice", "password": "a wrong guess at it"}
    assert run.send("POST", "/login", json=body).status_code == 403


def rest_change_password(run: Run) -> None:
    run.keep("the second passphrase", "a wrong old one")
    wrong = {"old_password": "a wrong old one", "new_password": "the second passphrase"}
    assert run.send("PUT", "/password", json=wrong).status_code == 403
    body = {"old_password": PASSWORD, "new_password": "the second passphrase"}
    run.keep_cookie(run.send("PUT", "/password", json=body))


def rest_logout(run: Run) -> None:
    assert run.send("GET", "/logout").status_code == 200
    assert run.send("GET", "/profile").status_code == 403


LOGIN = "mutation($i: LoginInput!) { login(input: $i) { username } }"


def graphql_login_and_wrong_password(run: Run) -> None:
    run.keep("third wrong guess")
    wrong = {"login": "alice", "password": "third wrong guess"}
    errors = run.graphql(LOGIN, i=wrong).json()["errors"]
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    run.keep_cookie(run.graphql(LOGIN, i={"login": "alice", "password": "the second passphrase"}))


def graphql_change_password_and_logout(run: Run) -> None:
    run.keep("the third passphrase")
    change = "mutation($i: PasswordInput!) { changePassword(input: $i) }"
    passwords = {"oldPassword": "the second passphrase", "newPassword": "the third passphrase"}
    run.keep_cookie(run.graphql(change, i=passwords))
    assert run.graphql("mutation { logout }").json() == {"data": {"logout": True}}


def secrets_where_they_do_not_belong(run: Run) -> None:
    """Clients put secrets in URLs too: a token in a query string, a mutation over GET."""
    token = run.tokens[0]
    run.send("GET", f"/reset-password?token={token}")
    run.send("GET", "/profile", params={"session_id": token})
    inline = f'mutation {{ login(input: {{login: "a", password: "{PASSWORD}"}}) {{ username }} }}'
    assert 400 <= run.send("GET", "/graphql", params={"query": inline}).status_code < 500


# The scripted run whose whole log is searched for every secret it used. A feature that
# handles a secret adds its steps here (the password reset: ask for it, follow the emailed
# link's token, set the new password), so the search covers it too.
SCRIPTED_RUN: list[Step] = [
    rest_signup,
    rest_login,
    rest_wrong_password,
    rest_change_password,
    rest_logout,
    graphql_login_and_wrong_password,
    graphql_change_password_and_logout,
    secrets_where_they_do_not_belong,
]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_full_run_logs_no_password_token_or_cookie(
    start_server: StartServer, log_format: str
) -> None:
    server = start_server(LOG_FORMAT=log_format, ACCESS_LOG="true").wait_ready()
    with server.client() as client:
        run = Run(client)
        for step in SCRIPTED_RUN:
            step(run)
    server.stop()
    log = server.log()
    assert len(run.secrets) >= 8
    for secret in run.secrets:
        for written in {secret, quote(secret), quote_plus(secret)}:
            assert written not in log
    # The log is not empty: each request has its access line, under its own id.
    access = [line for line in log.splitlines() if "uvicorn.access" in line]
    for request_id in run.request_ids:
        if log_format == "json":
            assert sum(json.loads(line)["request_id"] == request_id for line in access) == 1
        else:
            assert sum(f"[{request_id}]" in line for line in access) == 1


def test_json_lines_carry_time_level_message_and_request_id(start_server: StartServer) -> None:
    server = start_server(LOG_FORMAT="json", ACCESS_LOG="true").wait_ready()
    answered = httpx.get(f"{server.url}/profile", headers={"x-request-id": "fields-1"})
    generated = httpx.get(f"{server.url}/healthz").headers["x-request-id"]
    server.stop()
    lines = json_lines(server)
    for line in lines:
        assert line.keys() >= FIELDS
        assert datetime.fromisoformat(line["time"]).tzinfo is not None
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert answered.status_code == 403
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    (profile,) = [line for line in access if line["request_id"] == "fields-1"]
    assert "GET /profile" in profile["message"] and profile["status"] == 403
    assert any(line["request_id"] == generated for line in access)
    # Lines written outside any request (start-up, shutdown) say so.
    started = [line for line in lines if "Application startup complete" in line["message"]]
    assert started and started[0]["request_id"] is None


def _sql(database_url: str, statement: str) -> None:
    """Run one statement on the server's database, behind its back."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split("///", 1)[1]) as connection:
            connection.execute(statement)
        return

    async def run() -> None:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def test_unexpected_errors_log_their_traceback_under_the_request_id(
    start_server: StartServer, database_url: str
) -> None:
    server = start_server(LOG_FORMAT="json").wait_ready()
    with server.client() as client:
        body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
        token = client.post("/signup", json=body).cookies["session_id"]
        # A table gone missing: every profile read now fails inside a resolver.
        _sql(database_url, "ALTER TABLE avatars RENAME TO avatars_away")
        try:
            rest = client.get("/profile", headers={"x-request-id": "broken-rest"})
            query = {"query": "{ me { username avatar } }"}
            graphql = client.post("/graphql", json=query, headers={"x-request-id": "broken-gql"})
        finally:
            _sql(database_url, "ALTER TABLE avatars_away RENAME TO avatars")
    server.stop()
    assert rest.status_code == 500 and rest.json() == {"message": "Internal server error"}
    assert graphql.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    lines = json_lines(server)
    for request_id in ("broken-rest", "broken-gql"):
        # One line per error, its whole traceback in one field.
        (error,) = [line for line in lines if line["request_id"] == request_id]
        assert error["level"] == "ERROR"
        assert "Traceback (most recent call last)" in error["traceback"]
        assert "avatars" in error["traceback"]
    assert token not in server.log() and PASSWORD not in server.log()
