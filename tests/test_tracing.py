"""Traces: exported over OTLP/HTTP to a real receiver when configured, nothing loaded when not."""

from __future__ import annotations

import gzip
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.types import StartServer

PASSWORD = "correct horse battery"
SERVER, CLIENT = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on loopback: keeps every span and resource it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, name: str, timeout: float = 20) -> Span:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for span in self.spans:
                    if span.name == name:
                        return span
            time.sleep(0.05)
        raise AssertionError(f"no span {name!r}; got {[s.name for s in self.spans]}")

    def children(self, parent: Span) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.parent_span_id == parent.span_id]


class _Export(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.path == "/v1/traces"
        assert self.headers["content-type"] == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource_spans in request.resource_spans:
                self.server.resources.append(attributes(resource_spans.resource.attributes))
                for scope_spans in resource_spans.scope_spans:
                    self.server.spans.extend(scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: _value(pair.value) for pair in items}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_rest_request_is_one_trace_of_http_graphql_and_database_spans(
    start_server: StartServer, receiver: Receiver
) -> None:
    server = start_server(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        # Even when an operator asks for every header, cookies stay out.
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=".*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE=".*",
        PYTHONPROFILEIMPORTTIME="1",
    ).wait_ready()
    with server.client() as client:
        body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
        token = client.post("/signup", json=body).cookies["session_id"]
        update = client.put(
            f"/profile?token={token}",
            json={"firstname": "Alice"},
            headers={"x-request-id": "traced-1"},
        )
        assert update.status_code == 200
        login = "mutation($i: LoginInput!) { login(input: $i) { username } }"
        variables = {"i": {"login": "alice", "password": PASSWORD}}
        client.post("/graphql", json={"query": login, "variables": variables})
        assert client.get("/graphql", params={"query": "{ me { username } }"}).status_code == 200
        http = receiver.wait_for("PUT /profile")
        operation = receiver.wait_for("mutation UpdateProfile")
        receiver.wait_for("mutation")  # the login, on /graphql's prepared path
        receiver.wait_for("query")  # `{ me }` over GET, on Strawberry's own path
    server.stop()

    assert http.kind == SERVER
    assert attributes(http.attributes)["http.route"] == "/profile"
    assert attributes(http.attributes)["accounts.request_id"] == "traced-1"
    assert operation.parent_span_id == http.span_id
    assert attributes(operation.attributes)["graphql.operation.name"] == "UpdateProfile"
    statements = receiver.children(operation)
    assert statements and all(span.kind == CLIENT for span in statements)
    sql = [attributes(span.attributes).get("db.statement", "") for span in statements]
    assert any(statement.startswith("UPDATE users") for statement in sql)
    assert {span.trace_id for span in [http, operation, *statements]} == {http.trace_id}
    # Both of /graphql's paths: an operation span under the HTTP span, statements under it.
    for path, kind in (("/graphql", "mutation"), ("/graphql", "query")):
        method = "POST" if kind == "mutation" else "GET"
        (outer,) = [span for span in receiver.spans if span.name == f"{method} {path}"]
        assert any(span.name == kind for span in receiver.children(outer))
        assert any(receiver.children(span) for span in receiver.children(outer))

    assert receiver.resources[0]["service.name"] == "accounts-api"
    request_headers = attributes(http.attributes)
    assert request_headers["http.request.header.cookie"] == ["[REDACTED]"]
    everything = repr([attributes(span.attributes) for span in receiver.spans])
    everything += repr([(span.name, [e.name for e in span.events]) for span in receiver.spans])
    for secret in (PASSWORD, token):
        assert secret not in everything
    assert "token=REDACTED" in everything
    # The control for the test below: this log does show OpenTelemetry's imports.
    assert "opentelemetry" in server.log()


def test_without_an_endpoint_no_opentelemetry_is_loaded(start_server: StartServer) -> None:
    # PYTHONPROFILEIMPORTTIME makes the interpreter log each module as it is first imported.
    server = start_server(PYTHONPROFILEIMPORTTIME="1").wait_ready()
    with server.client() as client:
        body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
        assert client.post("/signup", json=body).status_code == 200
        assert client.put("/profile", json={"firstname": "A"}).status_code == 200
        assert client.post("/graphql", json={"query": "{ me { username } }"}).status_code == 200
        assert client.get("/graphql", params={"query": "{ me { username } }"}).status_code == 200
        assert client.get("/metrics").status_code == 200
    server.stop()
    imports = [line for line in server.log().splitlines() if line.startswith("import time:")]
    assert any("prometheus_client" in line for line in imports)
    assert not any("opentelemetry" in line for line in imports)


def test_unreachable_collector_holds_neither_requests_nor_shutdown(
    start_server: StartServer,
) -> None:
    with socket.socket() as black_hole:  # takes connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        endpoint = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
        server = start_server(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        server.wait_ready()
        with server.client() as client:
            for _ in range(5):
                assert client.get("/profile").status_code == 403
        time.sleep(0.5)  # an export is under way, waiting for an answer that never comes
        started = time.monotonic()
        assert server.stop() in (0, -signal.SIGTERM)
        # The exporter alone would wait out its 10 s timeout and a retry.
        assert time.monotonic() - started < 9
    assert "Application shutdown complete" in server.log()
