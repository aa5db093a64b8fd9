"""Request ids and the HTTP series, for every request, in one pass of one ASGI layer.

It sits just inside SecurityHeaders, so every answer is counted and carries `X-Request-ID`,
the size and time limits' 413/408/503 and Starlette's 404/405 included. The per-request
work is a header scan, a context variable, two clock reads and two increments of series
found in a dict: the labels are resolved once per (route, method, status).

The id is not asgi-correlation-id's: its context variable lives in a package that imports
Starlette, and the core must read and set the id itself (core/request_id.py, for work done
later on a request's behalf); what that middleware would add here is a header scan.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import DURATION, REQUESTS
from core.request_id import REQUEST_ID

HEADER = b"x-request-id"
# The contract's well-formed id; anything else is replaced, never echoed.
WELL_FORMED_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Every path no route knows shares one label, so a scan of random paths adds one series.
UNMATCHED = "unmatched"

Series = tuple[Counter, Histogram]


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The client's id when it sent a well-formed one, else a new random one."""
    for name, value in headers:
        if name == HEADER:
            return value if WELL_FORMED_ID.fullmatch(value) else _new_id()
    return _new_id()


def _new_id() -> bytes:
    return secrets.token_hex(16).encode()


class RouteTemplates:
    """Which route's template a path belongs to, as Starlette's router would match it."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.exact: dict[str, str] = {}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        for route in routes:
            template: str | None = getattr(route, "path_format", None)
            pattern: re.Pattern[str] | None = getattr(route, "path_regex", None)
            if template is None or pattern is None:
                continue
            if "{" in template:
                self.patterns.append((pattern, template))
            else:
                self.exact.setdefault(template, template)

    def __call__(self, path: str) -> str:
        """The template of the route a path belongs to (`/avatars/{key}`), never the path."""
        template = self.exact.get(path)
        if template is not None:
            return template
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


class Observe:
    """Gives each request its id, and counts and times it under its route's template."""

    def __init__(self, app: ASGIApp, templates: RouteTemplates) -> None:
        self.app = app
        self.route = templates
        self.series: dict[tuple[str, str, int], Series] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        identifier = request_id(scope["headers"])
        # Each request runs in a task of its own, so this value ends with it; uvicorn's
        # access line and its "Exception in ASGI application" are written inside that task.
        REQUEST_ID.set(identifier.decode())
        status = 500  # what the server answers if the application fails before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, identifier)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.record(scope, status, time.perf_counter() - started)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = self.route(scope["path"])
        key = (route, method, status)
        series = self.series.get(key)
        if series is None:
            series = (REQUESTS.labels(route, method, str(status)), DURATION.labels(route, method))
            self.series[key] = series
        series[0].inc()
        series[1].observe(seconds)
