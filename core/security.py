"""Password hashing, session tokens and client identity. Nothing here touches the database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import itertools
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

import bcrypt

from core import metrics
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


@dataclass(eq=False)
class _Job:
    work: Callable[[], object]
    client: str
    future: asyncio.Future[object]
    order: int


class PasswordHasher:
    """bcrypt on its own worker threads, one per core, shared fairly between clients.

    bcrypt releases the GIL, so hashing on threads keeps the event loop free. Jobs wait in
    a queue per client (its address's `network`),
    and a thread that comes free takes the next job of the client it served least recently.
    A burst from one client therefore queues behind itself: another client's job waits for
    one thread to finish the hash it is on, however long the burst. A client may have
    `per_client` jobs queued or running and gets quick 429s beyond that; `max_waiting`
    bounds the jobs queued by all clients together.
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
        self._workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            max_workers=self._workers,
            thread_name_prefix="password-hash",
            initializer=_lower_priority,
        )
        self._per_client = per_client if per_client is not None else 32 * self._workers
        self._max_waiting = max_waiting
        self._waiting: dict[str, deque[_Job]] = {}
        self._running: dict[str, int] = {}
        # When each client with work queued or running last had a job started.
        self._served: dict[str, int] = {}
        self._dispatches = itertools.count()
        self._busy = 0
        self._queued = 0
        self._order = itertools.count()
        self._dummy_hash: str | None = None

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a thread."""
        return self._queued

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
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[], T], address: str) -> T:
        client = network(address)
        queued = self._waiting.setdefault(client, deque())
        must_wait = self._busy >= self._workers
        if len(queued) + self._running.get(client, 0) >= self._per_client or (
            must_wait and self._queued >= self._max_waiting
        ):
            if not queued:
                del self._waiting[client]
            metrics.throttled("password_hash_queue")
            raise TooManyRequests(
                "Too many password checks in progress", retry_after=1, limit="password_hash_queue"
            )
        job = _Job(work, client, asyncio.get_running_loop().create_future(), next(self._order))
        queued.append(job)
        self._queued += 1
        self._dispatch()
        try:
            return cast(T, await job.future)
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    def _dispatch(self) -> None:
        while self._busy < self._workers and self._waiting:
            # The client served least recently goes next (one never served before all
            # others, in the order they came): round robin, with a newcomer's job next.
            client = min(
                self._waiting, key=lambda c: (self._served.get(c, -1), self._waiting[c][0].order)
            )
            queued = self._waiting[client]
            job = queued.popleft()
            if not queued:
                del self._waiting[client]
            self._queued -= 1
            self._busy += 1
            self._running[client] = self._running.get(client, 0) + 1
            self._served[client] = next(self._dispatches)
            loop = job.future.get_loop()
            running = self._pool.submit(job.work)
            running.add_done_callback(partial(_call_soon, loop, self._finish, job))

    def _finish(self, job: _Job, running: Future[object]) -> None:
        self._busy -= 1
        self._running[job.client] -= 1
        if not self._running[job.client]:
            del self._running[job.client]
            if job.client not in self._waiting:
                del self._served[job.client]
        if job.future.done():  # its caller is gone
            pass
        elif running.cancelled():  # the hasher was closed before a thread took it
            job.future.cancel()
        elif (error := running.exception()) is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(running.result())
        self._dispatch()

    def _withdraw(self, job: _Job) -> None:
        """Forget a job whose caller is gone, unless a thread already has it."""
        queued = self._waiting.get(job.client)
        if queued is not None and job in queued:
            queued.remove(job)
            self._queued -= 1
            if not queued:
                del self._waiting[job.client]
                if job.client not in self._running:
                    self._served.pop(job.client, None)


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[_Job, Future[object]], None],
    job: _Job,
    running: Future[object],
) -> None:
    # Runs on the hashing thread; the bookkeeping belongs to the event loop's thread.
    with contextlib.suppress(RuntimeError):  # the loop closed while the hash ran
        loop.call_soon_threadsafe(callback, job, running)


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
