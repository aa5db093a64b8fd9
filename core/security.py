"""Password hashing and session tokens. Nothing here touches the database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import bcrypt

from core.errors import TooManyRequests

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


# Hashing threads run this much nicer than the event loop: when both want the CPU, serving
# requests comes first and logins take what is left, which is all of it when nothing else
# runs. (Linux applies a thread's own niceness; elsewhere this is skipped.)
HASHING_NICENESS = 10


class PasswordHasher:
    """bcrypt on its own worker threads, one per core, with a bounded queue.

    bcrypt releases the GIL, so hashing on threads keeps the event loop free; the queue
    bound turns a flood of logins into quick 429s instead of unbounded latency. A hash
    counts against the bound until its thread has finished it, even if the request that
    asked for it is gone.
    """

    def __init__(self, rounds: int, *, max_waiting: int | None = None) -> None:
        self.rounds = rounds
        cores = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            max_workers=cores, thread_name_prefix="password-hash", initializer=_lower_priority
        )
        self._max_in_flight = cores + (max_waiting if max_waiting is not None else 32 * cores)
        self._in_flight = 0
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(partial(_hash, password, self.rounds))

    async def verify(self, password: str, hashed: str) -> bool:
        return await self._run(partial(_verify, password, hashed))

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real check, so an unknown login looks like a wrong password."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)

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
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[], T]) -> T:
        if self._in_flight >= self._max_in_flight:
            raise TooManyRequests("Too many password checks in progress", retry_after=1)
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        job = self._pool.submit(work)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self._in_flight -= 1


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def new_session_token() -> str:
    """An opaque cookie value with 256 bits from the OS's CSPRNG."""
    return secrets.token_urlsafe(32)


def new_session_id() -> str:
    """A session's public name: 128 random bits, unrelated to its token."""
    return secrets.token_urlsafe(16)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
