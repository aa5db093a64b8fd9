"""Avatars: a user's image, re-encoded clean and stored in the database under its hash."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import throttle
from core.accounts import Profile, get_profile
from core.db import now
from core.errors import NotAuthenticated, PayloadTooLarge
from core.models import Avatar
from core.runtime import Runtime
from core.sessions import Principal

KEY_PATTERN = re.compile("[0-9a-f]{64}")


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
    await throttle.take(rt.db, rt.limits.uploads(principal.user_id))
    content_type, encoded = await rt.images.normalise(data)
    key = hashlib.sha256(f"{principal.user_id}:".encode() + encoded).hexdigest()
    values = {
        "user_id": principal.user_id,
        "key": key,
        "content_type": content_type,
        "data": encoded,
        "created_at": now(),
    }
    try:
        async with rt.db.write() as db:
            await db.exec(rt.db.upsert(Avatar, values, key="user_id"))
    except IntegrityError:
        # The account was deleted while its image was being decoded.
        raise NotAuthenticated("You must be logged in") from None
    return await get_profile(rt, principal)


async def fetch(rt: Runtime, key: str) -> StoredImage | None:
    # Keys are SHA-256 hex digests; anything else (NUL bytes, lone surrogates, which a
    # database refuses to compare) names no image and is not worth a query.
    if not KEY_PATTERN.fullmatch(key):
        return None
    async with rt.db.read() as db:
        row = (
            await db.exec(select(Avatar.content_type, Avatar.data).where(Avatar.key == key))
        ).first()
    return StoredImage(key=key, content_type=row[0], data=row[1]) if row else None
