"""A real SMTP server for the tests (aiosmtpd on a free loopback port) and message helpers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.config import Settings
from core.db import Database
from tests.servers import free_port

TOKEN = re.compile(r"token=([A-Za-z0-9_-]+)")
WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class Received:
    """One message as the server got it: the envelope's recipients and the parsed message."""

    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"].addresses[0].addr_spec)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()
        return content

    @property
    def token(self) -> str:
        tokens = TOKEN.findall(self.text)
        assert len(tokens) == 1, self.text
        token: str = tokens[0]
        return token


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class Mailbox:
    """An SMTP server collecting every message it is sent; start and stop it at will
    (stopped, its port refuses connections: the mail server is down)."""

    def __init__(self, port: int | None = None, **smtp_options: Any) -> None:
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._options = smtp_options
        self._controller: Controller | None = None
        self._taken = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.received.append(Received(tuple(envelope.rcpt_tos), parse(envelope.content)))
        return "250 OK"

    def start(self) -> Mailbox:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self._options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait(self, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """The first `count` messages, once that many have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages()
            if len(messages) >= count:
                return messages[:count]
            time.sleep(0.02)
        raise AssertionError(f"{count} message(s) expected, {len(self.messages())} arrived")

    def next(self, to: str | None = None, timeout: float = WAIT_SECONDS) -> Received:
        """The next message not yet taken with `next`, checking its recipient."""
        taken = self._taken
        message = self.wait(taken + 1, timeout)[taken]
        self._taken = taken + 1
        if to is not None:
            # Addresses compare as mail servers compare them in practice: ignoring case.
            assert message.to.lower() == to.lower(), message.to
            assert tuple(r.lower() for r in message.recipients) == (to.lower(),), message
        return message

    def pending(self) -> list[Received]:
        """Messages that arrived and were not taken with `next`."""
        return self.messages()[self._taken :]


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    """Rows straight from the test's database."""

    async def run() -> list[Any]:
        database = Database(settings)
        try:
            async with database.engine.connect() as connection:
                return list((await connection.execute(text(sql), params)).all())
        finally:
            await database.dispose()

    return asyncio.run(run())


def stored_text(settings: Settings) -> str:
    """Every value of every row of every table, as one string; with SQLite also the raw
    bytes of the database file and its write-ahead log (which keep what rows once held)."""
    on_sqlite = settings.is_sqlite
    tables_sql = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if on_sqlite
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    parts = []
    for (table,) in query(settings, tables_sql):
        parts += [repr(tuple(row)) for row in query(settings, f'SELECT * FROM "{table}"')]  # noqa: S608
    if on_sqlite:
        path = Path(str(make_url(settings.database_url).database))
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                parts.append(file.read_bytes().decode("latin-1"))
    return "\n".join(parts)
