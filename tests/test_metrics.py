"""GET /metrics: the contract's series, route templates as labels, the address rule, workers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app.server import create_app
from core.config import SettingsError, load_settings
from tests.faces import Face
from tests.servers import Server
from tests.types import MakeSettings, StartServer

PASSWORD = "correct horse battery"
LOCAL = ("127.0.0.1", 50000)
SERIES = {
    "accounts_http_requests": "counter",
    "accounts_http_request_duration_seconds": "histogram",
    "accounts_logins": "counter",
    "accounts_throttled": "counter",
    "accounts_password_hash_queue_depth": "gauge",
    "accounts_outbox_messages": "gauge",
    "accounts_db_pool_connections_in_use": "gauge",
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counted(name: str, **labels: str) -> float:
    """This (test) process's value of a series, 0 when it has none yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def client_at(
    make_settings: MakeSettings, address: tuple[str, int] = LOCAL, **settings: object
) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(**settings)), client=address) as client:
        yield client


def test_metrics_serve_every_series_of_the_contract(make_settings: MakeSettings) -> None:
    with client_at(make_settings) as client:
        client.get("/healthz")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {name: families[name].type for name in SERIES} == SERIES
    samples = parse(response.text)
    for outcome in ("success", "wrong_credentials", "totp_required", "throttled"):
        assert ("accounts_logins_total", frozenset({("outcome", outcome)})) in samples
    for state in ("waiting", "failed"):
        assert ("accounts_outbox_messages", frozenset({("state", state)})) in samples
    healthz = {"route": "/healthz", "method": "GET"}
    assert value(samples, "accounts_http_requests_total", **healthz, status="200") >= 1
    assert value(samples, "accounts_http_request_duration_seconds_count", **healthz) >= 1


def test_metrics_speak_openmetrics_to_a_scraper_that_prefers_it(
    make_settings: MakeSettings,
) -> None:
    accept = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5"
    with client_at(make_settings) as client:
        response = client.get("/metrics", headers={"accept": accept})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "accounts_logins_total" in response.text


def test_login_outcomes_and_throttling_are_counted(face: Face) -> None:
    before = {
        outcome: counted("accounts_logins_total", outcome=outcome)
        for outcome in ("success", "wrong_credentials", "throttled")
    }
    limit = {"limit": "login_failures_per_account"}
    throttled_before = counted("accounts_throttled_total", **limit)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.login("alice", PASSWORD).status == 200
    face.client.cookies.clear()  # a stranger's browser: no device cookie of alice's
    for _ in range(10):
        assert face.login("alice", "not the password").status == 403
    assert face.login("alice", PASSWORD).status == 429
    assert face.login("nobody", PASSWORD).status == 403  # unknown names count alike
    assert counted("accounts_logins_total", outcome="success") - before["success"] == 1
    wrong = counted("accounts_logins_total", outcome="wrong_credentials")
    assert wrong - before["wrong_credentials"] == 11
    assert counted("accounts_logins_total", outcome="throttled") - before["throttled"] == 1
    assert counted("accounts_throttled_total", **limit) - throttled_before == 1


def test_routes_are_labelled_by_template_never_by_path(make_settings: MakeSettings) -> None:
    with client_at(make_settings) as client:
        before = counted(
            "accounts_http_requests_total", route="/avatars/{key}", method="GET", status="404"
        )
        for key in ("first-key", "second-key"):
            assert client.get(f"/avatars/{key}").status_code == 404
        for n in range(30):
            client.get(f"/scanner/probe-{n}.php")
            client.request("BREW", f"/coffee-{n}")
        samples = parse(client.get("/metrics").text)
    after = value(
        samples, "accounts_http_requests_total", route="/avatars/{key}", method="GET", status="404"
    )
    assert after - before == 2
    http = [dict(labels) for name, labels in samples if name.startswith("accounts_http")]
    routes = {labels["route"] for labels in http}
    methods = {labels["method"] for labels in http}
    assert routes >= {"/avatars/{key}", "unmatched", "/metrics"}
    assert not any("key" in route and "{" not in route for route in routes)
    assert not any("probe" in route or "coffee" in route for route in routes)
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert "BREW" not in methods and "OTHER" in methods
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(samples, "accounts_http_requests_total", **unmatched) >= 30


@pytest.mark.parametrize(
    ("address", "settings", "headers", "status"),
    [
        (("127.0.0.1", 1), {}, {}, 200),
        (("::1", 1), {}, {}, 200),
        (("::ffff:127.0.0.1", 1), {}, {}, 200),  # IPv4 through a dual-stack socket
        (("203.0.113.9", 1), {}, {}, 404),
        (("203.0.113.9", 1), {"metrics_allow": "203.0.113.0/24"}, {}, 200),
        (("127.0.0.1", 1), {"metrics_allow": ""}, {}, 404),
        # Behind a trusted proxy on this host, the client it forwards for is who asks.
        (("127.0.0.1", 1), {"trusted_proxies": "127.0.0.1"}, {"x-forwarded-for": "8.8.8.8"}, 404),
        (("127.0.0.1", 1), {"trusted_proxies": "127.0.0.1"}, {}, 200),
        # Untrusted, a forwarded address is only a claim.
        (("8.8.8.8", 1), {}, {"x-forwarded-for": "127.0.0.1"}, 404),
    ],
)
def test_metrics_answer_only_allowed_addresses(
    make_settings: MakeSettings,
    address: tuple[str, int],
    settings: dict[str, str],
    headers: dict[str, str],
    status: int,
) -> None:
    with client_at(make_settings, address, **settings) as client:
        response = client.get("/metrics", headers=headers)
        unknown = client.get("/no-such-page")
    assert response.status_code == status
    if status == 404:
        # Refused exactly as a path that does not exist.
        assert response.json() == unknown.json()
        assert "accounts_" not in response.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_ALLOW", "10.0.0.0/33"),
        ("METRICS_ALLOW", "127.0.0.1, localhost"),
        ("LOG_FORMAT", "xml"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ],
)
def test_invalid_operations_setting_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_metrics_allow_reads_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_ALLOW", "10.1.0.0/16, 2001:db8::/32")
    assert [str(net) for net in load_settings().metrics_allow] == ["10.1.0.0/16", "2001:db8::/32"]
    monkeypatch.delenv("METRICS_ALLOW")
    assert [str(net) for net in load_settings().metrics_allow] == ["127.0.0.1/32", "::1/128"]


def test_server_with_invalid_metrics_allow_does_not_start(start_server: StartServer) -> None:
    server = start_server(METRICS_ALLOW="everyone")
    assert server.process.wait(60) == 2
    assert "METRICS_ALLOW" in server.log()


# --- several server processes: WORKERS=2 -----------------------------------------------


def _workers(server: Server) -> list[int]:
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _serving_worker(connection: socket.socket, server: Server, workers: list[int]) -> int:
    """The worker process holding the server's end of this client connection."""
    client_port = connection.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if (local_port, remote_port) == (server.port, client_port):
            inode = fields[9]
            return next(pid for pid in workers if inode in _socket_inodes(pid))
    raise AssertionError("no server socket for this connection")


def _request(connection: socket.socket, method: str, path: str, body: bytes = b"") -> str:
    """One HTTP/1.1 request on a kept-alive connection; the whole response as text."""
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    connection.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    header, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in header.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += connection.recv(65536)
    return (header + b"\r\n\r\n" + rest).decode()


def test_one_scrape_adds_up_every_worker(start_server: StartServer) -> None:
    limits = {"LOGIN_FAILURES_PER_IP": "100000", "LOGIN_FAILURES_PER_ACCOUNT": "100000"}
    server = start_server(WORKERS="2", **limits).wait_ready()
    deadline = time.monotonic() + 30
    while len(_workers(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _workers(server)
    assert len(workers) == 2
    # Connections until each worker holds some; the kernel decides who accepts which.
    by_worker: dict[int, list[socket.socket]] = {pid: [] for pid in workers}
    opened: list[socket.socket] = []
    try:
        while min(map(len, by_worker.values())) < 2 and len(opened) < 200:
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            opened.append(connection)
            assert _request(connection, "GET", "/avatars/probe").startswith("HTTP/1.1 404")
            by_worker[_serving_worker(connection, server, workers)].append(connection)
        assert all(len(held) >= 2 for held in by_worker.values())
        wrong = b'{"login": "nobody", "password": "not a password"}'
        for connection in opened:
            assert _request(connection, "POST", "/login", wrong).startswith("HTTP/1.1 403")
        # Whichever worker answers the scrape, it shows the sum of both.
        for held in by_worker.values():
            scrape = _request(held[0], "GET", "/metrics")
            samples = parse(scrape.partition("\r\n\r\n")[2])
            served = {"route": "/avatars/{key}", "method": "GET", "status": "404"}
            assert value(samples, "accounts_http_requests_total", **served) == len(opened)
            logins = value(samples, "accounts_logins_total", outcome="wrong_credentials")
            assert logins == len(opened)
            gauges = [name for name, _ in samples if name == "accounts_password_hash_queue_depth"]
            assert gauges == ["accounts_password_hash_queue_depth"]  # one series, not one a pid
    finally:
        for connection in opened:
            connection.close()
    directory = Path(_environ(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.is_dir()
    server.stop()
    assert not directory.exists()  # the app's own directory, removed when it stops


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_a_single_process_serves_its_own_registry(start_server: StartServer) -> None:
    server = start_server().wait_ready()
    with server.client() as client:
        assert client.get("/profile").status_code == 403
        text = client.get("/metrics").text
    samples = parse(text)
    served = {"route": "/profile", "method": "GET", "status": "403"}
    assert value(samples, "accounts_http_requests_total", **served) == 1
    # One process: prometheus-client's own process series come along.
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
