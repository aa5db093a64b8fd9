"""Small images made on the fly for the avatar tests."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image


def encode(fmt: str, size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    image = Image.new(mode, size, (200, 30, 30, 255)[: len(mode)])
    buffer = io.BytesIO()
    if fmt == "GIF":
        frames = [image, Image.new("RGB", size, (0, 0, 255))]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    else:
        image.save(buffer, fmt, **save)
    return buffer.getvalue()


def jpeg_with_gps_and_orientation(size: tuple[int, int] = (80, 40)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "SpyCam Inc."  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 0.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    return buffer.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid PNG header declaring a huge canvas, with a tiny compressed body."""

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * width
    body = zlib.compress(row * 16, 9)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@functools.cache
def webp_bomb(size: tuple[int, int] = (7000, 7000)) -> bytes:
    """A lossless WebP of one colour: a few dozen bytes that decode to `size` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, "WEBP", lossless=True, method=0)
    return buffer.getvalue()


def truncated_png() -> bytes:
    """The first 20 bytes of a PNG: the signature and the start of its header chunk."""
    return encode("PNG")[:20]


def corrupt_webp() -> bytes:
    """A lossy WebP cut off half-way: its header promises more than the file holds."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").save(buffer, "WEBP", quality=80)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def mpo(size: tuple[int, int] = (640, 480)) -> bytes:
    """A multi-picture JPEG as stereo cameras write it: two pictures, one file."""
    left = Image.new("RGB", size, (200, 30, 30))
    right = Image.new("RGB", size, (30, 30, 200))
    buffer = io.BytesIO()
    left.save(buffer, "MPO", save_all=True, append_images=[right])
    return buffer.getvalue()


def jpeg_with_size(width: int, height: int, **save: object) -> bytes:
    """A small JPEG whose frame header (SOF) declares another size."""
    data = bytearray(encode("JPEG", (64, 48), **save))
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            struct.pack_into(">HH", data, at + 5, height, width)
            return bytes(data)
    raise AssertionError("no frame header")


def jpeg_scan_bomb(scans: int, size: tuple[int, int] = (256, 256), *, junk: bytes = b"") -> bytes:
    """A progressive JPEG with `scans` scans: its last scan (a refinement of every AC
    coefficient of one component) repeated, each copy after `junk`, before EOI.

    A scan's data stuffs every 0xFF byte (0xFF00), so each 0xFFDA is a scan's start."""
    data = encode("JPEG", size, progressive=True)
    last = data[data.rindex(b"\xff\xda") : -2]
    extra = scans - data.count(b"\xff\xda")
    assert extra >= 0 and data.endswith(b"\xff\xd9")
    return data[:-2] + (junk + last) * extra + b"\xff\xd9"


def jpeg_with_comments(count: int) -> bytes:
    """A small JPEG with `count` empty comment segments (COM) after its header."""
    data = encode("JPEG", (64, 48))
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def png_text_bomb(megabytes: int = 2) -> bytes:
    """A small PNG with compressed text chunks that expand to `megabytes` MiB."""
    png = encode("PNG", (8, 8))
    text = b"".join(
        _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b" " * (2**20 - 64), 9))
        for _ in range(megabytes)
    )
    return png[:33] + text + png[33:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
