"""The request head a real server accepts: bounded, refused with 431, the server unharmed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from app.protocol import HEAD_MAX_BYTES, HEADERS_MAX
from tests.servers import Server
from tests.types import StartServer


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server().wait_ready()


def exchange(server: Server, request: bytes) -> bytes:
    """Send raw bytes on a new connection; everything the server answers until it closes
    (the last request says `Connection: close`)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(request)
        return b"".join(iter(lambda: connection.recv(65536), b""))


def answers(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """Each (status, body) in a stream of HTTP/1.1 responses with content-length."""
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(headers[b"content-length"])
        yield int(lines[0].split()[1]), rest[:length]
        raw = rest[length:]


def get(*headers: bytes) -> bytes:
    fields = b"".join(header + b"\r\n" for header in headers)
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n"


def assert_refused(raw: bytes) -> None:
    ((status, body),) = answers(raw)
    assert status == 431
    assert set(json.loads(body)) == {"message"}


def test_a_one_megabyte_header_line_is_refused(server: Server) -> None:
    assert_refused(exchange(server, get(b"X-Big: " + b"a" * 1024 * 1024)))
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_ten_thousand_headers_are_refused(server: Server) -> None:
    assert_refused(exchange(server, get(*(b"X-H%d: v" % i for i in range(10_000)))))
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_more_headers_than_the_limit_are_refused_even_when_short(server: Server) -> None:
    assert_refused(exchange(server, get(*(b"a: b" for _ in range(HEADERS_MAX + 1)))))
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_one_megabyte_url_is_refused(server: Server) -> None:
    request = b"GET /healthz?q=" + b"a" * 1024 * 1024 + b" HTTP/1.1\r\nHost: x\r\n"
    request += b"Connection: close\r\n\r\n"
    assert_refused(exchange(server, request))


def test_a_head_within_the_limits_is_served(server: Server) -> None:
    count = HEADERS_MAX - 2
    value = b"v" * (HEAD_MAX_BYTES // count - 32)
    raw = exchange(server, get(*(b"X-H%d: %s" % (i, value) for i in range(count))))
    assert [status for status, _ in answers(raw)] == [200]


def test_a_body_is_not_counted_as_head_even_in_the_same_packet(server: Server) -> None:
    body = json.dumps({"login": "alice", "password": "p" * 200_000}).encode()
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n" % len(body)
    # Twice on one connection: the second head is counted afresh. (No such account: 403.)
    raw = exchange(server, head + b"\r\n" + body + head + b"Connection: close\r\n\r\n" + body)
    assert [status for status, _ in answers(raw)] == [403, 403]
