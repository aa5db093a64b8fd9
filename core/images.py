"""Images: decode hostile uploads with care, re-encode them clean. No database, no HTTP."""

from __future__ import annotations

import io
import os
from functools import partial

import anyio
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InvalidInput

SIZE = (512, 512)
# Larger than any camera most people own; a bigger image is refused before its pixels
# are decoded, so a small file cannot expand into gigabytes (a decompression bomb).
MAX_PIXELS = 50_000_000
# Accepted input formats and what each is stored as: animations keep their first frame,
# and GIF's 256 colours become a lossless PNG.
OUTPUT_FORMAT = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WEBP", "GIF": "PNG"}
CONTENT_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FIELD = "avatar"


class ImageWork:
    """Decoding and re-encoding in worker threads, a bounded number at a time.

    One per process (in the Runtime): the bound and Pillow's own decompression-bomb limit
    are process-wide.
    """

    def __init__(self) -> None:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        self._limiter = anyio.CapacityLimiter(os.cpu_count() or 1)

    async def normalise(self, data: bytes) -> tuple[str, bytes]:
        return await anyio.to_thread.run_sync(partial(normalise, data), limiter=self._limiter)


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
