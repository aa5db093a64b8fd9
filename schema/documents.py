"""Query texts become executable documents here, under every limit, once per distinct text.

Both ways a document reaches execution use this one place: the prepared fast path (REST's
operations and `/graphql`'s JSON POSTs) calls `Documents.operation`, and Strawberry's own
path (GET, uploads, anything the fast path leaves to it) reaches it through the
`PreparedDocuments` extension. A limit added here holds on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaxAliasesLimiter, SchemaExtension
from strawberry.schema.schema import validate_document

if TYPE_CHECKING:
    from schema.api import Schema

MAX_TOKENS = 2000
MAX_ALIASES = 10
PREPARED_DOCUMENTS = 256


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query text after parsing and validation, with the errors that refuse it, if any."""

    document: DocumentNode | None
    parse_errors: tuple[GraphQLError, ...] = ()
    validation_errors: tuple[GraphQLError, ...] = ()


def validation_rules(*, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """graphql-core's rules plus the contract's limits."""
    rules = [*specified_rules, *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


class Documents:
    """Parses and validates query texts, keeping a bounded cache of the outcomes."""

    def __init__(self, schema: GraphQLSchema, *, introspection: bool) -> None:
        self.schema = schema
        self.rules = validation_rules(introspection=introspection)
        self.prepare = lru_cache(maxsize=PREPARED_DOCUMENTS)(self._prepare)

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as error:
            return Prepared(None, parse_errors=(error,))
        errors = validate_document(self.schema, document, self.rules)
        return Prepared(document, validation_errors=tuple(errors))

    def operation(self, query: str, operation_name: str | None) -> DocumentNode | None:
        """The valid document, if its chosen operation is a query or a mutation.

        None for anything else; Strawberry's path then reports it as usual.
        """
        prepared = self.prepare(query)
        document = prepared.document
        if document is None or prepared.validation_errors:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation == OperationType.SUBSCRIPTION:
            return None
        return document


class PreparedDocuments(SchemaExtension):
    """Strawberry's parse and validate steps, answered from the schema's `Documents`."""

    def _prepared(self) -> Prepared:
        schema = cast("Schema", self.execution_context.schema)
        return schema.documents.prepare(self.execution_context.query or "")

    def on_parse(self) -> Iterator[None]:
        prepared = self._prepared()
        if prepared.parse_errors:
            raise prepared.parse_errors[0]
        self.execution_context.graphql_document = prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        self.execution_context.pre_execution_errors = list(self._prepared().validation_errors)
        yield
