"""The composition root: builds the ASGI application from settings."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app import pages
from app.cors import Cors
from app.link_pages import link_page_routes
from app.metrics import metrics_endpoint, process_exited, sample_forever
from app.observe import Observe, RouteTemplates
from app.web import GRAPHQL_PATH, RequestLimits, SecurityHeaders
from core import avatars
from core.config import Settings
from core.errors import Unavailable
from core.mail.delivery import delivery_for
from core.mail.sender import Sender
from core.runtime import Runtime
from rest_compat.openapi import openapi_document
from rest_compat.translator import DOCUMENT_PATH, message_response, rest_routes
from schema.api import Schema, create_schema
from schema.errors import MASKED_MESSAGE

if TYPE_CHECKING:
    from app.tracing import Tracing

logger = logging.getLogger("accounts")

AVATAR_CACHE = "public, max-age=31536000, immutable"
# How long a thread running Python may keep the interpreter from the event loop (below).
SWITCH_INTERVAL_SECONDS = 0.0002
# glibc's mallopt parameter (malloc.h), and the arenas this process may have.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2
# Long enough for a full-size avatar over a slow link, short enough that a stalled client
# or a stuck dependency does not hold a connection for ever.
BODY_IDLE_TIMEOUT = 30.0
REQUEST_TIMEOUT = 120.0


def _few_malloc_arenas() -> None:
    """Let glibc's allocator keep MALLOC_ARENAS arenas, not up to eight per core.

    Each thread that allocates (the database's, hashing, documents, the event loop) would
    otherwise get an arena of its own, and each arena keeps what it once held: `make bench`'s
    peak RSS went from 153 to 127 MB with two, at the same speed. Called before any of
    those threads starts; not glibc (no `mallopt`): nothing to do.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def create_app(settings: Settings) -> ASGIApp:
    _few_malloc_arenas()
    runtime = Runtime.create(settings)
    # Email: delivers the outbox's messages in the background (core/mail/sender.py).
    sender = Sender(runtime.db, runtime.outbox, delivery_for(settings.smtp_url, settings.mail_dir))
    schema = create_schema(settings)
    openapi = openapi_document()
    pages.assets()  # fail at start-up, not at the first browser, when they are not installed
    tracing = _tracing(runtime, schema) if settings.otel_exporter_otlp_endpoint else None

    async def healthz(request: Request) -> Response:
        if await runtime.db.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    async def avatar(request: Request) -> Response:
        image = await avatars.fetch(runtime, request.path_params["key"])
        if image is None:
            return message_response(404, "No such avatar")
        etag = f'"{image.key}"'
        headers = {"etag": etag, "cache-control": AVATAR_CACHE}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(image.data, media_type=image.content_type, headers=headers)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await runtime.db.migrate()
        await runtime.db.open()
        # Everything built so far (schema, routes, imported modules) lives as long as the
        # process: keep it out of the collector's full passes, which otherwise pause every
        # request in flight for tens of milliseconds now and then.
        gc.collect()
        gc.freeze()
        # A thread running Python (the documents thread, schema/documents.py) keeps the
        # interpreter until the event loop has waited this long for it, then must hand it
        # over: a request in flight waits a fraction of a millisecond, not Python's 5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        sampler = asyncio.create_task(sample_forever(runtime))
        sender.start()
        yield
        await sender.stop()
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        process_exited()
        gc.unfreeze()
        runtime.passwords.close()
        runtime.images.close()
        schema.documents.close()
        await runtime.db.dispose()
        if tracing is not None:
            tracing.shutdown()

    view = pages.GraphiQLView(runtime, schema, operations=DOCUMENT_PATH.read_text())
    graphql = Route(GRAPHQL_PATH, view.respond, methods=["GET", "POST"])
    # Starlette adds HEAD wherever GET is allowed; a GraphQL request is its answer, and
    # Strawberry refuses HEAD, so the 405s' Allow header names exactly GET and POST.
    assert graphql.methods is not None
    graphql.methods.discard("HEAD")
    routes = [
        graphql,
        *rest_routes(runtime, schema),
        Route("/avatars/{key}", avatar, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/metrics", metrics_endpoint(runtime), methods=["GET"]),
        # Pages for browsers (GraphiQL is the /graphql view's own page) and their files.
        Route("/docs", pages.docs, methods=["GET"]),
        Route("/assets/{path:path}", pages.asset, methods=["GET"]),
        *link_page_routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: _http_error,
            Unavailable: _unavailable,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    # `POST /login/` is an unknown path (404), not a 307 to `/login`: a client following
    # the redirect would re-send its body, password included, to a URL it never chose.
    app.router.redirect_slashes = False
    asgi: ASGIApp = RequestLimits(
        HotPaths(app, routes),
        upload_max_bytes=settings.avatar_max_bytes,
        body_idle=BODY_IDLE_TIMEOUT,
        total=REQUEST_TIMEOUT,
    )
    if settings.cors_origins:
        # Around the limits, so a listed origin can read their 413/408/503 too. Without
        # listed origins the browser's same-origin rule is the whole policy.
        asgi = Cors(asgi, settings.cors_origins)
    templates = RouteTemplates(app.routes)
    if tracing is not None:
        asgi = tracing.middleware(asgi, templates)
    # Around everything else, so every answer is counted and carries its request id.
    asgi = Observe(asgi, templates)
    # Outermost, so that even the server-error page carries the security headers.
    return SecurityHeaders(asgi)


def _tracing(runtime: Runtime, schema: Schema) -> Tracing:
    # Imported here: a server without OTEL_EXPORTER_OTLP_ENDPOINT never loads OpenTelemetry.
    from app.tracing import Tracing

    return Tracing(runtime, schema)


class HotPaths:
    """Sends requests for the fixed paths (the API itself) straight to their endpoint.

    Starlette's router and its two exception layers cost about a quarter of a request here;
    for an exact path they add nothing but a lookup. Every endpoint builds its whole response
    before sending any of it, so an exception can always still be answered, by the handler
    Starlette's own exception layers would pick. Anything else (lifespan, path parameters,
    unknown paths, other methods) goes to Starlette.
    """

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self.app = app
        self.routes = {route.path: route for route in routes if "{" not in route.path}
        self.handlers = app.exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] not in (route.methods or ()):
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = next(
                self.handlers[kind] for kind in type(exc).__mro__ if kind in self.handlers
            )
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return message_response(exc.status_code, exc.detail, headers=exc.headers)


async def _unavailable(request: Request, exc: Exception) -> Response:
    # Logged where it arose (core/db.py), once; the client is told when to retry.
    assert isinstance(exc, Unavailable)
    return message_response(503, exc.message, headers={"retry-after": str(exc.retry_after)})


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return message_response(500, MASKED_MESSAGE)
