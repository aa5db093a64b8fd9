"""Query texts become executable documents here, under every limit, once per distinct text.

Every way a document reaches execution uses this one place: `/graphql` (schema/view.py,
for POST, GET, uploads and persisted queries alike) calls `Documents.prepare`, and
Strawberry's own path (`Schema.execute`) reaches it through the `PreparedDocuments`
extension. A limit added here holds on both. The REST layer's fixed operations are checked
once at start-up instead (rest_compat/translator.py).

The order is the cost order: the length of the text first (before anything is parsed or
cached), then the parser's token limit, then a linear pre-pass over the parsed document
(schema/cost.py) that refuses documents whose validation or execution would be expensive,
and only then graphql-core's validation. Every limit on what a GraphQL request carries is
here, those on its JSON too (schema/http.py reads them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    Node,
    Token,
    get_introspection_query,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from core import events, metrics, totp
from core.config import SESSIONS_PER_USER_MAX
from core.security import network
from core.workers import FairThreads
from schema.cache import BoundedCache
from schema.cost import ArgumentBound, Bound, Budget, Exceeded, list_lengths, measure

if TYPE_CHECKING:
    from schema.api import Schema

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

# The contract's limits on a query text.
MAX_QUERY_CHARS = 65_536
MAX_TOKENS = 2000
MAX_ALIASES = 10
# Each of these hashes a password or changes what proves who the user is: one per document,
# counted over all its operations and fragments, so aliases cannot multiply them.
CREDENTIAL_FIELDS = frozenset(
    {
        "signup",
        "login",
        "changePassword",
        "resetPassword",
        "updateAvatar",
        "disableTotp",
        "confirmTotp",
    }
)
MAX_CREDENTIALS = 1
# The cost pre-pass. The standard introspection query (every option of graphql-core's
# get_introspection_query on) nests 19 levels, makes 248 selections (232 fields, 12
# fragment spreads and 4 argument values, its fragments expanded where spread) and could
# answer about 26,500 values by the pre-pass's count on this schema; the limits leave a
# little room above it and none for much more, so no accepted document costs much more
# than it does.
MAX_DEPTH = 24
# Fields, fragment spreads, inline fragments and values written in arguments, with each
# fragment counted wherever it is spread: validation visits each of them.
MAX_SELECTIONS = 300
# Pairs the overlapping-fields rule compares (it is quadratic in them): same-named fields,
# each comparison recursing into their selections; and distinct fragments spread into one
# selection set, a few microseconds each (45 fragments spread side by side make 990).
MAX_PAIRS = 100
MAX_FRAGMENT_PAIRS = 1000
COST_HEADROOM = 1.2
# How long each list of the service's own types can be (every one must be here; the
# schema does not start otherwise): what the answer to a document could hold is
# counted with these.
LIST_BOUNDS: dict[tuple[str, str], Bound] = {
    ("Query", "sessions"): SESSIONS_PER_USER_MAX,  # the setting at its highest
    ("Query", "securityEvents"): ArgumentBound(
        "limit", default=events.LIMIT_DEFAULT, maximum=events.LIMIT_MAX
    ),
    ("Mutation", "confirmTotp"): totp.RECOVERY_CODE_COUNT,
}
# Python converts no longer integer text by default: a longer one, in a document or in
# JSON, is refused saying so (graphql-core's message would name the interpreter's setting).
MAX_INTEGER_DIGITS = 4300
# JSON a request carries (variables, extensions, an upload's operations and map) nests a
# few levels; deeper is refused before anything recurses into it.
MAX_JSON_DEPTH = 32
# Validation stops collecting errors here: reporting more helps nobody and costs time.
MAX_ERRORS = 20

# New documents (texts not in the cache) a client may have waiting for or on the documents
# thread, and all clients together: past either, 429. Hundreds of milliseconds of work
# queued, at most; a client sending the same text many times at once counts it once.
NEW_DOCUMENTS_PER_CLIENT = 8
NEW_DOCUMENTS_WAITING = 64

# The caches hold at most this many bytes of query texts, syntax trees and errors.
CACHE_BYTES = 32 * 1024 * 1024
# What an entry holds, measured with a deep size count over hostile and ordinary documents
# (tests/test_documents.py checks the estimate covers it): the text twice (the text, and
# the values of its string and comment tokens), about 330-520 bytes per token (the token,
# its node, location and name), the errors, and the entry itself.
TEXT_COPIES = 2
BYTES_PER_TOKEN = 640
BYTES_PER_ERROR = 2048
BYTES_PER_ENTRY = 1024


class QueryTooLarge(Exception):
    """The query text is longer than the contract allows; refused before parsing."""

    def __init__(self) -> None:
        super().__init__(f"The query text is longer than {MAX_QUERY_CHARS} characters")


class TooManyNewDocuments(Exception):
    """A client has as many new documents waiting for the documents thread as it may."""

    retry_after = 1

    def __init__(self) -> None:
        metrics.throttled("new_documents")
        super().__init__("Too many new documents in progress; send again in a second")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query text after parsing and validation, with the errors that refuse it, if any.

    Each error carries its `extensions.code`, set here where its kind is known.
    """

    document: DocumentNode | None
    parse_errors: tuple[GraphQLError, ...] = ()
    validation_errors: tuple[GraphQLError, ...] = ()

    @property
    def errors(self) -> tuple[GraphQLError, ...]:
        return self.parse_errors + self.validation_errors


def validation_rules(*, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """graphql-core's rules, Strawberry's own two, and the introspection switch."""
    rules = [*specified_rules, MaybeNullValidationRule, OneOfInputValidationRule]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def coded(error: GraphQLError, code: str) -> GraphQLError:
    """A copy of `error` with the contract's code, and without a traceback to keep alive."""
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=None if error.nodes else error.source,
        positions=None if error.nodes else error.positions,
        extensions={"code": code},
    )


class Documents:
    """Checks, parses and validates query texts, keeping a byte-bounded cache of outcomes.

    `/graphql` prepares a text the cache does not hold on the documents thread (`prepare_new`):
    parsing and validating are pure Python, up to about 10 ms for the largest document the
    limits let through, and on the event loop they would hold up every request in flight.
    One thread for all of them bounds the share of the interpreter new documents can take
    however many clients send them (the process's switch interval, app/server.py, hands the
    event loop the interpreter within a fraction of a millisecond whenever it wants it);
    clients take turns on it (core/workers.py), and one that sends the same text many
    times at once has it prepared once.
    """

    def __init__(self, schema: GraphQLSchema, *, introspection: bool) -> None:
        self.schema = schema
        self.hide_suggestions = not introspection
        self.rules = validation_rules(introspection=introspection)
        self.lengths = list_lengths(schema, LIST_BOUNDS)
        self.budget = self._budget()
        self.cache: BoundedCache[str, Prepared] = BoundedCache(CACHE_BYTES)
        self._thread = FairThreads(
            "graphql-documents",
            TooManyNewDocuments,
            workers=1,
            per_client=NEW_DOCUMENTS_PER_CLIENT,
            max_waiting=NEW_DOCUMENTS_WAITING,
            nice=False,  # it holds the interpreter; the switch interval shares that
        )
        self._preparing: dict[str, asyncio.Future[Prepared]] = {}

    def close(self) -> None:
        self._thread.close()

    def _budget(self) -> Budget:
        limits = Budget(
            depth=MAX_DEPTH,
            selections=MAX_SELECTIONS,
            aliases=MAX_ALIASES,
            pairs=MAX_PAIRS,
            fragment_pairs=MAX_FRAGMENT_PAIRS,
            cost=sys.maxsize,
            credentials=MAX_CREDENTIALS,
            credential_fields=CREDENTIAL_FIELDS,
            integer_digits=MAX_INTEGER_DIGITS,
        )
        standard = parse(STANDARD_INTROSPECTION)
        cost = measure(standard, self.schema, limits, self.lengths).cost
        return dataclasses.replace(limits, cost=math.ceil(cost * COST_HEADROOM))

    def check_size(self, query: str) -> None:
        if len(query) > MAX_QUERY_CHARS:
            raise QueryTooLarge

    def prepare(self, query: str) -> Prepared:
        """The outcome of parsing and validating `query`, here and now; raises
        `QueryTooLarge`."""
        self.check_size(query)
        prepared = self.cache.get(query)
        if prepared is None:
            prepared, size = self._lean(query)
            self.cache.put(query, prepared, size)
        return prepared

    async def prepare_new(self, query: str, *, client: str) -> Prepared:
        """As `prepare`, with a text not in the cache prepared on the documents thread, in
        `client`'s turn; raises `QueryTooLarge` and `TooManyNewDocuments`."""
        self.check_size(query)
        prepared = self.cache.get(query)
        if prepared is not None:
            return prepared
        preparing = self._preparing.get(query)
        if preparing is None:
            preparing = asyncio.ensure_future(self._on_thread(query, client))
            self._preparing[query] = preparing
            preparing.add_done_callback(partial(self._prepared, query))
        # Shielded: a client that goes away does not take the answer from others waiting.
        return await asyncio.shield(preparing)

    async def _on_thread(self, query: str, client: str) -> Prepared:
        prepared, size = await self._thread.run(partial(self._lean, query), network(client))
        self.cache.put(query, prepared, size)
        return prepared

    def _prepared(self, query: str, done: asyncio.Future[Prepared]) -> None:
        del self._preparing[query]
        if not done.cancelled():
            done.exception()  # retrieved, should every request waiting for it be gone

    def _lean(self, query: str) -> tuple[Prepared, int]:
        """`query` prepared, as the cache keeps it, and the bytes it counts for there."""
        prepared = self._prepare(query)
        size = entry_bytes(query, prepared)  # before `lean` lets the tokens go
        return lean(prepared), size

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as error:
            return Prepared(None, parse_errors=(coded(error, PARSE_FAILED),))
        try:
            measure(document, self.schema, self.budget, self.lengths)
        except Exceeded as refusal:
            refused = GraphQLError(str(refusal), extensions={"code": VALIDATION_FAILED})
            return Prepared(document, validation_errors=(refused,))
        errors = validate(
            self.schema,
            document,
            self.rules,
            max_errors=MAX_ERRORS,
            hide_suggestions=self.hide_suggestions,
        )
        return Prepared(
            document, validation_errors=tuple(coded(error, VALIDATION_FAILED) for error in errors)
        )


STANDARD_INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
    experimental_directive_deprecation=True,
    one_of=True,
)


def lean(prepared: Prepared) -> Prepared:
    """What the cache keeps of a prepared document: as few objects as will do.

    The garbage collector walks every cached object on each full collection, and a client
    sending new documents back to back sets one off every few requests: with the cache full
    of 2,000-token documents (about 7,500 objects each), each took 130 ms here, holding up
    every other request. A refused document keeps only its errors (their locations, not the
    nodes they point at); an accepted one lets go of the parser's tokens.
    """
    if prepared.document is not None and prepared.document.loc is not None:
        cut_chain(prepared.document.loc.start_token)
    if prepared.errors:
        return Prepared(
            None,
            parse_errors=tuple(map(detached, prepared.parse_errors)),
            validation_errors=tuple(map(detached, prepared.validation_errors)),
        )
    if prepared.document is not None:
        drop_tokens(prepared.document)
    return prepared


def cut_chain(token: Token | None) -> None:
    """Unlink the parser's tokens from each other, so that once nothing else holds them
    they are freed at once rather than left to the garbage collector as a cycle."""
    while token is not None:
        following = token.next
        setattr(token, "prev", None)  # noqa: B010
        setattr(token, "next", None)  # noqa: B010
        token = following


def detached(error: GraphQLError) -> GraphQLError:
    """The same error, saying where it is in the text without holding the document."""
    return GraphQLError(
        error.message, source=error.source, positions=error.positions, extensions=error.extensions
    )


def drop_tokens(document: DocumentNode) -> None:
    """Let go of the parser's tokens (a doubly linked chain, one object per token, which
    each node's location points into), keeping where each node stood in the text, so that
    errors raised while executing still say where they are.
    """
    stack: list[Node] = [document]
    while stack:
        node = stack.pop()
        if node.loc is not None:
            setattr(node.loc, "start_token", None)  # noqa: B010
            setattr(node.loc, "end_token", None)  # noqa: B010
        for key in node.keys:
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))


def entry_bytes(query: str, prepared: Prepared) -> int:
    """An upper estimate of the memory a cache entry holds (its text included)."""
    tokens = 0
    if prepared.document is not None and prepared.document.loc is not None:
        token: Token | None = prepared.document.loc.start_token
        while token is not None:
            tokens += 1
            token = token.next
    return (
        TEXT_COPIES * sys.getsizeof(query)
        + BYTES_PER_TOKEN * tokens
        + sum(BYTES_PER_ERROR + sys.getsizeof(error.message) for error in prepared.errors)
        + BYTES_PER_ENTRY
    )


class PreparedDocuments(SchemaExtension):
    """Strawberry's parse and validate steps, answered from the schema's `Documents`."""

    def _prepared(self) -> Prepared:
        schema = cast("Schema", self.execution_context.schema)
        try:
            return schema.documents.prepare(self.execution_context.query or "")
        except QueryTooLarge as exc:
            raise GraphQLError(str(exc), extensions={"code": "PAYLOAD_TOO_LARGE"}) from None

    def on_parse(self) -> Iterator[None]:
        prepared = self._prepared()
        if prepared.parse_errors:
            raise prepared.parse_errors[0]
        # None for a refused document (its cache entry keeps only its errors): Strawberry
        # then parses the text itself, and validation answers with the cached errors. Only
        # `Schema.execute` comes this way (/graphql calls `Documents.prepare_new` itself, and
        # REST runs its own operations, parsed once).
        self.execution_context.graphql_document = prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        self.execution_context.pre_execution_errors = list(self._prepared().validation_errors)
        yield
