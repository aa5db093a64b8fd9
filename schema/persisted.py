"""Persisted documents on `/graphql`: Apollo's automatic persisted queries, and an allow-list.

A request may name its document by SHA-256 in `extensions.persistedQuery` instead of sending
it. Documents are found, in order, among the pre-registered ones (the REST layer's operations
and the `GRAPHQL_PERSISTED_DOCUMENTS` manifest, held by every instance alike), in this
process's cache, and in the database (core/persisted.py), where clients register new ones
by sending the text with its hash. With `GRAPHQL_PERSISTED_ONLY` only pre-registered
documents run, by hash or by identical text, and nothing can be registered.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    print_ast,
)

from core import persisted
from core.db import Database, now
from schema.cache import BoundedCache
from schema.http import RequestError
from schema.transport import GraphQLRequest

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
# Apollo's clients recognise this message (older ones only the message, not the code).
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
NOT_ALLOWED_MESSAGE = "Only pre-registered documents run on this server"
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
CACHE_BYTES = 4 * 1024 * 1024
BYTES_PER_ENTRY = 256


@dataclass(frozen=True, slots=True)
class Resolved:
    """The document text to run, and the hash to register it under once it validates."""

    text: str
    register: str | None = None


@dataclass(frozen=True, slots=True)
class _Known:
    text: str
    touched_at: float


class PersistedQueries:
    def __init__(self, db: Database, *, preregistered: Mapping[str, str], only: bool) -> None:
        self.db = db
        self.preregistered = dict(preregistered)
        self.only = only
        self.cache: BoundedCache[str, _Known] = BoundedCache(CACHE_BYTES)

    @classmethod
    def with_documents(
        cls, db: Database, texts: list[str], *, manifest: str, only: bool
    ) -> PersistedQueries:
        """Pre-register `texts` (under their digests) and every document of the manifest."""
        known = {persisted.digest(text): text for text in texts}
        if manifest:
            known |= persisted.read_manifest(manifest)
        return cls(db, preregistered=known, only=only)

    async def resolve(self, request: GraphQLRequest) -> Resolved:
        """The text a request runs; RequestError when there is none (or it may not run)."""
        extension = request.persisted_query
        if extension is None:
            if request.query is None:
                raise RequestError(400, "No GraphQL query found in the request")
            if self.only and _digest(request.query) not in self.preregistered:
                raise RequestError(400, NOT_ALLOWED_MESSAGE, code=NOT_FOUND)
            return Resolved(request.query)
        key = _hash_of(extension)
        if request.query is not None:
            if _digest(request.query) != key:
                raise RequestError(400, "provided sha does not match query")
            if key in self.preregistered:
                return Resolved(request.query)
            if self.only:
                raise RequestError(400, NOT_ALLOWED_MESSAGE, code=NOT_FOUND)
            known = await self._lookup(key)
            return Resolved(request.query, register=None if known else key)
        text = self.preregistered.get(key)
        if text is None and not self.only:
            text = await self._lookup(key)
        if text is None:
            raise RequestError(400 if self.only else 200, NOT_FOUND_MESSAGE, code=NOT_FOUND)
        return Resolved(text)

    async def register(self, key: str, text: str) -> None:
        """Store a document that passed every limit, for every instance."""
        at = now()
        await persisted.store(self.db, key, text, at=at)
        self._remember(key, text, at)

    async def _lookup(self, key: str) -> str | None:
        at = now()
        known = self.cache.get(key)
        if known is None:
            stored = await persisted.fetch(self.db, key)
            if stored is None:
                return None
            known = _Known(stored.text, stored.last_used_at)
        if at - known.touched_at >= persisted.TOUCH_INTERVAL:
            await persisted.touch(self.db, key, at=at)
            known = _Known(known.text, at)
        self._remember(key, known.text, known.touched_at)
        return known.text

    def _remember(self, key: str, text: str, touched_at: float) -> None:
        size = sys.getsizeof(text) + sys.getsizeof(key) + BYTES_PER_ENTRY
        self.cache.put(key, _Known(text, touched_at), size)


def _hash_of(extension: object) -> str:
    if not isinstance(extension, dict):
        raise RequestError(400, "extensions.persistedQuery must be an object")
    if extension.get("version") != 1:
        raise RequestError(400, "Unsupported persisted query version (only 1 is)")
    key = extension.get("sha256Hash")
    if not isinstance(key, str) or not SHA256_HEX.fullmatch(key):
        raise RequestError(400, "extensions.persistedQuery.sha256Hash must be 64 hex digits")
    return key.lower()


def _digest(text: str) -> str:
    try:
        return persisted.digest(text)
    except ValueError as exc:
        raise RequestError(400, f"The query {exc}") from None


def standalone_operations(text: str) -> list[str]:
    """Each operation of a document as a document of its own, with the fragments it uses.

    A document with several operations may break per-document limits together (the REST
    layer's holds four credential mutations) that each of its operations keeps alone.
    """
    document = parse(text)
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    standalone = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        used: dict[str, FragmentDefinitionNode] = {}
        pending = [definition.selection_set]
        while pending:
            for node in _spreads(pending.pop()):
                if node.name.value not in used and node.name.value in fragments:
                    used[node.name.value] = fragments[node.name.value]
                    pending.append(fragments[node.name.value].selection_set)
        standalone.append(print_ast(DocumentNode(definitions=(definition, *used.values()))))
    return standalone


def _spreads(selection_set: SelectionSetNode) -> list[FragmentSpreadNode]:
    found: list[FragmentSpreadNode] = []
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                found.append(selection)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)
    return found
