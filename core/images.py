"""Images: decode hostile uploads within a memory budget, re-encode them clean.

No database, no HTTP. A small file can declare a huge canvas (a decompression bomb), so
nothing is decoded before its cost is known: the header gives the size and mode, from which
the decode's peak memory is estimated (the factors below were measured with this Pillow),
and that much is reserved from one budget for the whole process. Decodes that do not fit
wait their turn; an image that alone exceeds the budget is refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import multiprocessing
import os
import re
import select
import signal
import threading
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TypeVar

import anyio
from PIL import Image, ImageFile, ImageOps, PngImagePlugin

from core.errors import InvalidInput
from core.workers import lower_priority

T = TypeVar("T")

FIELD = "avatar"
SIZE = (512, 512)
# Width times height, after a JPEG's reduced-size decode (a camera's 200 megapixels are
# decoded at an eighth a side); other formats cannot be shrunk while decoding.
MAX_PIXELS = 16_000_000
# How far decoding may raise the process's memory, all decodes together.
MEMORY_BUDGET = 256 * 2**20
# libjpeg's own buffers (a progressive or multi-scan JPEG keeps every DCT coefficient of
# the full-size image, whatever the reduced size) are capped through its JPEGMEM setting:
# past the cap it gives up, which is a 400.
JPEG_MEMORY_CAP = 128 * 2**20
# A progressive JPEG is decoded scan by scan, and each scan walks every block of its
# components at full size, however few bytes it holds: 5,000 near-empty scans (260 kB) of
# a 16-megapixel frame cost about 3 s of CPU. Encoders and cameras write about ten scans
# (a baseline file one per component at most); more than this is refused (libjpeg-turbo
# leaves such a limit to its callers: djpeg's -maxscans). 100 such scans cost 0.06 s.
MAX_JPEG_SCANS = 100
# Segments of any kind (tables, metadata, a scan's header): a camera's file has a few dozen
# (a split ICC profile at most 255 more), a progressive one a table or two per scan. Each
# costs a step of the walk below and of Pillow's header reading, so they are bounded too.
MAX_JPEG_SEGMENTS = 1000
# The next marker: 0xFF (and any fill bytes of 0xFF before it), then a code that is none
# of a stuffed zero (0xFF00 is a data byte), a restart marker (RST0-7, inside a scan's
# data) and TEM. Only a run's first 0xFF starts a match, so a long run is read once.
JPEG_MARKER = re.compile(rb"(?<!\xff)\xff++([^\x00\x01\xd0-\xd7\xff])")
JPEG_SOI = b"\xff\xd8"
JPEG_SOS, JPEG_EOI = 0xDA, 0xD9
# Accepted formats (recognised by content) and what each is stored as. Animations keep
# their first frame; GIF's 256 colours become a lossless PNG; a camera's multi-picture
# JPEG (MPO) its first picture, as JPEG.
OUTPUT_FORMAT = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "GIF": "PNG"}
# What Image.open is allowed to try; its JPEG reader turns into the MPO reader by itself.
OPENERS = ["PNG", "JPEG", "WEBP", "GIF"]
CONTENT_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Peak memory per pixel of a whole decode, as measured with Pillow 13 at each format's worst
# mode (peak RSS of a process decoding 12 to 16 megapixels), plus about a tenth: WebP 16.9
# (lossless with alpha: libwebp's canvas, its copy for the next frame, the bytes it hands
# to Pillow, Pillow's image), the others 8.7 (the decoded image, one converted copy, and
# the premultiplied copy that resampling with alpha makes). So a WebP above about 14
# megapixels can never fit the budget, and is refused.
BYTES_PER_PIXEL = {"WEBP": 18.5, "PNG": 9.5, "GIF": 9.5, "JPEG": 9.5, "MPO": 9.5}
# Opening a file reads its header, metadata and (WebP) a copy of the whole file.
OPENING_BYTES = 4 * 2**20
OPENING_COPIES = 3
# PNG text chunks (comments, XMP) are decompressed while the header is read, up to 64 MiB
# by Pillow's default; an avatar needs none of them.
PNG_TEXT_LIMIT = 2**20
# Pillow's own decompression-bomb guard, only for what our checks cannot see before
# opening (a JPEG's full size, up to 256 megapixels, is fine: it is decoded reduced).
PILLOW_MAX_PIXELS = 128_000_000
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


class MemoryBudget:
    """Bytes reserved by decodes in progress; a reservation that does not fit waits its
    turn, first come first served, so a large decode is not starved by small ones."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, anyio.Event]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        if amount > self.total:
            raise ValueError(f"{amount} bytes can never fit a budget of {self.total}")
        if self._waiting or amount > self.free:
            entry = (amount, anyio.Event())
            self._waiting.append(entry)
            try:
                await entry[1].wait()
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    self._grant()
                else:  # granted just as it was cancelled
                    self._release(amount)
                raise
        else:
            self.free -= amount
        try:
            yield
        finally:
            self._release(amount)

    def _release(self, amount: int) -> None:
        self.free += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            amount, event = self._waiting.popleft()
            self.free -= amount
            event.set()


class ImageWork:
    """Decoding and re-encoding in worker processes, within one memory budget.

    One per process (in the Runtime), holding the budget that all its decodes share. The
    work is done in processes of its own (WORKERS of them, started at the first upload,
    below the server's CPU priority): there a decoder holds its own interpreter lock, not the
    event loop's (Pillow's WebP decoder copies a whole canvas, 55 MB for 13.7 megapixels,
    while holding it: 21-27 ms in which no request could run), and a decoder that crashes
    on a crafted file takes down a worker, which is replaced, not the server.
    """

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        self.budget = MemoryBudget(budget)
        self._workers: ProcessPoolExecutor | None = None
        # For `normalise` and `estimate` called in this process, as tests do.
        configure_pillow()

    async def normalise(self, data: bytes) -> tuple[str, bytes]:
        """The upload re-encoded: upright, at most 512x512, no metadata; InvalidInput if
        it is not an image this service takes or its decode can never fit the budget."""
        async with self._reserved(opening_cost(data)):
            memory = await self._in_worker(estimate, data)
        async with self._reserved(memory):
            return await self._in_worker(normalise, data)

    def close(self) -> None:
        """Stop the workers, waiting for a decode in progress (a second at most): uvicorn
        ends its process with the signal that stopped it, so nothing after the lifespan
        would tell them to go."""
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None

    def worker_pids(self) -> list[int]:
        """The worker processes running now (for measuring their memory)."""
        processes = getattr(self._workers, "_processes", None) or {}
        return list(processes)

    async def _in_worker(self, work: Callable[[bytes], T], data: bytes) -> T:
        workers = self._workers
        if workers is None:
            workers = self._workers = ProcessPoolExecutor(
                WORKERS,
                mp_context=_FORKSERVER,
                initializer=_worker_started,
                initargs=(os.getpid(),),
            )
        # Shielded: a cancelled request still waits for its decode to end, so the memory
        # it holds stays reserved until then.
        with anyio.CancelScope(shield=True):
            try:
                done = await asyncio.wrap_future(workers.submit(work, data))
            except BrokenProcessPool:
                # A worker died (a decoder crashed, or the system killed it): the pool is
                # replaced at the next upload, and this one is refused like a broken file.
                if self._workers is workers:
                    self.close()
                raise InvalidInput(FIELD, "the image could not be decoded") from None
        return done

    def _reserved(self, memory: int) -> AbstractAsyncContextManager[None]:
        if memory > self.budget.total:
            raise InvalidInput(FIELD, "the image needs too much memory to decode")
        return self.budget.reserve(memory)


# Half the cores (at least one): decoding never takes every core from the event loop, and
# each worker costs ~25 MB even when idle. Large decodes take turns anyway (the budget).
WORKERS = max(1, (os.cpu_count() or 1) // 2)
# Workers are forked from a small server process that has imported this module and nothing
# of the service's state (forking the service itself would copy its threads' locks).
_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload([__name__])


def _worker_started(server: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    _end_with(server)
    lower_priority()
    configure_pillow()


def _end_with(server: int) -> None:
    """End this worker when the server process ends, however it ends.

    A server stopped normally stops its workers (`ImageWork.close`); one that is killed
    (SIGKILL, out of memory) cannot, and its workers would wait for work for ever (and keep
    the forkserver, whose pipe they hold, alive with them). A thread waits on a descriptor
    of the server's process (Linux's pidfd) and exits the worker when it ends. Elsewhere:
    nothing to do."""
    try:
        process = os.pidfd_open(server)
    except ProcessLookupError:
        os._exit(0)  # already gone
    except (AttributeError, OSError):
        return

    def watch() -> None:
        select.select([process], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def configure_pillow() -> None:
    """This process's limits for Pillow, libjpeg and the allocator."""
    Image.MAX_IMAGE_PIXELS = PILLOW_MAX_PIXELS
    PngImagePlugin.MAX_TEXT_MEMORY = PNG_TEXT_LIMIT
    # The limits are enforced here; Pillow's warning below its own limit is noise.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # libjpeg reads JPEGMEM (in thousands of bytes) whenever it starts a decode.
    os.environ["JPEGMEM"] = str(JPEG_MEMORY_CAP // 1000)
    _keep_large_blocks_out_of_arenas()


def _keep_large_blocks_out_of_arenas() -> None:
    """Fix glibc's mmap threshold at its default, so every block of 128 KiB or more is
    mapped on its own and returned to the system when freed.

    Left dynamic, glibc raises the threshold after the first large free (up to 32 MiB);
    image-sized blocks then come from per-thread arenas, which keep them: measured, three
    rounds of parallel decodes left the process 440 MiB larger, and with the threshold
    fixed, 10 MiB. Not glibc (no `mallopt`): nothing to do.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, 128 * 2**10)


def opening_cost(data: bytes) -> int:
    """What reading a file's header and metadata may take (PNG text chunks included)."""
    return OPENING_BYTES + PNG_TEXT_LIMIT + OPENING_COPIES * len(data)


def estimate(data: bytes) -> int:
    """Peak bytes that decoding `data` takes, from its header alone; InvalidInput if it is
    not an image this service takes or has too many pixels."""
    if data.startswith(JPEG_SOI):
        # Before Pillow reads the header: it walks the segments up to the first scan itself.
        check_jpeg_segments(data)
    with _opened(data) as image, _the_files_fault():
        coefficients = _jpeg_coefficients(image)
        _reduce(image)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidInput(FIELD, f"the image has more than {MAX_PIXELS:,} pixels")
        pixels = BYTES_PER_PIXEL[image.format or ""] * width * height
        return int(pixels) + coefficients + opening_cost(data)


def check_jpeg_segments(data: bytes) -> None:
    """Refuse a JPEG whose first picture has more than MAX_JPEG_SCANS scans or
    MAX_JPEG_SEGMENTS segments, found by walking its markers as libjpeg does (bytes between
    segments skipped, a scan's data read up to the next marker) without decoding anything."""
    scans = segments = 0
    at = 2  # after SOI
    view = memoryview(data)
    while True:
        # From a view that starts at `at`: the byte before it cannot hide a marker there.
        marker = JPEG_MARKER.search(view[at:])
        if marker is None or marker[1][0] == JPEG_EOI:
            return  # the end of the first picture (an MPO's next ones are not decoded)
        at += marker.end()
        segments += 1
        scans += marker[1][0] == JPEG_SOS
        if scans > MAX_JPEG_SCANS:
            raise InvalidInput(FIELD, f"the JPEG has more than {MAX_JPEG_SCANS} scans")
        if segments > MAX_JPEG_SEGMENTS:
            raise InvalidInput(FIELD, f"the JPEG has more than {MAX_JPEG_SEGMENTS} segments")
        # A segment's length counts its own two bytes; what follows a scan's header is its
        # data, which the next search skips. A length under 2 is libjpeg's error to raise.
        at += max(int.from_bytes(view[at : at + 2], "big"), 2)


def normalise(data: bytes) -> tuple[str, bytes]:
    """Decode an upload and re-encode it: upright, at most 512x512, with no metadata."""
    with _the_files_fault():
        output, pixels = _decoded(data)
        # Shrink first, then turn upright: only the reduction sees the full-size image.
        pixels.thumbnail(SIZE, Image.Resampling.LANCZOS)
        upright = ImageOps.exif_transpose(pixels)
        # A new image holds the pixels only: EXIF, GPS, ICC, XMP and comments stay behind.
        clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
    buffer = io.BytesIO()
    if output == "JPEG":
        clean.save(buffer, "JPEG", quality=85, optimize=True)
    elif output == "WEBP":
        clean.save(buffer, "WEBP", quality=85)
    else:
        clean.save(buffer, "PNG", optimize=True)
    return CONTENT_TYPE[output], buffer.getvalue()


@contextmanager
def _the_files_fault() -> Iterator[None]:
    """Pillow signals a broken file with nearly any exception type (OSError, SyntaxError,
    ValueError, EOFError, struct.error, …): each is the file's fault, a 400."""
    try:
        yield
    except InvalidInput:
        raise
    except Image.DecompressionBombError:
        raise InvalidInput(FIELD, f"the image has more than {MAX_PIXELS:,} pixels") from None
    except Exception:
        raise InvalidInput(FIELD, "the image is damaged or truncated") from None


def _decoded(data: bytes) -> tuple[str, Image.Image]:
    """The output format, and the first frame at full (JPEG: reduced) size as a plain
    image in the mode it is stored in. Leaving the `with` frees the file object and the
    decoder's own buffers (WebP's hold the canvas three times over) before resampling."""
    with _opened(data) as image:
        _reduce(image)
        image.seek(0)
        image.load()
        output = OUTPUT_FORMAT[image.format or ""]
        mode = "RGBA" if image.has_transparency_data and output != "JPEG" else "RGB"
        return output, image.copy() if image.mode == mode else image.convert(mode)


@contextmanager
def _opened(data: bytes) -> Iterator[ImageFile.ImageFile]:
    try:
        image = Image.open(io.BytesIO(data), formats=OPENERS)
    except Image.DecompressionBombError:
        raise InvalidInput(FIELD, f"the image has more than {MAX_PIXELS:,} pixels") from None
    except Exception:
        # Unidentified, or recognised but broken before its header ends.
        raise InvalidInput(FIELD, "not a PNG, JPEG, WebP or GIF image") from None
    with image:
        yield image


def _reduce(image: ImageFile.ImageFile) -> None:
    if image.format in ("JPEG", "MPO"):
        # Decode straight at a reduced scale (down to 1/8): faster and far less memory.
        image.draft("RGB", (SIZE[0] * 2, SIZE[1] * 2))


def _jpeg_coefficients(image: ImageFile.ImageFile) -> int:
    """The bytes libjpeg keeps for a progressive or multi-scan JPEG: two per DCT
    coefficient of the full-size image, for each component at its sampling. Beyond
    JPEG_MEMORY_CAP libjpeg refuses to decode, so that is the most it can take."""
    layers = getattr(image, "layer", None)
    if image.format not in ("JPEG", "MPO") or not layers:
        return 0
    width, height = image.size
    most_h = max(max(h, 1) for _, h, _, _ in layers)
    most_v = max(max(v, 1) for _, _, v, _ in layers)
    mcus = -(-width // (8 * most_h)) * -(-height // (8 * most_v))
    needed: int = sum(mcus * max(h, 1) * max(v, 1) * 64 * 2 for _, h, v, _ in layers)
    if needed > JPEG_MEMORY_CAP and image.info.get("progressive"):
        raise InvalidInput(FIELD, "the image needs too much memory to decode")
    return min(needed, JPEG_MEMORY_CAP)
