"""Request timeouts: a stalled body is 408, a request unanswered at the deadline is 503."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Scope

from app.web import RequestLimits


async def echo(request: Request) -> Response:
    return JSONResponse({"length": len(await request.body())})


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({})


async def as_json(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code)


APP = Starlette(
    routes=[Route("/echo", echo, methods=["POST"]), Route("/slow", slow)],
    middleware=[Middleware(RequestLimits, upload_max_bytes=1024, body_idle=0.2, total=0.5)],
    exception_handlers={HTTPException: as_json},
)


async def _call(path: str, chunks: list[bytes], stall: bool) -> tuple[int, dict[str, object]]:
    """Send the body in chunks, then (if `stall`) stop sending without ending it."""
    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if not stall:
        pending.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # a client that went quiet
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    method = "POST" if path == "/echo" else "GET"
    scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}
    scope.update(query_string=b"", http_version="1.1")
    await asyncio.wait_for(APP(scope, receive, send), 3)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_body_that_stops_arriving_is_408() -> None:
    status, body = asyncio.run(_call("/echo", [b"{", b'"a"'], stall=True))
    assert status == 408
    assert "0.2 seconds" in str(body["message"])


def test_body_sent_in_time_is_served() -> None:
    assert asyncio.run(_call("/echo", [b"{", b"}"], stall=False)) == (200, {"length": 2})


def test_request_still_unanswered_at_the_deadline_is_503() -> None:
    status, body = asyncio.run(_call("/slow", [], stall=False))
    assert status == 503
    assert body == {"message": "The request took too long"}
