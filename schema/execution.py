"""Executing documents that are already parsed and validated: the hot path of both faces.

REST prepares its fixed operations once at start-up. `/graphql` prepares each distinct query
text once and keeps it in a bounded cache, so a frontend repeating its queries pays neither
parsing nor validation again, nor Strawberry's per-request extension machinery (which only
parses and validates here; nothing of ours hooks into execution).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.schema.schema import validate_document

from schema.api import MAX_TOKENS, Schema

PREPARED_DOCUMENTS = 256


class Prepared:
    """Parses and validates query texts under the same limits as the schema's extensions."""

    def __init__(self, schema: Schema, rules: Sequence[type[ASTValidationRule]]) -> None:
        self.schema = schema
        self.rules = (*specified_rules, *rules)
        self.document = lru_cache(maxsize=PREPARED_DOCUMENTS)(self._prepare)

    @classmethod
    def for_schema(cls, schema: Schema, *, introspection: bool) -> Prepared:
        rules = list(schema.alias_rules)
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        return cls(schema, rules)

    def _prepare(self, query: str) -> DocumentNode | None:
        """The document, or None when it has errors (Strawberry's full path reports them)."""
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError:
            return None
        if validate_document(self.schema._schema, document, self.rules):
            return None
        return document

    def operation(self, query: str, operation_name: str | None) -> DocumentNode | None:
        """The prepared document if its chosen operation is a query or a mutation."""
        document = self.document(query)
        if document is None:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation == OperationType.SUBSCRIPTION:
            return None
        return document


async def run(
    schema: Schema,
    document: DocumentNode,
    *,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: object,
) -> ExecutionResult:
    outcome = execute(
        schema._schema,
        document,
        variable_values=variables,
        context_value=context,
        operation_name=operation_name,
        executor_class=schema.execution_context_class,
        operation_extensions=None,
    )
    result = await outcome if inspect.isawaitable(outcome) else outcome
    assert isinstance(result, ExecutionResult)
    if result.errors:
        schema.process_errors(result.errors)
    return result
