"""Avatars: decode with care, re-encode clean, store in the database under a hash."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from functools import partial

import anyio
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from app.accounts import Profile, get_profile
from app.db import now
from app.errors import InvalidInput, PayloadTooLarge
from app.models import Avatar
from app.runtime import Runtime
from app.sessions import Principal

SIZE = (512, 512)
# Larger than any camera most people own; a bigger image is refused before its pixels
# are decoded, so a small file cannot expand into gigabytes (a decompression bomb).
MAX_PIXELS = 50_000_000
# Accepted input formats and what each is stored as: animations keep their first frame,
# and GIF's 256 colours become a lossless PNG.
OUTPUT_FORMAT = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WEBP", "GIF": "PNG"}
CONTENT_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FIELD = "avatar"

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_limiter = anyio.CapacityLimiter(os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class StoredImage:
    key: str
    content_type: str
    data: bytes


def url(public_url: str, key: str | None) -> str | None:
    return f"{public_url}/avatars/{key}" if key else None


async def replace(rt: Runtime, principal: Principal, data: bytes) -> Profile:
    """Make `data` the user's avatar; the image it replaces is deleted."""
    if len(data) > rt.settings.avatar_max_bytes:
        raise PayloadTooLarge(f"The image is larger than {rt.settings.avatar_max_bytes} bytes")
    content_type, encoded = await anyio.to_thread.run_sync(
        partial(normalise, data), limiter=_limiter
    )
    key = hashlib.sha256(f"{principal.user_id}:".encode() + encoded).hexdigest()
    values = {"key": key, "content_type": content_type, "data": encoded, "created_at": now()}
    insert = postgresql.insert if rt.db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(Avatar).values(user_id=principal.user_id, **values)
    async with rt.db.write() as db:
        await db.exec(statement.on_conflict_do_update(index_elements=["user_id"], set_=values))
    return await get_profile(rt, principal)


async def fetch(rt: Runtime, key: str) -> StoredImage | None:
    async with rt.db.read() as db:
        row = (
            await db.exec(select(Avatar.content_type, Avatar.data).where(Avatar.key == key))
        ).first()
    return StoredImage(key=key, content_type=row[0], data=row[1]) if row else None


def normalise(data: bytes) -> tuple[str, bytes]:
    """Decode an upload and re-encode it: upright, at most 512x512, with no metadata."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(OUTPUT_FORMAT))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InvalidInput(FIELD, "not a PNG, JPEG, WebP or GIF image") from None
    with image:
        source_format = image.format or ""
        if image.width * image.height > MAX_PIXELS:
            raise InvalidInput(FIELD, f"the image has more than {MAX_PIXELS} pixels")
        try:
            if source_format == "JPEG":
                # Decode straight at a reduced scale: faster and far less memory.
                image.draft("RGB", (SIZE[0] * 2, SIZE[1] * 2))
            image.seek(0)
            upright = ImageOps.exif_transpose(image)
            has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            output = OUTPUT_FORMAT[source_format]
            mode = "RGBA" if has_alpha and output != "JPEG" else "RGB"
            pixels = upright.convert(mode)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise InvalidInput(FIELD, "the image is damaged or truncated") from None
    pixels.thumbnail(SIZE, Image.Resampling.LANCZOS)
    # A new image holds the pixels only: EXIF, GPS, ICC, XMP and comments stay behind.
    clean = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
    buffer = io.BytesIO()
    if output == "JPEG":
        clean.save(buffer, "JPEG", quality=85, optimize=True)
    elif output == "WEBP":
        clean.save(buffer, "WEBP", quality=85)
    else:
        clean.save(buffer, "PNG", optimize=True)
    return CONTENT_TYPE[output], buffer.getvalue()
