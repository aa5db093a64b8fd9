"""HTTP plumbing shared by both faces: security headers and request body limits."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_compat.translator import message_response
from schema.http import BodyTooLarge, BodyTooSlow, code_for_status
from schema.view import errors_response

GRAPHQL_PATH = "/graphql"
JSON_MAX_BYTES = 1024 * 1024
# Room for the multipart envelope and the `operations`/`map` fields around the file.
MULTIPART_OVERHEAD = 64 * 1024

NO_CONTENT_POLICY = b"default-src 'none'; frame-ancestors 'none'; sandbox"
# Responses that are data, never a page: nothing in them may run or load anything.
CONTENT_POLICY_TYPES = (b"application/json", b"application/graphql-response+json", b"image/")
ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
ALWAYS_SET = frozenset(name for name, _ in ALWAYS)
CSP = b"content-security-policy"


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
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() not in ALWAYS_SET
                ]
                present = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.startswith(CONTENT_POLICY_TYPES):
                    # Data is never a document: whatever the handler said, nothing runs.
                    headers = [(name, value) for name, value in headers if name.lower() != CSP]
                    headers.append((CSP, NO_CONTENT_POLICY))
                elif b"x-frame-options" not in present:
                    headers.append((b"x-frame-options", b"DENY"))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                headers += ALWAYS
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestLimits:
    """Bounds what one request may take from the server.

    - Size: a body past its limit (1 MiB of JSON, or the upload limit plus the multipart
      envelope) is refused with `413` while it streams in, before it is stored.
    - Time: a client that stops sending its body gets `408` after `body_idle` seconds, and a
      request still unanswered after `total` seconds gets `503`. (Waiting for the request
      headers is uvicorn's part, and a proxy in front should bound it.)
    """

    def __init__(
        self, app: ASGIApp, *, upload_max_bytes: int, body_idle: float, total: float
    ) -> None:
        self.app = app
        self.upload_limit = upload_max_bytes + MULTIPART_OVERHEAD
        self.body_idle = body_idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit = self.upload_limit if multipart else JSON_MAX_BYTES
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, BodyTooLarge(limit))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(self.body_idle):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(self.body_idle) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.total):
                await self.app(scope, limited_receive, tracking_send)
        except TimeoutError:
            if not started:
                await _refuse(scope, receive, send, HTTPException(503, "The request took too long"))


async def _refuse(scope: Scope, receive: Receive, send: Send, error: HTTPException) -> None:
    status, detail, headers = error.status_code, error.detail, {"connection": "close"}
    if scope["path"] == GRAPHQL_PATH:
        # Answered in the shape of the face that was asked.
        response = errors_response(status, detail, code_for_status(status), headers=headers)
    else:
        response = message_response(status, detail, headers=headers)
    await response(scope, receive, send)
