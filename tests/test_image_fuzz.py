"""Fuzzing the avatar decoder: mutated PNG, JPEG, GIF, WebP and MPO files.

Bytes are flipped, inserted, deleted and cut, and the dimensions declared in the headers
changed. Whatever arrives, the image work either returns a clean image of at most 512x512
or refuses the file as the client's fault (InvalidInput, PayloadTooLarge: a 400 or 413);
nothing else escapes, so nothing becomes a 500. Most examples run through the core (fast);
a few go through a real server's REST and GraphQL faces. Bounded (max_examples, derandomize)
so that `make test` stays quick.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import zlib
from collections.abc import Iterator

import anyio
import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from core.errors import InvalidInput, PayloadTooLarge
from core.images import MAX_JPEG_SCANS, ImageWork
from tests.images import encode, jpeg_scan_bomb, jpeg_with_gps_and_orientation, mpo
from tests.servers import Server

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
PASSWORD = "fuzzing passphrase"
# Where each format declares its size: (offset, struct format) of each field.
PNG_SIZE = [(16, ">I"), (20, ">I")]
GIF_SIZE = [(6, "<H"), (8, "<H")]
WEBP_SIZE = {
    b"VP8 ": [(26, "<H"), (28, "<H")],
    b"VP8L": [(21, "<I")],  # 14 bits each for width and height, packed
    b"VP8X": [(24, "<H"), (27, "<H")],  # the low two of three bytes each
}


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _gradient(mode: str, size: tuple[int, int] = (48, 40)) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert(mode)


def _jpeg_size(data: bytes) -> list[tuple[int, str]]:
    frame = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    return [(frame + 5, ">H"), (frame + 7, ">H")] if frame >= 0 else []


@functools.cache
def seeds() -> list[tuple[bytes, list[tuple[int, str]]]]:
    """Small valid files of every accepted kind, each with where its size is declared."""
    animation = [_gradient("RGB"), _gradient("RGB").rotate(90)]
    webps = [
        _saved(_gradient("RGBA"), "WEBP", lossless=True),
        _saved(_gradient("RGB"), "WEBP", quality=60),
        _saved(animation[0], "WEBP", save_all=True, append_images=animation[1:]),
    ]
    gif = _saved(animation[0], "GIF", save_all=True, append_images=animation[1:])
    jpegs = [
        _saved(_gradient("RGB"), "JPEG"),
        _saved(_gradient("RGB"), "JPEG", progressive=True),
        _saved(_gradient("L"), "JPEG"),
        _saved(_gradient("CMYK"), "JPEG"),
        jpeg_with_gps_and_orientation(),
        mpo((48, 40)),
        # At the scan limit: mutations land on both sides of it.
        jpeg_scan_bomb(MAX_JPEG_SCANS, (48, 40)),
    ]
    pngs = [
        encode("PNG", (48, 40)),
        _saved(_gradient("P"), "PNG", transparency=3),
        _saved(_gradient("L").convert("I;16"), "PNG"),
        _saved(_gradient("1"), "PNG"),
    ]
    return (
        [(png, PNG_SIZE) for png in pngs]
        + [(jpeg, _jpeg_size(jpeg)) for jpeg in jpegs]
        + [(gif, GIF_SIZE)]
        + [(webp, WEBP_SIZE[webp[12:16]]) for webp in webps]
    )


DIMENSIONS = st.sampled_from([0, 1, 2, 511, 4000, 4001, 16_383, 25_000, 65_535, 2**31 - 1])


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    seed, size_fields = draw(st.sampled_from(seeds()))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["size", "size", "flip", "insert", "delete", "cut"]))
        # Past the signature: a mutation there only ever makes "not an image".
        at = draw(st.integers(min(8, len(data)), max(8, len(data) - 1)))
        if kind == "size" and size_fields:
            offset, layout = draw(st.sampled_from(size_fields))
            value = draw(DIMENSIONS) % 2 ** (8 * struct.calcsize(layout))
            if offset + struct.calcsize(layout) <= len(data):
                struct.pack_into(layout, data, offset, value)
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    # Checks that an attacker would fix up, so that the file reaches the decoder: the
    # checksum of a PNG's header chunk, the lengths in a plain WebP's RIFF container.
    if seed.startswith(b"\x89PNG") and len(data) >= 33:
        struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    if seed[12:16] in (b"VP8 ", b"VP8L") and len(data) >= 20:
        struct.pack_into("<I", data, 4, len(data) - 8)
        struct.pack_into("<I", data, 16, len(data) - 20)
    return bytes(data)


@pytest.fixture(scope="module")
def work() -> Iterator[ImageWork]:
    work = ImageWork()
    yield work
    work.close()


def _is_clean_avatar(content_type: str, encoded: bytes) -> bool:
    image = Image.open(io.BytesIO(encoded))
    return (
        content_type == f"image/{(image.format or '').lower()}"
        and image.width <= 512
        and image.height <= 512
        and getattr(image, "n_frames", 1) == 1
        and not image.getexif()
    )


@settings(FUZZ, max_examples=250)
@given(data=mutated_images())
def test_mutated_images_are_decoded_clean_or_refused(work: ImageWork, data: bytes) -> None:
    try:
        content_type, encoded = anyio.run(work.normalise, data)
    except (InvalidInput, PayloadTooLarge):
        return
    assert _is_clean_avatar(content_type, encoded)


@pytest.fixture(scope="module")
def uploader(module_server: Server) -> Iterator[httpx.Client]:
    body = {"login": "imagefuzzer", "password": PASSWORD, "email": "imagefuzzer@example.com"}
    with httpx.Client(base_url=module_server.url, timeout=60) as client:
        assert client.post("/signup", json=body).status_code == 200
        yield client


def _upload(client: httpx.Client, face: str, data: bytes) -> httpx.Response:
    if face == "rest":
        return client.put("/avatar", files={"avatar": ("a.bin", data, "image/png")})
    operations = {
        "query": "mutation($f: Upload!) { updateAvatar(file: $f) { avatar } }",
        "variables": {"f": None},
    }
    return client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("a.bin", data, "image/png")},
        headers={"apollo-require-preflight": "true"},
    )


# Few examples: each account may upload only so many avatars an hour.
@settings(FUZZ, max_examples=12)
@given(face=st.sampled_from(["rest", "graphql"]), data=mutated_images())
def test_mutated_images_through_both_faces_are_200_or_400(
    uploader: httpx.Client, face: str, data: bytes
) -> None:
    response = _upload(uploader, face, data)
    assert response.status_code in (200, 400), response.text
    assert "Traceback" not in response.text
    if face == "graphql" and response.status_code == 200:
        for error in response.json().get("errors", []):
            assert error["extensions"]["code"] == "BAD_USER_INPUT", error
