"""Password hashing, session tokens and client identity. Nothing here touches the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import bcrypt

from core import metrics
from core.errors import TooManyRequests
from core.workers import FairThreads

# bcrypt reads at most 72 bytes and refuses more, so every password is first reduced to
# a fixed-size keyed digest. The key separates this use of SHA-256 from any other, so a
# leaked table of plain SHA-256 password digests cannot be fed to our bcrypt hashes.
_PREHASH_KEY = b"accounts-api/password-prehash/v1"

# Stored hashes say how they were made, as Django's hashers do: `<scheme>$<version>$<hash>`,
# here the bcrypt hash of the keyed pre-hash above. A new scheme or pre-hash gets a new name
# or version, and hashes of an older one are upgraded at the next successful login.
SCHEME = "bcrypt_hmac_sha256"
VERSION = "1"
_PREFIX = f"{SCHEME}${VERSION}$"
# Hashes stored before the prefix existed: the same pre-hash, bare bcrypt ("$2b$12$...").
_LEGACY_PREFIX = "$2"

T = TypeVar("T")


def _prehash(password: str) -> bytes:
    digest = hmac.new(_PREHASH_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.b64encode(digest.digest())


def _hash(password: str, rounds: int) -> str:
    return _PREFIX + bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def _bcrypt_part(stored: str) -> str | None:
    """The bcrypt hash inside a stored hash of a scheme this code can check, else None."""
    if stored.startswith(_PREFIX):
        return stored[len(_PREFIX) :]
    if stored.startswith(_LEGACY_PREFIX):
        return stored
    return None


def _verify(password: str, stored: str) -> bool:
    inner = _bcrypt_part(stored)
    if inner is None:
        return False
    try:
        return bcrypt.checkpw(_prehash(password), inner.encode("ascii"))
    except ValueError:
        return False


class PasswordHasher:
    """bcrypt on its own worker threads, one per core, shared fairly between clients.

    bcrypt releases the GIL, so hashing on threads keeps the event loop free. The threads
    are shared as `core.workers.FairThreads` shares them, per client address (`network`):
    a burst from one client queues behind itself, and another client's hash starts at once
    or when one hash ends. One more thread, at the event loop's priority, takes the hash of
    a client with no other hash in flight (someone logging in) when it is free: that login
    neither waits for a flood's hash nor shares the niced threads' leftover CPU with it.
    A client may have `per_client` jobs queued or running and gets quick 429s beyond that;
    `max_waiting` bounds the jobs queued by all clients together.
    """

    def __init__(
        self,
        rounds: int,
        *,
        workers: int | None = None,
        per_client: int | None = None,
        max_waiting: int = 1024,
    ) -> None:
        self.rounds = rounds
        self._threads = FairThreads(
            "password-hash",
            _busy,
            workers=workers,
            per_client=per_client,
            max_waiting=max_waiting,
            alone_thread=True,
        )
        self._dummy_hash: str | None = None

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a thread."""
        return self._threads.queue_depth

    async def hash(self, password: str, *, client: str) -> str:
        return await self._run(partial(_hash, password, self.rounds), client)

    async def verify(self, password: str, hashed: str, *, client: str) -> bool:
        return await self._run(partial(_verify, password, hashed), client)

    async def verify_dummy(self, password: str, *, client: str) -> None:
        """Spend the time of a real check, so an unknown login looks like a wrong password."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16), client=client)
        await self.verify(password, self._dummy_hash, client=client)

    def needs_rehash(self, stored: str) -> bool:
        """Whether a hash that just verified was made another way than this one makes them."""
        if not stored.startswith(_PREFIX):
            return True
        # "$2b$12$...": the cost sits between the second and third dollar signs.
        try:
            return int(stored[len(_PREFIX) :].split("$")[2]) != self.rounds
        except (IndexError, ValueError):
            return True

    def close(self) -> None:
        self._threads.close()

    async def _run(self, work: Callable[[], T], address: str) -> T:
        return await self._threads.run(work, network(address))


def _busy() -> TooManyRequests:
    metrics.throttled("password_hash_queue")
    return TooManyRequests(
        "Too many password checks in progress", retry_after=1, limit="password_hash_queue"
    )


def network(address: str) -> str:
    """What one client controls: an IPv4 address, or an IPv6 address's /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def new_session_token() -> str:
    """An opaque cookie value with 256 bits from the OS's CSPRNG."""
    return secrets.token_urlsafe(32)


def new_session_id() -> str:
    """A session's public name: 128 random bits, unrelated to its token."""
    return secrets.token_urlsafe(16)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
