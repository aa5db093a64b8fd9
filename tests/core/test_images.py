"""The image work's memory budget: reservations wait their turn, in order, and never fail
for want of room; what can never fit is refused."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable

import anyio
import pytest

from core.errors import InvalidInput
from core.images import (
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    ImageWork,
    MemoryBudget,
    estimate,
    normalise,
    opening_cost,
)
from tests.images import encode, jpeg_scan_bomb, jpeg_with_comments, jpeg_with_size, webp_bomb


async def _until(condition: Callable[[], bool]) -> None:
    """Let other tasks and worker threads run until `condition` holds (or fail)."""
    with anyio.fail_after(30):
        # The budget has no event to wait on: its state is polled.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.001)


async def _holding(budget: MemoryBudget, amount: int, release: anyio.Event) -> None:
    async with budget.reserve(amount):
        await release.wait()


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


def test_reservations_wait_their_turn_first_come_first_served() -> None:
    async def scenario() -> None:
        budget = MemoryBudget(100)
        granted: list[str] = []
        release = {name: anyio.Event() for name in "abc"}

        async def take(name: str, amount: int) -> None:
            async with budget.reserve(amount):
                granted.append(name)
                await release[name].wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(take, "a", 60)
            await _until(lambda: granted == ["a"])
            tasks.start_soon(take, "b", 50)
            await _until(lambda: budget.waiting == 1)
            # 40 are free, but "b" came first: "c" waits behind it.
            tasks.start_soon(take, "c", 10)
            await _until(lambda: budget.waiting == 2)
            assert granted == ["a"]
            release["a"].set()
            await _until(lambda: granted == ["a", "b", "c"])
            assert budget.free == 40
            release["b"].set()
            release["c"].set()
        assert budget.free == 100

    _run(scenario)


def test_a_cancelled_wait_gives_its_turn_to_the_next() -> None:
    async def scenario() -> None:
        budget = MemoryBudget(100)
        release = anyio.Event()
        got_small = anyio.Event()
        big = anyio.CancelScope()

        async def wait_for_big() -> None:
            with big:
                async with budget.reserve(90):
                    pass

        async def small() -> None:
            async with budget.reserve(30):
                got_small.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_holding, budget, 60, release)
            await _until(lambda: budget.free == 40)
            tasks.start_soon(wait_for_big)
            await _until(lambda: budget.waiting == 1)
            tasks.start_soon(small)
            await _until(lambda: budget.waiting == 2)
            big.cancel()
            await got_small.wait()
            assert budget.waiting == 0
            release.set()
        assert budget.free == 100

    _run(scenario)


def test_a_decode_beyond_the_budget_waits_rather_than_fails() -> None:
    data = encode("PNG", (1200, 900))
    needed = estimate(data)

    async def scenario() -> None:
        work = ImageWork(budget=needed + opening_cost(data))
        release = anyio.Event()
        results: list[tuple[str, bytes]] = []

        async def upload() -> None:
            results.append(await work.normalise(data))

        try:
            async with anyio.create_task_group() as tasks:
                # Someone else's decode holds all but what this one needs to open the file.
                tasks.start_soon(_holding, work.budget, needed, release)
                await _until(lambda: work.budget.free == opening_cost(data))
                tasks.start_soon(upload)
                await _until(lambda: work.budget.waiting == 1)
                assert results == []
                release.set()
        finally:
            work.close()
        assert results[0][0] == "image/png"

    _run(scenario)


def test_an_image_that_alone_exceeds_the_budget_is_refused() -> None:
    data = webp_bomb((1000, 1000))
    work = ImageWork(budget=estimate(data) - 1)
    with pytest.raises(InvalidInput, match="too much memory"):
        anyio.run(work.normalise, data)
    work.close()
    assert work.budget.free == work.budget.total


def test_a_worker_that_dies_mid_decode_costs_that_upload_a_400_not_the_service() -> None:
    # As a decoder crashing on a crafted file, or the system's out-of-memory killer, would.
    async def scenario() -> None:
        work = ImageWork()
        try:
            assert (await work.normalise(encode("PNG")))[0] == "image/png"  # workers up
            workers = work.worker_pids()
            assert workers and os.getpid() not in workers

            async def kill_during_the_decode() -> None:
                await _until(lambda: work.budget.free < work.budget.total - 200 * 2**20)
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(kill_during_the_decode)
                with pytest.raises(InvalidInput, match="could not be decoded"):
                    await work.normalise(webp_bomb((3700, 3700)))
            assert work.budget.free == work.budget.total
            # New workers take the next upload.
            assert (await work.normalise(encode("WEBP")))[0] == "image/webp"
            assert not set(work.worker_pids()) & set(workers)
        finally:
            work.close()

    _run(scenario)


def test_libjpeg_gives_up_past_its_memory_cap() -> None:
    # Progressive: libjpeg keeps every coefficient of all 144 megapixels (432 MB), though
    # it decodes at an eighth a side. The estimate refuses this one from its header; here
    # the decode is asked for directly, to show that libjpeg itself stops at the cap
    # (without it, this decodes, and the process grows by 430 MB).
    data = jpeg_with_size(12_000, 12_000, progressive=True)
    ImageWork()
    with pytest.raises(InvalidInput):
        normalise(data)
    with pytest.raises(InvalidInput, match="too much memory"):
        estimate(data)


def test_a_jpeg_with_more_scans_than_the_limit_is_refused_before_decoding() -> None:
    # Each scan costs a pass over every block of the full-size image, however small the
    # file: thousands of them are seconds of CPU within the pixel and memory limits.
    work = ImageWork()
    at_the_limit = jpeg_scan_bomb(MAX_JPEG_SCANS)
    try:
        assert anyio.run(work.normalise, at_the_limit)[0] == "image/jpeg"
        for scans in (MAX_JPEG_SCANS + 1, 5000):
            with pytest.raises(InvalidInput, match=f"more than {MAX_JPEG_SCANS} scans"):
                anyio.run(work.normalise, jpeg_scan_bomb(scans))
    finally:
        work.close()
    assert work.budget.free == work.budget.total


def test_scans_behind_bytes_that_libjpeg_skips_are_counted() -> None:
    # libjpeg skips stray bytes and 0xFF fill before a marker: the count must too.
    bomb = jpeg_scan_bomb(MAX_JPEG_SCANS + 1, junk=b"\x00stray\xff\xff")
    assert normalise(bomb)[0] == "image/jpeg"  # libjpeg reads every scan of it
    with pytest.raises(InvalidInput, match="scans"):
        estimate(bomb)


def test_a_jpeg_with_too_many_segments_is_refused() -> None:
    assert estimate(jpeg_with_comments(MAX_JPEG_SEGMENTS - 100)) > 0
    with pytest.raises(InvalidInput, match=f"more than {MAX_JPEG_SEGMENTS} segments"):
        estimate(jpeg_with_comments(MAX_JPEG_SEGMENTS))


def test_a_multi_picture_jpeg_counts_the_scans_of_its_first_picture() -> None:
    # Two 100-scan pictures in one file: the second is never decoded.
    first = jpeg_scan_bomb(MAX_JPEG_SCANS)
    assert estimate(first + jpeg_scan_bomb(MAX_JPEG_SCANS)) > 0
