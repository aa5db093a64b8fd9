"""Real server processes (`python -m app`) for tests that need more than one, or a crash;
HTTPS ones with a throw-away certificate, and small static sites (a frontend elsewhere)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import trustme

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
# PostgreSQL needs a SECRET_KEY (SQLite makes one up); the tests' own, never a real one.
TEST_SECRET_KEY = "test-secret-key-for-the-test-suite-only"


def with_secret_key(database_url: str, settings: dict[str, str]) -> dict[str, str]:
    """`settings` with SECRET_KEY added for PostgreSQL, unless the test chose one itself."""
    if database_url.startswith("postgresql") and "SECRET_KEY" not in settings:
        return {**settings, "SECRET_KEY": TEST_SECRET_KEY}
    return settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificate:
    """A throw-away certificate for some host names, from a throw-away CA (trustme)."""

    cert_file: Path
    key_file: Path
    leaf: trustme.LeafCert
    trust: ssl.SSLContext  # a client context that trusts it

    @classmethod
    def issue(cls, directory: Path, *names: str) -> Certificate:
        ca = trustme.CA()
        leaf = ca.issue_cert(*names)
        cert_file, key_file = directory / "cert.pem", directory / "key.pem"
        cert_file.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key_file))
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        return cls(cert_file, key_file, leaf, trust)


class Server:
    """One `python -m app` process on a free loopback port, its output kept in a file."""

    scheme = "http"
    verify: ssl.SSLContext | bool = True

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATABASE_URL": database_url,
            "BCRYPT_ROUNDS": "4",
            "MAIL_DIR": str(log_dir / "mail"),
            **with_secret_key(database_url, settings),
        }
        with self.log_path.open("wb") as log:
            # The command is this class's own, never input.
            self.process = subprocess.Popen(  # noqa: S603
                self.command(), cwd=ROOT, env=env, stdout=log, stderr=log
            )

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app"]

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                ready = httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify)
                if ready.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {START_TIMEOUT} s:\n{self.log()}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, verify=self.verify)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send `sig` and wait for the exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


class HttpsServer(Server):
    """The same over HTTPS: uvicorn run directly on `app.asgi:app` with a certificate.

    (The service leaves TLS to the proxy in front, so `python -m app` has no option for it.)
    """

    scheme = "https"

    def __init__(
        self, certificate: Certificate, database_url: str, log_dir: Path, **settings: str
    ) -> None:
        self.certificate = certificate
        self.verify = certificate.trust
        super().__init__(database_url, log_dir, **settings)

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "app.asgi:app"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--ssl-certfile", str(self.certificate.cert_file)),
            *("--ssl-keyfile", str(self.certificate.key_file)),
        ]


class StaticSite:
    """One HTML page, served from a thread on a free loopback port (HTTPS with a certificate).

    It stands for a frontend on another origin or site than the service.
    """

    def __init__(self, html: str, certificate: Certificate | None = None) -> None:
        body = html.encode()

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the tests read what the browser saw, not an access log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        if certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            certificate.leaf.configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
