"""Worker threads for CPU-heavy work (password hashes, new documents), and turns by client.

Such work mostly releases the GIL, so on threads it leaves the event loop free; but it still
wants whole cores. Threads for work that releases the GIL run nicer than the event loop:
when both want the CPU, serving requests comes first and the heavy work takes what is left,
which is all of it when nothing else runs. (Linux applies a thread's own niceness;
elsewhere this is skipped.) `FairThreads` also shares its threads fairly between clients,
and may keep one more at the event loop's priority for a client with nothing else in flight
(one login beside another client's burst); `FairTurns` shares one thing only one may hold at
a time (SQLite's write lock) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

NICENESS = 10

T = TypeVar("T")


def lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


@dataclass(eq=False)
class _Job:
    work: Callable[[], object]
    client: str
    future: asyncio.Future[object]
    order: int
    lone: bool  # its client had nothing else queued or running when it came
    alone: bool = False  # it runs on the thread kept for such jobs


class FairThreads:
    """Worker threads shared fairly between clients (an address's `core.security.network`).

    Jobs wait in a queue per client, and a thread that comes free takes the next job of the
    client it served least recently: a burst from one client queues behind itself, and
    another client's job waits at most for one job to end, however long the burst. A client
    may have `per_client` jobs queued or running, and all clients together `max_waiting`
    queued; past either, `refuse()` is raised at once.

    With `alone_thread`, one more thread, at the event loop's own priority, takes the job of
    a client that has no other job queued or running (the oldest such, when it comes free):
    such a client (one login among a flood of another's signups) neither waits for a job to
    end nor shares the niced threads' leftover CPU with the burst, and is never refused for
    a full queue while that thread is free; a burst gets at most its first job there (many
    clients with one job each can keep it busy, at the event loop's priority, one core at
    most).
    Everything but the work itself runs on the event loop's thread.
    """

    def __init__(
        self,
        name: str,
        refuse: Callable[[], Exception],
        *,
        workers: int | None = None,
        per_client: int | None = None,
        max_waiting: int = 1024,
        nice: bool = True,
        alone_thread: bool = False,
    ) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            self._workers, thread_name_prefix=name, initializer=lower_priority if nice else None
        )
        self._alone = ThreadPoolExecutor(1, f"{name}-alone") if alone_thread else None
        self._alone_busy = False
        self._closed = False
        self._refuse = refuse
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

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a thread."""
        return self._queued

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._alone is not None:
            self._alone.shutdown(wait=False, cancel_futures=True)

    async def run(self, work: Callable[[], T], client: str) -> T:
        """`work()` on a thread, when `client`'s turn comes."""
        queued = self._waiting.setdefault(client, deque())
        running = self._running.get(client, 0)
        lone = not queued and not running
        must_wait = not (lone and self._alone_free()) and self._busy >= self._workers
        if len(queued) + running >= self._per_client or (
            must_wait and self._queued >= self._max_waiting
        ):
            if not queued:
                del self._waiting[client]
            raise self._refuse()
        future = asyncio.get_running_loop().create_future()
        job = _Job(work, client, future, next(self._order), lone)
        queued.append(job)
        self._queued += 1
        self._dispatch()
        try:
            return cast(T, await job.future)
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    def _alone_free(self) -> bool:
        return self._alone is not None and not self._alone_busy and not self._closed

    def _dispatch(self) -> None:
        if self._alone_free():
            # The thread kept for a client alone: the oldest job that came alone.
            lone = [client for client, jobs in self._waiting.items() if jobs[0].lone]
            if lone:
                job = self._take(min(lone, key=lambda c: self._waiting[c][0].order))
                job.alone = self._alone_busy = True
                self._start(job, cast(ThreadPoolExecutor, self._alone))
        while self._busy < self._workers and self._waiting and not self._closed:
            # The client served least recently goes next (one never served before all
            # others, in the order they came): round robin, with a newcomer's job next.
            client = min(
                self._waiting, key=lambda c: (self._served.get(c, -1), self._waiting[c][0].order)
            )
            self._busy += 1
            self._start(self._take(client), self._pool)

    def _take(self, client: str) -> _Job:
        queued = self._waiting[client]
        job = queued.popleft()
        if not queued:
            del self._waiting[client]
        self._queued -= 1
        return job

    def _start(self, job: _Job, pool: ThreadPoolExecutor) -> None:
        self._running[job.client] = self._running.get(job.client, 0) + 1
        self._served[job.client] = next(self._dispatches)
        running = pool.submit(job.work)
        running.add_done_callback(partial(_call_soon, job.future.get_loop(), self._finish, job))

    def _finish(self, job: _Job, running: Future[object]) -> None:
        if job.alone:
            self._alone_busy = False
        else:
            self._busy -= 1
        self._running[job.client] -= 1
        if not self._running[job.client]:
            del self._running[job.client]
            if job.client not in self._waiting:
                del self._served[job.client]
        if job.future.done():  # its caller is gone
            pass
        elif running.cancelled():  # closed before a thread took it
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
    # Runs on the worker thread; the bookkeeping belongs to the event loop's thread.
    with contextlib.suppress(RuntimeError):  # the loop closed while the work ran
        loop.call_soon_threadsafe(callback, job, running)


class FairTurns:
    """One holder at a time; those waiting take turns by client, the client served least
    recently first (a newcomer before everyone who has had a turn), so a burst from one
    client queues behind itself: another client waits for one turn to end, however long
    the burst. Not reentrant: a task that asks again while it holds a turn is refused (it
    would wait for itself)."""

    def __init__(self) -> None:
        # The task holding the turn and its client (None: nobody holds it).
        self._holder: asyncio.Task[object] | None = None
        self._holding: str | None = None
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        # When each client with a turn waiting or held last got one.
        self._served: dict[str, int] = {}
        self._turns = itertools.count()
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(len(queued) for queued in self._waiting.values())

    @contextlib.asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._holding is not None and task is not None and task is self._holder:
            raise RuntimeError("a turn was asked for by the task that holds one")
        if self._holding is not None or self._waiting:
            granted = asyncio.get_running_loop().create_future()
            entry = (next(self._order), granted)
            self._waiting.setdefault(client, deque()).append(entry)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._pass_on()  # granted just as it was cancelled
                else:
                    self._forget(client, entry)
                raise
        self._holder, self._holding = task, client
        self._served[client] = next(self._turns)
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        done = self._holding
        self._holder = self._holding = None
        if done is not None and done not in self._waiting:
            self._served.pop(done, None)
        while self._waiting:
            client = min(
                self._waiting, key=lambda c: (self._served.get(c, -1), self._waiting[c][0][0])
            )
            queued = self._waiting[client]
            _, granted = queued.popleft()
            if not queued:
                del self._waiting[client]
            if not granted.cancelled():
                granted.set_result(None)  # still held: the turn goes straight to it
                self._holding = client
                return

    def _forget(self, client: str, entry: tuple[int, asyncio.Future[None]]) -> None:
        queued = self._waiting.get(client)
        if queued is not None and entry in queued:
            queued.remove(entry)
            if not queued:
                del self._waiting[client]
