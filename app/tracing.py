"""OpenTelemetry traces, exported over OTLP/HTTP (protobuf).

create_app imports this module only when OTEL_EXPORTER_OTLP_ENDPOINT is set, so a server
without it loads no OpenTelemetry code at all. The SDK, the exporter and the instrumentations
read the standard OTEL_* variables themselves (service name, resource attributes, sampler,
batch sizes, headers, timeouts, excluded URLs, captured headers).

A request's trace: the HTTP server span (ASGI instrumentation, named by the route's template),
a child span per GraphQL operation (`Schema.operation_span`, on both faces and both paths),
and a grandchild per database statement (SQLAlchemy instrumentation, statements with their
placeholders, never their parameters). No attribute holds a cookie, a token or a password:
cookie and authorization headers are redacted even when OTEL_* asks to capture headers, and
the values of query parameters are replaced in every URL attribute.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from graphql import DocumentNode, get_operation_ast
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    get_custom_headers,
    get_excluded_urls,
)
from starlette.types import ASGIApp

from app.logs import redact_query
from app.observe import METHODS, RouteTemplates
from core.request_id import REQUEST_ID
from core.runtime import Runtime
from schema.api import Schema

SERVICE = "accounts-api"
# Patterns searched in header names: these also cover set-cookie and proxy-authorization.
SECRET_HEADERS = ["cookie", "authorization"]
# Where the ASGI instrumentation writes the request's URL or its query (old and new names).
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")
# How long a stopping server waits for the collector to take the last spans. An unreachable
# one would otherwise hold the exit for the exporter's timeout and its retry (~20 s).
FLUSH_SECONDS = 5.0


class Tracing:
    """The tracer provider of this process and everything that records into it."""

    def __init__(self, runtime: Runtime, schema: Schema) -> None:
        # Flushed by the application's shutdown (bounded), not by an exit hook (unbounded).
        self.provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("accounts.graphql")
        # The instrumentation declares SQLAlchemy < 2.1; it hooks only engine events
        # (before/after_cursor_execute, handle_error, pool checkout), unchanged in 2.1, and
        # tests/test_tracing.py shows its statement spans.
        SQLAlchemyInstrumentor().instrument(
            engine=runtime.db.engine.sync_engine,
            tracer_provider=self.provider,
            skip_dep_check=True,
        )
        # The SQLite read shortcut bypasses SQLAlchemy: traced, every statement goes through it.
        runtime.db.read_through_engine()
        schema.operation_span = self.operation_span

    def middleware(self, app: ASGIApp, templates: RouteTemplates) -> ASGIApp:
        """The HTTP server span around `app`."""

        def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, str]]:
            route = templates(scope.get("path", ""))
            method = scope.get("method", "")
            return f"{method if method in METHODS else 'HTTP'} {route}", {"http.route": route}

        sanitized = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS)
        traced: ASGIApp = OpenTelemetryMiddleware(
            app,
            excluded_urls=get_excluded_urls("ASGI"),
            default_span_details=span_details,
            server_request_hook=_scrub,
            tracer_provider=self.provider,
            http_capture_headers_sanitize_fields=[*SECRET_HEADERS, *sanitized],
            exclude_spans=["receive", "send"],
        )
        return traced

    def operation_span(
        self, document: DocumentNode, operation_name: str | None
    ) -> AbstractContextManager[object]:
        """A span for one GraphQL operation: its type and name, never its text or variables."""
        operation = get_operation_ast(document, operation_name)
        kind = operation.operation.value if operation else "operation"
        if operation_name is None and operation is not None and operation.name is not None:
            operation_name = operation.name.value
        attributes = {"graphql.operation.type": kind}
        if operation_name:
            attributes["graphql.operation.name"] = operation_name
        name = f"{kind} {operation_name}" if operation_name else kind
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def shutdown(self) -> None:
        """Export what is still queued, for at most FLUSH_SECONDS, then stop."""
        # A daemon thread: if the collector does not answer, the process exits without it.
        flushing = threading.Thread(target=self.provider.shutdown, daemon=True)
        flushing.start()
        flushing.join(FLUSH_SECONDS)


def _resource() -> Resource:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; this name is only the default.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
    return resource


def _scrub(span: trace.Span, scope: dict[str, Any]) -> None:
    """Runs once the server span has its attributes: the query's values out, the id in."""
    if not span.is_recording():
        return
    raw = scope.get("query_string", b"").decode("latin-1")
    if raw:
        query = redact_query("?" + raw)[1:]
        attributes = getattr(span, "attributes", None) or {}
        for key in URL_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str):
                before = value.split("?", 1)[0] + "?" if key != "url.query" else ""
                span.set_attribute(key, before + query)
    request_id = REQUEST_ID.get()
    if request_id:
        span.set_attribute("accounts.request_id", request_id)
