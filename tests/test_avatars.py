"""Avatar uploads on both faces, and serving the stored images."""

from __future__ import annotations

import contextlib
import io
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.faces import FACES, Face
from tests.images import (
    corrupt_webp,
    encode,
    jpeg_scan_bomb,
    jpeg_with_gps_and_orientation,
    jpeg_with_size,
    mpo,
    png_bomb,
    png_text_bomb,
    truncated_png,
    webp_bomb,
)
from tests.types import MakeClient, MakeFace, StartServer

PASSWORD = "correct horse battery"


def signed_up(face: Face) -> Face:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    return face


def fetch(client: TestClient, url: str) -> tuple[Image.Image, dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content)), dict(response.headers)


@pytest.mark.parametrize(
    ("fmt", "stored"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/png")],
)
def test_each_format_is_accepted_and_served(face: Face, fmt: str, stored: str) -> None:
    signed_up(face)
    outcome = face.upload_avatar(encode(fmt, (1024, 600)), filename="x.bin", mime="text/plain")
    assert outcome.status == 200, outcome
    url = outcome.profile["avatar"]  # type: ignore[index]
    assert url.startswith("/avatars/")
    assert face.profile().profile["avatar"] == url  # type: ignore[index]
    image, headers = fetch(face.client, url)
    assert headers["content-type"] == stored
    assert image.size == (512, 300)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "sandbox" in headers["content-security-policy"]
    assert getattr(image, "n_frames", 1) == 1


def test_small_image_is_not_enlarged(face: Face) -> None:
    signed_up(face)
    url = face.upload_avatar(encode("PNG", (40, 30))).profile["avatar"]  # type: ignore[index]
    assert fetch(face.client, url)[0].size == (40, 30)


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not an image",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        encode("PNG")[:60],
        encode("BMP"),
        b"",
    ],
    ids=["text", "svg", "truncated-png", "bmp", "empty"],
)
def test_non_images_and_broken_images_are_refused(face: Face, data: bytes) -> None:
    signed_up(face)
    outcome = face.upload_avatar(data)
    assert outcome.status == 400, outcome
    assert face.profile().profile["avatar"] is None  # type: ignore[index]


def test_decompression_bomb_is_refused(face: Face) -> None:
    signed_up(face)
    outcome = face.upload_avatar(png_bomb())
    assert outcome.status == 400
    assert "pixels" in outcome.message or "PNG" in outcome.message


@pytest.mark.parametrize(
    "make",
    [
        truncated_png,
        corrupt_webp,
        webp_bomb,
        png_text_bomb,
        lambda: jpeg_with_size(12_000, 12_000, progressive=True),
        lambda: encode("PNG", (24_961, 641)),
        lambda: webp_bomb((4000, 4000)),
        lambda: jpeg_scan_bomb(5000),
    ],
    ids=[
        "truncated-20-byte-png",
        "corrupt-webp",
        "7000x7000-webp",
        "png-text-2-mib",
        "progressive-jpeg-144-mp",
        "16000001-pixels",
        "webp-past-the-memory-budget",
        "jpeg-of-5000-scans",
    ],
)
def test_hostile_files_are_refused(face: Face, make: Callable[[], bytes]) -> None:
    signed_up(face)
    outcome = face.upload_avatar(make())
    assert outcome.status == 400, outcome
    assert face.profile().profile["avatar"] is None  # type: ignore[index]


def test_pixel_limit_at_its_boundary(face: Face) -> None:
    signed_up(face)
    assert face.upload_avatar(encode("PNG", (25_000, 640))).status == 200  # 16,000,000
    outcome = face.upload_avatar(encode("PNG", (24_961, 641)))  # 16,000,001
    assert outcome.status == 400
    assert "16,000,000 pixels" in outcome.message


def test_jpeg_pixels_are_counted_after_its_reduced_decode(face: Face) -> None:
    signed_up(face)
    # 67 megapixels, decoded at an eighth of each side: one megapixel.
    assert face.upload_avatar(jpeg_with_size(8192, 8192), mime="image/jpeg").status == 200
    # Too short to be reduced, so counted at full size.
    assert face.upload_avatar(jpeg_with_size(32_000, 500), mime="image/jpeg").status == 200
    assert face.upload_avatar(jpeg_with_size(32_001, 500), mime="image/jpeg").status == 400


def test_multi_picture_jpeg_is_stored_as_its_first_picture(face: Face) -> None:
    signed_up(face)
    outcome = face.upload_avatar(mpo((640, 480)), "stereo.mpo", "image/jpeg")
    assert outcome.status == 200, outcome
    image, headers = fetch(face.client, outcome.profile["avatar"])  # type: ignore[index]
    assert headers["content-type"] == "image/jpeg"
    assert image.format == "JPEG"
    assert image.size == (512, 384)
    red, _, blue = image.getpixel((256, 192))  # type: ignore[misc]
    assert red > 150 and blue < 80  # the left (red) picture, not the right (blue) one


def test_exif_orientation_applied_and_metadata_stripped(face: Face) -> None:
    signed_up(face)
    data = jpeg_with_gps_and_orientation()
    assert b"SpyCam" in data and b"secret comment" in data
    url = face.upload_avatar(data, "photo.jpg", "image/jpeg").profile["avatar"]  # type: ignore[index]
    response = face.client.get(url)
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (40, 80)  # rotated upright
    assert not image.getexif()
    assert "comment" not in image.info and "exif" not in image.info
    assert b"SpyCam" not in response.content and b"secret comment" not in response.content


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_upload_over_limit_is_413(make_client: MakeClient, face_name: str) -> None:
    limit = 100_000
    face = signed_up(FACES[face_name](make_client(avatar_max_bytes=limit)))
    # An image exactly at the limit is fine; one byte more is refused by the service,
    # and a body far past it is cut off while it streams in.
    png = encode("PNG", (32, 32))
    padded = png + b"\x00" * (limit - len(png))
    assert face.upload_avatar(padded).status == 200
    assert face.upload_avatar(padded + b"\x00").status == 413
    assert face.upload_avatar(padded * 20).status == 413


def test_upload_needs_login(face: Face) -> None:
    assert face.upload_avatar(encode("PNG")).status == 403


def test_replacing_avatar_deletes_old_image(face: Face) -> None:
    signed_up(face)
    first = face.upload_avatar(encode("PNG")).profile["avatar"]  # type: ignore[index]
    second = face.upload_avatar(encode("JPEG")).profile["avatar"]  # type: ignore[index]
    assert first != second
    assert face.client.get(first).status_code == 404
    assert face.client.get(second).status_code == 200


def test_deleting_account_deletes_avatar(face: Face) -> None:
    signed_up(face)
    url = face.upload_avatar(encode("PNG")).profile["avatar"]  # type: ignore[index]
    assert face.delete_profile().status == 200
    response = face.client.get(url)
    assert response.status_code == 404
    assert response.json() == {"message": "No such avatar"}


def test_etag_answers_304(face: Face) -> None:
    signed_up(face)
    url = face.upload_avatar(encode("PNG")).profile["avatar"]  # type: ignore[index]
    etag = face.client.get(url).headers["etag"]
    response = face.client.get(url, headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""


def test_public_url_makes_avatar_urls_absolute(make_client: MakeClient) -> None:
    client = make_client(public_url="https://accounts.example/")
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    response = client.put("/avatar", files={"avatar": ("a.png", encode("PNG"), "image/png")})
    assert response.json()["avatar"].startswith("https://accounts.example/avatars/")


def test_rest_upload_without_the_avatar_field_is_400(client: TestClient) -> None:
    client.post("/signup", json={"login": "alice", "password": PASSWORD, "email": "a@b.co"})
    response = client.put("/avatar", files={"picture": ("a.png", encode("PNG"), "image/png")})
    assert response.status_code == 400
    response = client.put("/avatar", json={"avatar": "data"})
    assert response.status_code == 415


def _family(pid: int) -> list[int]:
    """`pid` and every process descended from it (the image workers are grandchildren)."""
    family, index = [pid], 0
    while index < len(family):
        for task in Path(f"/proc/{family[index]}/task").iterdir():
            with contextlib.suppress(OSError):
                family += [int(child) for child in (task / "children").read_text().split()]
        index += 1
    return family


def _resident_mib(pid: int) -> float:
    """What the server and its image workers hold in memory together, now."""
    total = 0
    for member in _family(pid):
        with contextlib.suppress(OSError):
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{member}/status").read_text())
            total += int(match.group(1)) if match else 0
    return total / 1024


def test_parallel_image_bombs_stay_within_the_memory_budget(start_server: StartServer) -> None:
    """The issue's three 7000x7000 WebPs, and three images each just within the budget,
    all at once: the memory of a real server and its image workers together rises by less
    than 256 MiB, and falls back."""
    server = start_server().wait_ready()
    pid = server.process.pid
    clients = []
    for name in ("alice", "bob", "carol"):
        body = {"login": name, "password": PASSWORD, "email": f"{name}@example.com"}
        cookies = httpx.post(f"{server.url}/signup", json=body).cookies
        clients.append(httpx.Client(base_url=server.url, cookies=cookies, timeout=60))

    def upload(job: tuple[httpx.Client, bytes]) -> int:
        client, data = job
        return client.put("/avatar", files={"avatar": ("a.webp", data, "image/webp")}).status_code

    done = threading.Event()
    samples: list[float] = []

    def sample() -> None:  # every few milliseconds: a decode's peak lasts a tenth of a second
        while not done.is_set():
            samples.append(_resident_mib(pid))
            time.sleep(0.002)

    try:
        # Warm: image plugins imported, worker processes started.
        assert [upload((client, encode("WEBP"))) for client in clients] == [200] * 3
        assert len(_family(pid)) >= 3  # the workers are the server's descendants
        before = _resident_mib(pid)
        bombs = [(client, webp_bomb()) for client in clients]
        heavy = [(client, webp_bomb((3700, 3700))) for client in clients]  # 13.7 megapixels
        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(len(bombs) + len(heavy)) as pool:
            statuses = list(pool.map(upload, bombs + heavy))
        done.set()
        sampler.join()
        peak = max(samples) - before
        after = _resident_mib(pid) - before
    finally:
        done.set()
        for client in clients:
            client.close()
    assert max(samples) > before + 100, "the sampling saw the decodes"
    assert peak < 256 + 16, f"peak +{peak:.0f} MiB"
    assert after < 32, f"+{after:.0f} MiB kept after the uploads"
    # The bombs are refused; the heavy ones waited for each other rather than fail.
    assert statuses == [400] * 3 + [200] * 3


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_image_workers_end_with_the_server(start_server: StartServer, stop: int) -> None:
    """Stopped or killed, a server leaves no image worker process behind."""
    server = start_server().wait_ready()
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.cookies = client.post("/signup", json=body).cookies
        files = {"avatar": ("a.png", encode("PNG"), "image/png")}
        assert client.put("/avatar", files=files).status_code == 200
    family = _family(server.process.pid)
    assert len(family) >= 3  # the server, the forkserver and a worker at least
    server.stop(stop)
    deadline = time.monotonic() + 15
    while (alive := [pid for pid in family if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == []


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_uploads_are_limited_per_account(make_face: MakeFace) -> None:
    face = signed_up(make_face(avatar_uploads_per_hour=3))
    assert face.upload_avatar(encode("PNG")).status == 200
    assert face.upload_avatar(b"not an image").status == 400  # decoding was tried: counted
    assert face.upload_avatar(encode("GIF")).status == 200
    refused = face.upload_avatar(encode("PNG"))
    assert refused.status == 429
    assert refused.retry_after is not None and 0 < refused.retry_after <= 3600
    # The limit is the account's, not the browser's.
    face.client.cookies.clear()
    assert face.signup("bob", PASSWORD, "bob@example.com").status == 200
    assert face.upload_avatar(encode("PNG")).status == 200


@pytest.mark.parametrize(
    "key", ["%00abc", "abc%00", "%ED%A0%80", "%F0%9F%98%80", "a" * 64, "A" * 64, "x" * 5000]
)
def test_avatar_paths_that_name_no_image_are_404(client: TestClient, key: str) -> None:
    response = client.get(f"/avatars/{key}")
    assert response.status_code == 404
    assert response.json() == {"message": "No such avatar"}


def test_profile_update_answers_with_the_avatar_kept(face: Face) -> None:
    """The update's answer is read back with the row it wrote (one statement): the avatar,
    which lives in another table, is in it, and stays in it when there is none."""
    signed_up(face)
    assert face.update_profile(firstname="Ada").profile["avatar"] is None  # type: ignore[index]
    url = face.upload_avatar(encode("PNG")).profile["avatar"]  # type: ignore[index]
    updated = face.update_profile(lastname="Lovelace")
    assert updated.status == 200
    assert updated.profile == {
        "username": "alice",
        "email": "alice@example.com",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "avatar": url,
    }
