"""Request ids: the client's when well-formed, else a new one; on every answer, any layer's."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Scope

from app import server
from app.logs import RequestIdFilter
from app.server import create_app
from core import request_id
from tests.types import MakeClient, MakeSettings

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("sent", ["a", "req-1.2_3", "A" * 128, "0123456789abcdef"])
def test_well_formed_request_id_is_echoed(client: TestClient, sent: str) -> None:
    assert client.get("/healthz", headers={"x-request-id": sent}).headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent", ["", "A" * 129, "has space", "a/b", "ünïcode".encode(), "x\ty", "{}"]
)
def test_malformed_request_id_is_replaced_by_a_new_one(
    client: TestClient, sent: str | bytes
) -> None:
    answered = client.get("/healthz", headers={"x-request-id": sent}).headers["x-request-id"]
    assert GENERATED.fullmatch(answered)


def test_each_request_without_an_id_gets_its_own(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(GENERATED.fullmatch(value) for value in ids)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/profile", {}, 403),  # REST, from the route table
        ("POST", "/graphql", {"content-type": "text/plain"}, 415),  # the GraphQL view
        ("GET", "/no/such/path", {}, 404),  # Starlette's router
        ("DELETE", "/healthz", {}, 405),  # Starlette's router
        ("GET", "/avatars/unknown", {}, 404),  # a route with a path parameter
        ("POST", "/login", {"content-length": str(2 * 1024 * 1024)}, 413),  # RequestLimits
        ("GET", "/metrics", {}, 404),  # not an allowed address
    ],
)
def test_every_answer_carries_the_request_id(
    make_client: MakeClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    # The test client's address (127.0.0.1) is not among those allowed to read /metrics here.
    client = make_client(metrics_allow="192.0.2.0/24")
    response = client.request(method, path, headers={**headers, "x-request-id": "probe-1"})
    assert response.status_code == status
    assert response.headers["x-request-id"] == "probe-1"


async def _stalled_login(app: object) -> Message:
    """A POST /login whose body never finishes arriving; the first message sent back."""
    sent: list[Message] = []
    parts = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> Message:
        if parts:
            return parts.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/login",
        "query_string": b"",
        "http_version": "1.1",
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"slow-1")],
        "client": ("127.0.0.1", 5000),
    }
    assert callable(app)
    await asyncio.wait_for(app(scope, receive, send), 5)
    return sent[0]


@pytest.mark.parametrize(("idle", "total", "status"), [(0.2, 30.0, 408), (30.0, 0.3, 503)])
def test_timeout_answers_carry_the_request_id(
    make_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    idle: float,
    total: float,
    status: int,
) -> None:
    monkeypatch.setattr(server, "BODY_IDLE_TIMEOUT", idle)
    monkeypatch.setattr(server, "REQUEST_TIMEOUT", total)
    start = asyncio.run(_stalled_login(create_app(make_settings())))
    assert start["status"] == status
    assert (b"x-request-id", b"slow-1") in start["headers"]


def _stamped(message: str) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    RequestIdFilter().filter(record)
    return record


def test_work_for_a_request_done_later_logs_under_its_id() -> None:
    # What the mail outbox does: keep the id with the job, run the job under it.
    with request_id.bound("req-42"):
        kept = request_id.current()
    assert request_id.current() is None

    async def job() -> str | None:
        with request_id.bound(kept):
            inner = asyncio.create_task(asyncio.sleep(0, _stamped("sending")))
            return getattr(await inner, "request_id", None)

    assert asyncio.run(job()) == "req-42"
    assert getattr(_stamped("idle"), "request_id", "absent") is None


def test_request_id_header_is_one_value_even_when_sent_twice(client: TestClient) -> None:
    response = client.get("/healthz", headers=[("x-request-id", "one"), ("x-request-id", "two")])
    assert response.headers.get_list("x-request-id") == ["one"]
    assert json.loads(response.text) == {"status": "ok"}


def test_frontend_on_a_listed_origin_may_send_and_read_the_request_id(
    make_client: MakeClient,
) -> None:
    origin = "https://app.example"
    client = make_client(cors_origins=origin)
    preflight = client.options(
        "/profile",
        headers={
            "origin": origin,
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-request-id",
        },
    )
    assert preflight.status_code == 200
    assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
    answer = client.get("/profile", headers={"origin": origin, "x-request-id": "from-app-1"})
    assert answer.headers["x-request-id"] == "from-app-1"
    exposed = answer.headers["access-control-expose-headers"].lower().split(", ")
    assert "x-request-id" in exposed
