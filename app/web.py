"""HTTP plumbing shared by both faces: security headers and request body limits."""

from __future__ import annotations

import asyncio
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_MAX_BYTES = 1024 * 1024
# Room for the multipart envelope and the `operations`/`map` fields around the file.
MULTIPART_OVERHEAD = 64 * 1024

NO_CONTENT_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


def media_type(headers: Headers) -> str:
    """The Content-Type without parameters such as charset, lower-cased."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, idle: float) -> None:
        super().__init__(408, f"No part of the request body arrived for {idle:g} seconds")


class Timeouts:
    """Bounds the time a request may hold the server: a client that stops sending its body
    gets `408`, and a request still unanswered at the deadline gets `503`.

    (Waiting for request headers is uvicorn's part, and a proxy in front should bound it.)
    """

    def __init__(self, app: ASGIApp, *, body_idle: float, total: float) -> None:
        self.app = app
        self.body_idle = body_idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def timed_receive() -> Message:
            try:
                return await asyncio.wait_for(receive(), self.body_idle)
            except TimeoutError:
                raise BodyTooSlow(self.body_idle) from None

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.total):
                await self.app(scope, timed_receive, tracking_send)
        except TimeoutError:
            if not started:
                await _refuse(send, HTTPException(503, "The request took too long"))


class SecurityHeaders:
    """Headers every response carries (the contract's and OWASP's defaults)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-content-type-options"] = "nosniff"
                headers["referrer-policy"] = "no-referrer"
                headers.setdefault("cache-control", "no-store")
                content_type = headers.get("content-type", "")
                if content_type.startswith(("application/json", "image/")):
                    headers["content-security-policy"] = NO_CONTENT_POLICY
                else:
                    headers.setdefault("x-frame-options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses a request body past its limit while it streams in, before it is stored."""

    def __init__(self, app: ASGIApp, *, upload_max_bytes: int) -> None:
        self.app = app
        self.upload_limit = upload_max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit = self.upload_limit if multipart else JSON_MAX_BYTES
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, BodyTooLarge(limit))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send, error: HTTPException) -> None:
    body = json.dumps({"message": error.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
