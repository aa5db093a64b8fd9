"""Where a request's time goes: the service's ASGI application called in-process, layer by layer.

`make bench-layers` builds the service as `make run` does, on a temporary SQLite database
(`--database postgresql`: a database of its own on the local PostgreSQL server, dropped
after), signs one account up and times `GET /profile` through ever fewer layers, beside the ceiling
(bench/reference.py) called the same way. There is no HTTP here: the HTTP stack costs the
service and the ceiling the same, and `make bench` shows it as the ceiling's server CPU per
request minus its figure below.

Each figure is the fastest of several interleaved rounds (the round least disturbed by the
rest of the machine), in microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import uvloop
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observe import Observe
from app.server import HotPaths, create_app
from app.web import RequestLimits, SecurityHeaders
from bench import postgres
from bench.reference import ceiling
from core import accounts
from core.config import Settings
from core.runtime import Runtime
from rest_compat.translator import load_operations
from schema.api import create_schema
from schema.context import Context
from schema.execution import run

Step = Callable[[], Awaitable[Any]]
ME = b'{"query": "{ me { username email firstname lastname avatar } }"}'


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> dict[str, Any]:
    """One request through an ASGI application; the response's status, headers and body."""
    scope = http_scope(method, path, headers)
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    response: dict[str, Any] = {"body": b""}

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.update(status=message["status"], headers=message["headers"])
        else:
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return response


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[None]:
    """The application's lifespan (migrations at start-up, clean shutdown), as uvicorn runs it."""
    events: asyncio.Queue[Message] = asyncio.Queue()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def send(message: Message) -> None:
        (started if message["type"].startswith("lifespan.startup") else stopped).set()

    async def lifespan() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, events.get, send)

    task = asyncio.create_task(lifespan())
    await events.put({"type": "lifespan.startup"})
    await started.wait()
    try:
        yield
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await stopped.wait()
        await task


async def constant(scope: Scope, receive: Receive, send: Send) -> None:
    """The cheapest possible answer, to time a layer around it."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def fastest(steps: dict[str, Step], rounds: int, requests: int) -> dict[str, float]:
    """Microseconds per call of each step: the best of `rounds` interleaved rounds."""
    for step in steps.values():  # warm-up: caches, prepared documents, code paths
        for _ in range(requests // 2):
            await step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(requests):
                await step()
            best[name] = min(best[name], (time.perf_counter() - started) / requests * 1e6)
    return best


def layers(app: ASGIApp) -> tuple[Observe, RequestLimits, HotPaths]:
    """The stack without CORS_ORIGINS: SecurityHeaders → Observe → RequestLimits → HotPaths."""
    assert isinstance(app, SecurityHeaders)
    observe = app.app
    assert isinstance(observe, Observe)
    limits = observe.app
    assert isinstance(limits, RequestLimits)
    assert isinstance(limits.app, HotPaths)
    return observe, limits, limits.app


async def measure(database_url: str, rounds: int, requests: int) -> dict[str, float]:
    secret = None if database_url.startswith("sqlite") else postgres.SECRET_KEY
    settings = Settings(database_url=database_url, secret_key=secret)
    app = create_app(settings)
    observe, limits, hot_paths = layers(app)
    async with running(app), AsyncExitStack() as stack:
        account = {"login": "layers", "password": "steady load passphrase", "email": "l@x.org"}
        body = json.dumps(account).encode()
        json_headers = [(b"content-type", b"application/json")]
        signed_up = await call(app, "POST", "/signup", json_headers, body)
        assert signed_up["status"] == 200, signed_up
        cookie = next(
            value.split(b";")[0]
            for name, value in signed_up["headers"]
            if name == b"set-cookie" and value.startswith(b"session_id=")
        )
        headers = [(b"host", b"bench"), (b"cookie", cookie)]
        scope = http_scope("GET", "/profile", headers)
        token = cookie.split(b"=", 1)[1].decode()
        # A second runtime and schema on the same database: the same code the app runs.
        runtime, schema = Runtime.create(settings), create_schema(settings)
        operation = load_operations(schema)["Profile"]
        endpoint = hot_paths.routes["/profile"].endpoint
        reference = ceiling(settings.database_url)
        await stack.enter_async_context(running(reference))
        await runtime.db.open()

        async def lookups() -> None:
            # The session and the profile, read together as `me` reads them.
            assert await accounts.profile_of_session(runtime.db, token) is not None

        async def execution() -> None:
            context = Context.from_request(runtime, Request(scope))
            result = await run(
                schema, operation, variables={}, operation_name=None, context=context
            )
            assert result.errors is None, result.errors

        observed = Observe(constant, observe.route)
        steps: dict[str, Step] = {
            "ceiling (bench/reference.py), whole app": lambda: call(
                reference, "GET", "/profile", headers
            ),
            "REST GET /profile, whole app": lambda: call(app, "GET", "/profile", headers),
            "  without SecurityHeaders": lambda: call(observe, "GET", "/profile", headers),
            "  without Observe too (request id, metrics)": lambda: call(
                limits, "GET", "/profile", headers
            ),
            "  without RequestLimits too": lambda: call(hot_paths, "GET", "/profile", headers),
            "  the endpoint alone (response built, not sent)": lambda: endpoint(Request(scope)),
            "  executing the Profile operation": execution,
            "  the session and profile lookup inside it": lookups,
            "GraphQL { me }, whole app": lambda: call(
                app, "POST", "/graphql", [*headers, *json_headers], ME
            ),
            "a constant answer, no layer": lambda: call(constant, "GET", "/profile", headers),
            "  inside Observe alone (request id, metrics)": lambda: call(
                observed, "GET", "/profile", headers
            ),
        }
        figures = await fastest(steps, rounds, requests)
        await runtime.db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.database == "postgresql":
            url = stack.enter_context(postgres.database("accounts_layers"))
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="accounts-layers-"))
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'layers.db'}"
        figures = uvloop.run(measure(url, args.rounds, args.requests))
    print(
        f"\n{args.database}: µs per request, "
        f"fastest of {args.rounds} interleaved rounds of {args.requests}\n"
    )
    width = max(map(len, figures))
    for name, micros in figures.items():
        print(f"{name:<{width}}  {micros:6.1f}")


if __name__ == "__main__":
    main()
