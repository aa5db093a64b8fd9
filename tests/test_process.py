"""The server process: a crash keeps what was acknowledged, SIGTERM drains and exits."""

from __future__ import annotations

import signal
import socket
import time

import httpx

from tests.types import StartServer

PASSWORD = "correct horse battery"


def test_kill_9_after_200_loses_nothing_acknowledged(start_server: StartServer) -> None:
    server = start_server().wait_ready()
    with server.client() as client:
        body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
        assert client.post("/signup", json=body).status_code == 200
        update = client.put("/profile", json={"firstname": "Alice", "lastname": "Liddell"})
        assert update.status_code == 200
    # No graceful shutdown, no chance to flush anything after the 200s.
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = start_server().wait_ready()
    with restarted.client() as client:
        login = client.post("/login", json={"login": "alice", "password": PASSWORD})
        assert login.status_code == 200
        assert login.json()["firstname"] == "Alice"
        assert login.json()["lastname"] == "Liddell"


def _raw_request(port: int, method: str, path: str, body: bytes, cookie: str) -> socket.socket:
    """Open a connection and send the head of a request, but not its body yet."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCookie: session_id={cookie}\r\n\r\n"
    )
    connection.sendall(head.encode())
    return connection


def test_sigterm_finishes_requests_in_flight_then_exits(start_server: StartServer) -> None:
    server = start_server().wait_ready()
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    cookie = httpx.post(f"{server.url}/signup", json=body).cookies["session_id"]
    update = b'{"firstname": "Drained"}'
    in_flight = _raw_request(server.port, "PUT", "/profile", update, cookie)
    time.sleep(0.3)  # the server has the request head and waits for its body

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # New connections are no longer accepted while the old request is still served.
    try:
        refused = httpx.get(f"{server.url}/healthz", timeout=2).status_code
    except httpx.TransportError:
        refused = None
    assert refused is None

    in_flight.sendall(update)
    # The server closes the connection after this response, as it is shutting down.
    chunks = []
    while chunk := in_flight.recv(65536):
        chunks.append(chunk)
    in_flight.close()
    reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 200"), reply
    assert '"firstname":"Drained"' in reply.replace(" ", "")

    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is
    # "terminated by SIGTERM"; the log shows that the shutdown ran to the end.
    assert server.process.wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    assert time.monotonic() - started < 5

    restarted = start_server().wait_ready()
    profile = httpx.get(f"{restarted.url}/profile", headers={"cookie": f"session_id={cookie}"})
    assert profile.json()["firstname"] == "Drained"
