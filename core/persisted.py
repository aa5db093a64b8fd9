"""Persisted documents: texts stored under their SHA-256, shared by every instance.

The store knows nothing of GraphQL: it keeps text by hash, bounded in number and in bytes,
and forgets the least recently used first. "Used" is recorded at most once per
`TOUCH_INTERVAL` per document and process, so a popular document does not cost a write on
every request.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, delete, func, select, update

from core.models import PersistedDocument

if TYPE_CHECKING:
    # Only a type here: the settings read manifests (read_manifest) before any database.
    from core.db import Database

MAX_DOCUMENTS = 10_000
# 10,000 documents of the largest size would be 2.5 GB of UTF-8; the store also keeps to a
# total, so registering documents cannot fill the database's disk.
MAX_BYTES = 32 * 1024 * 1024
# Pruning goes a little below the bounds, so it runs once per many inserts, not every one.
PRUNE_TO = 0.9
TOUCH_INTERVAL = 3600.0
DELETE_CHUNK = 500

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
FETCH_SQL = "SELECT document, last_used_at FROM persisted_documents WHERE hash = :hash"


@dataclass(frozen=True, slots=True)
class Stored:
    text: str
    last_used_at: float


def digest(text: str) -> str:
    """The SHA-256 of the text's UTF-8, in lower-case hex; ValueError for invalid text."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the text is not valid Unicode (it holds a lone surrogate)") from None
    return hashlib.sha256(data).hexdigest()


async def fetch(db: Database, key: str) -> Stored | None:
    row = await db.fetch_one(FETCH_SQL, hash=key)
    if row is None:
        return None
    return Stored(text=row["document"], last_used_at=row["last_used_at"])


async def store(db: Database, key: str, text: str, *, at: float) -> None:
    """Keep `text` under `key` (its digest), then forget the oldest if past a bound."""
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    row = {"hash": key, "document": text, "size": len(text.encode("utf-8")), "last_used_at": at}
    async with db.write() as session:
        await session.exec(
            insert(PersistedDocument).values(**row).on_conflict_do_nothing(index_elements=["hash"])
        )
        count, total = (
            await session.exec(
                select(func.count(), func.coalesce(func.sum(PersistedDocument.size), 0))
            )
        ).one()
        if count <= MAX_DOCUMENTS and total <= MAX_BYTES:
            return
        oldest = await session.exec(
            select(PersistedDocument.hash, PersistedDocument.size).order_by(
                col(PersistedDocument.last_used_at), col(PersistedDocument.hash)
            )
        )
        doomed: list[str] = []
        for key_, size in oldest:
            if count <= MAX_DOCUMENTS * PRUNE_TO and total <= MAX_BYTES * PRUNE_TO:
                break
            doomed.append(key_)
            count -= 1
            total -= size
        for start in range(0, len(doomed), DELETE_CHUNK):
            chunk = doomed[start : start + DELETE_CHUNK]
            await session.exec(
                delete(PersistedDocument).where(col(PersistedDocument.hash).in_(chunk))
            )


async def touch(db: Database, key: str, *, at: float) -> None:
    async with db.write() as session:
        await session.exec(
            update(PersistedDocument)
            .where(col(PersistedDocument.hash) == key)
            .values(last_used_at=at)
        )


def read_manifest(path: str) -> dict[str, str]:
    """A manifest of pre-registered documents, each checked against its hash.

    The shape GraphQL Codegen's client preset writes, `{"<sha256 hex>": "<document>"}`; and
    Apollo's persisted query manifest, `{"format": "apollo-persisted-query-manifest",
    "operations": [{"id": "<sha256 hex>", "body": "<document>"}, ...]}`. ValueError says what
    is wrong.
    """
    try:
        manifest: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(manifest, dict) and manifest.get("format") == "apollo-persisted-query-manifest":
        operations = manifest.get("operations")
        if not isinstance(operations, list) or not all(
            isinstance(op, dict) and "id" in op and "body" in op for op in operations
        ):
            raise ValueError(f"{path}: operations must be a list of {{id, body}} objects")
        manifest = {op["id"]: op["body"] for op in operations}
    if not isinstance(manifest, dict):
        raise ValueError(f'{path} must hold a JSON object {{"<sha256 hex>": "<document>"}}')
    for key, text in manifest.items():
        if not isinstance(text, str):
            raise ValueError(f"{path}: the document under {key[:70]!r} is not a string")
        if not SHA256_HEX.fullmatch(key):
            raise ValueError(f"{path}: {key[:70]!r} is not a lower-case SHA-256 hex digest")
        if digest(text) != key:
            raise ValueError(f"{path}: {key} is not the SHA-256 of its document")
    return manifest
