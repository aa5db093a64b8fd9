"""Password hashing and session tokens, without a database or HTTP."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from functools import partial

import bcrypt
import pytest

from core.errors import TooManyRequests
from core.security import SCHEME, VERSION, PasswordHasher, new_session_token, token_digest
from core.workers import NICENESS, FairThreads

CLIENT = "192.0.2.1"


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(4)
    yield hasher
    hasher.close()


def test_stored_hash_says_how_it_was_made(hasher: PasswordHasher) -> None:
    stored = asyncio.run(hasher.hash("correct horse battery", client=CLIENT))
    scheme, version, inner = stored.split("$", 2)
    assert (scheme, version) == (SCHEME, VERSION)
    assert inner.startswith("$2b$04$")
    assert "correct horse" not in stored
    assert not hasher.needs_rehash(stored)


def test_right_password_verifies_and_a_wrong_one_does_not(hasher: PasswordHasher) -> None:
    stored = asyncio.run(hasher.hash("correct horse battery", client=CLIENT))
    assert asyncio.run(hasher.verify("correct horse battery", stored, client=CLIENT))
    assert not asyncio.run(hasher.verify("correct horse batterY", stored, client=CLIENT))


def test_every_character_of_a_long_passphrase_counts(hasher: PasswordHasher) -> None:
    passphrase = "x" * 89 + "a" + "y" * 10
    stored = asyncio.run(hasher.hash(passphrase, client=CLIENT))
    changed = passphrase[:89] + "b" + passphrase[90:]
    assert asyncio.run(hasher.verify(passphrase, stored, client=CLIENT))
    assert not asyncio.run(hasher.verify(changed, stored, client=CLIENT))


def test_hash_from_before_the_scheme_prefix_verifies_and_asks_for_an_upgrade(
    hasher: PasswordHasher,
) -> None:
    current = asyncio.run(hasher.hash("correct horse battery", client=CLIENT))
    legacy = current.split("$", 2)[2]  # the bare bcrypt hash, as stored before
    assert asyncio.run(hasher.verify("correct horse battery", legacy, client=CLIENT))
    assert hasher.needs_rehash(legacy)


def test_other_rounds_ask_for_an_upgrade(hasher: PasswordHasher) -> None:
    stronger = PasswordHasher(5)
    try:
        assert hasher.needs_rehash(
            asyncio.run(stronger.hash("correct horse battery", client=CLIENT))
        )
    finally:
        stronger.close()


@pytest.mark.parametrize(
    "stored", ["", "plain text", "md5$1$abc", f"{SCHEME}$1$not bcrypt", "$2b$04$short"]
)
def test_unknown_or_damaged_hashes_never_verify(hasher: PasswordHasher, stored: str) -> None:
    assert not asyncio.run(hasher.verify("anything at all", stored, client=CLIENT))
    assert hasher.needs_rehash(stored)


def test_raw_bcrypt_of_the_password_is_not_accepted(hasher: PasswordHasher) -> None:
    # Without the keyed pre-hash a stolen table of plain bcrypt hashes would verify.
    plain = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(4)).decode()
    assert not asyncio.run(hasher.verify("correct horse battery", plain, client=CLIENT))


def test_session_tokens_are_long_random_and_stored_as_a_digest() -> None:
    tokens = {new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)
    token = tokens.pop()
    assert token_digest(token) == token_digest(token)
    assert token not in token_digest(token) and len(token_digest(token)) == 64


def _finishing_order(hasher: PasswordHasher, jobs: list[str]) -> list[str]:
    """Submit one real hash per entry of `jobs` (the client's name), in that order, all at
    once; the clients in the order their hashes finished."""

    async def run() -> list[str]:
        finished: list[str] = []

        async def one(client: str) -> None:
            await hasher.hash("correct horse battery", client=client)
            finished.append(client)

        await asyncio.gather(*(one(client) for client in jobs))
        return finished

    return asyncio.run(run())


def test_a_burst_from_one_client_delays_another_by_at_most_one_hash() -> None:
    # Real bcrypt at a cost where a hash takes tens of milliseconds, one thread: the order
    # in which jobs finish is the order the queue served them.
    hasher = PasswordHasher(10, workers=1)
    try:
        order = _finishing_order(hasher, ["flood"] * 8 + ["other"])
    finally:
        hasher.close()
    # The flood's first two hashes (one on the thread kept for a client alone, one on the
    # niced thread) were running when the other client's arrived; it took the kept thread
    # when the first ended, before the rest of the flood.
    assert order.index("other") <= 2


def test_clients_take_turns() -> None:
    """The niced threads serve clients in turn. One thread and no kept thread here, so the
    order in which jobs start is the order the queue served them."""
    started: list[str] = []

    async def run() -> None:
        threads = FairThreads("t", RuntimeError, workers=1)
        try:
            jobs = ["a"] * 4 + ["b"] * 4 + ["c"] * 2
            await asyncio.gather(*(threads.run(partial(started.append, c), c) for c in jobs))
        finally:
            threads.close()

    asyncio.run(run())
    assert started == ["a", "b", "c", "a", "b", "c", "a", "b", "a", "b"]


def test_a_client_past_its_bound_is_refused_and_others_are_not() -> None:
    async def run() -> tuple[list[str | BaseException], list[str | BaseException]]:
        hasher = PasswordHasher(8, workers=1, per_client=3)
        try:
            flood = [hasher.hash("correct horse battery", client="flood") for _ in range(6)]
            other = [hasher.hash("correct horse battery", client="other") for _ in range(2)]
            results = await asyncio.gather(*flood, *other, return_exceptions=True)
        finally:
            hasher.close()
        return results[:6], results[6:]

    flood, other = asyncio.run(run())
    assert [isinstance(result, str) for result in flood] == [True] * 3 + [False] * 3
    assert all(isinstance(result, TooManyRequests) for result in flood[3:])
    assert all(isinstance(result, str) for result in other)


def test_a_caller_that_gives_up_frees_its_place() -> None:
    async def run() -> int:
        hasher = PasswordHasher(8, workers=1, per_client=3)
        try:
            # Both threads busy (the one kept for a client alone and the niced one), a third
            # job waits.
            running = [
                asyncio.ensure_future(hasher.hash("correct horse battery", client="a"))
                for _ in range(2)
            ]
            waiting = asyncio.ensure_future(hasher.hash("correct horse battery", client="a"))
            await asyncio.sleep(0)
            waiting.cancel()
            await asyncio.sleep(0)
            depth = hasher.queue_depth
            # The cancelled job's place is free again: a new one is accepted.
            assert await hasher.hash("correct horse battery", client="a")
            await asyncio.gather(*running)
        finally:
            hasher.close()
        return depth

    assert asyncio.run(run()) == 0


def test_a_client_alone_gets_its_own_thread_beside_a_burst() -> None:
    """A burst holds the niced thread and fills the queue; a client with nothing else in
    flight starts at once on the thread kept for that, at the event loop's priority. The
    burst gets that thread only for a job sent while it had nothing else in flight."""

    def work(gate: threading.Event) -> tuple[str, int]:
        gate.wait(10)
        # getpriority(PRIO_PROCESS, 0) reads the calling thread's own niceness on Linux.
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, 0)

    async def run() -> tuple[list[tuple[str, int]], tuple[str, int], list[bool]]:
        threads = FairThreads("t", RuntimeError, workers=1, alone_thread=True)
        first, rest = threading.Event(), threading.Event()
        try:
            opening = asyncio.ensure_future(threads.run(partial(work, first), "flood"))
            burst = [
                asyncio.ensure_future(threads.run(partial(work, rest), "flood")) for _ in range(2)
            ]
            await asyncio.sleep(0.05)
            first.set()
            await opening
            # The kept thread is free again, but the burst still has jobs in flight.
            late = asyncio.ensure_future(threads.run(partial(work, rest), "flood"))
            await asyncio.sleep(0.05)
            alone = await asyncio.wait_for(threads.run(partial(work, first), "other"), 5)
            waiting = [job.done() for job in [*burst[1:], late]]
            rest.set()
            ran = [opening.result(), *await asyncio.gather(*burst, late)]
        finally:
            threads.close()
        return ran, alone, waiting

    ran, alone, waiting = asyncio.run(run())
    serving = os.getpriority(os.PRIO_PROCESS, 0)
    assert alone == ("t-alone_0", serving)
    # The burst's queued jobs had not started when the other client's job was done.
    assert waiting == [False, False]
    assert ran[0] == ("t-alone_0", serving)
    assert all(job == ("t_0", min(serving + NICENESS, 19)) for job in ran[1:])


def _named_after(gate: threading.Event) -> str:
    gate.wait(10)
    return threading.current_thread().name


def test_the_kept_thread_come_free_takes_a_waiting_client_alone_first() -> None:
    """A login that came while the kept thread was busy takes it as soon as it is free,
    rather than waiting behind a burst for the niced thread."""

    async def run() -> tuple[str, bool]:
        threads = FairThreads("t", RuntimeError, workers=1, alone_thread=True)
        first, rest = threading.Event(), threading.Event()
        try:
            opening = asyncio.ensure_future(threads.run(partial(_named_after, first), "flood"))
            burst = [
                asyncio.ensure_future(threads.run(partial(_named_after, rest), "flood"))
                for _ in range(3)
            ]
            await asyncio.sleep(0.05)
            login = asyncio.ensure_future(threads.run(partial(_named_after, first), "login"))
            await asyncio.sleep(0.05)
            first.set()
            await opening
            ran_on = await asyncio.wait_for(login, 5)
            burst_waiting = not any(job.done() for job in burst)
            rest.set()
            await asyncio.gather(*burst)
        finally:
            threads.close()
        return ran_on, burst_waiting

    assert asyncio.run(run()) == ("t-alone_0", True)


def test_a_client_alone_is_not_refused_for_a_full_queue_while_the_kept_thread_is_free() -> None:
    async def run() -> str:
        threads = FairThreads("t", RuntimeError, workers=1, max_waiting=0, alone_thread=True)
        first, rest = threading.Event(), threading.Event()
        try:
            opening = asyncio.ensure_future(threads.run(partial(_named_after, first), "flood"))
            second = asyncio.ensure_future(threads.run(partial(_named_after, rest), "flood"))
            await asyncio.sleep(0.05)
            # Both threads busy and no room to wait: refused.
            with pytest.raises(RuntimeError):
                await threads.run(partial(_named_after, rest), "flood")
            first.set()
            await opening
            # The kept thread is free again: another client alone is taken at once.
            ran_on = await asyncio.wait_for(threads.run(partial(_named_after, first), "login"), 5)
            rest.set()
            await second
        finally:
            threads.close()
        return ran_on

    assert asyncio.run(run()) == "t-alone_0"
