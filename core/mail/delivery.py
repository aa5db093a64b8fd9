"""Where messages go: `.eml` files in MAIL_DIR (the default), or an SMTP server (SMTP_URL)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from core.mail.message import Outgoing

# Per SMTP command; a server slower than this is treated as down and retried later.
SMTP_TIMEOUT = 20.0


class PermanentFailure(Exception):
    """The server refused this message for good (e.g. every recipient rejected with 5xx);
    retrying cannot help."""


class Transport(Protocol):
    async def send(self, outgoing: Outgoing) -> None:
        """Hand one message over. PermanentFailure: never retry it; any other exception:
        retry later (and the rest of the batch too, the connection may be gone)."""


class Delivery(Protocol):
    def open(self) -> AbstractAsyncContextManager[Transport]: ...


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @property
    def requires_starttls(self) -> bool:
        """Credentials travel only over TLS. With them, `smtp://` to any host but this
        machine must upgrade with STARTTLS or send nothing: "STARTTLS when offered" alone
        would hand the password to whoever strips the offer from the server's answer."""
        credentials = self.username is not None or self.password is not None
        return credentials and not self.implicit_tls and not is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:password@]host[:port]` (STARTTLS when offered; required with
    credentials, except to this machine) or `smtps://…` (implicit TLS); user and password
    are URL-decoded. ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("must name a host, as in smtp://mail.example.com:587")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only smtp[s]://[user:password@]host[:port]")
    implicit_tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class FileDelivery:
    """Each message becomes `<MAIL_DIR>/<Message-ID>.eml`, written atomically (a temporary
    file renamed into place), so a reader never sees half a message and a message delivered
    twice after a crash is the same file."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Transport]:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        yield self

    async def send(self, outgoing: Outgoing) -> None:
        await asyncio.to_thread(self._write, outgoing)

    def _write(self, outgoing: Outgoing) -> None:
        message = outgoing.message
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(message["Message-ID"]).strip("<>"))
        data = message.as_bytes()
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.directory / f"{stem}.eml")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class SmtpDelivery:
    """One connection per batch through aiosmtplib: STARTTLS when the server offers it
    (smtp://; required when the URL has credentials and the host is not this machine, so
    a server that does not offer it gets no password and no message), or TLS from the
    start (smtps://), then AUTH when the URL has credentials."""

    def __init__(self, url: str) -> None:
        self.target = parse_smtp_url(url)
        # socket.getfqdn() (aiosmtplib's default for EHLO) may wait on DNS; this does not.
        self.local_hostname = socket.gethostname()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Transport]:
        target = self.target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.implicit_tls,
            # True: STARTTLS or an error before AUTH; None: when offered.
            start_tls=False if target.implicit_tls else (target.requires_starttls or None),
            username=target.username,
            password=target.password,
            timeout=SMTP_TIMEOUT,
            local_hostname=self.local_hostname,
        )
        async with client:
            yield _SmtpTransport(client)


class _SmtpTransport:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client

    async def send(self, outgoing: Outgoing) -> None:
        # The envelope is the one the message was built for, never parsed from its headers.
        try:
            await self.client.send_message(
                outgoing.message, sender=outgoing.sender, recipients=[outgoing.recipient]
            )
        except aiosmtplib.SMTPNotSupported:
            # An address with a non-ASCII local part, and a server without SMTPUTF8.
            raise PermanentFailure("the address needs SMTPUTF8, which the server lacks") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # The reason without the address: log lines carry no addresses.
            codes = sorted({error.code for error in exc.recipients})
            if all(code >= 500 for code in codes):
                raise PermanentFailure(f"the recipient was refused ({codes})") from None
            raise


def delivery_for(smtp_url: str, mail_dir: str) -> Delivery:
    return SmtpDelivery(smtp_url) if smtp_url else FileDelivery(mail_dir)
