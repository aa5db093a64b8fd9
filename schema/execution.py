"""Executing documents that are already parsed and validated: the hot path of both faces.

REST prepares its fixed operations once at start-up. `/graphql` prepares each distinct query
text once (schema/documents.py), so a frontend repeating its queries pays neither parsing
nor validation again, nor Strawberry's per-request extension machinery (which only parses
and validates here; nothing of ours hooks into execution).

Errors leave here labelled by where they arose: a variable value that does not coerce is
`BAD_USER_INPUT`, an operation the request cannot select is `BAD_REQUEST`, and both mean
the operation never started (`Outcome.started` is False); errors from resolvers carry the
service's own code (schema/errors.py).
"""

from __future__ import annotations

import inspect
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)

from schema.api import Schema
from schema.documents import coded

# Each variable error quotes the value; a few are enough to fix a request.
MAX_COERCION_ERRORS = 10


class Outcome(ExecutionResult):
    """An execution result that also says whether execution started."""

    __slots__ = ("started",)

    def __init__(
        self, data: dict[str, Any] | None, errors: list[GraphQLError] | None, *, started: bool
    ) -> None:
        super().__init__(data, errors)
        self.started = started


def select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | GraphQLError:
    """The operation the request names (or the only one), else the error saying why not."""
    operation = get_operation_ast(document, operation_name)
    if operation is not None:
        return operation
    if operation_name is not None:
        message = f"Unknown operation named '{operation_name}'."
    else:
        message = "Must provide operation name if query contains multiple operations."
    return GraphQLError(message, extensions={"code": "BAD_REQUEST"})


async def run(
    schema: Schema,
    document: DocumentNode,
    *,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: object,
) -> Outcome:
    operation = select_operation(document, operation_name)
    if isinstance(operation, GraphQLError):
        return Outcome(None, [operation], started=False)
    if operation.operation == OperationType.SUBSCRIPTION:
        refused = GraphQLError(
            "Subscriptions are not supported", extensions={"code": "BAD_REQUEST"}
        )
        return Outcome(None, [refused], started=False)
    with schema.operation_span(document, operation_name):
        executor = schema.execution_context_class.build(
            schema._schema,
            document,
            context_value=context,
            raw_variable_values=variables,
            operation_name=operation_name,
            max_coercion_errors=MAX_COERCION_ERRORS,
            hide_suggestions=schema.documents.hide_suggestions,
            operation_extensions=None,
        )
        if isinstance(executor, list):
            # With the operation found, what is left to refuse is the variables' values.
            errors = [coded(error, "BAD_USER_INPUT") for error in executor]
            return Outcome(None, errors, started=False)
        outcome = executor.execute_operation()
        result = await outcome if inspect.isawaitable(outcome) else outcome
    assert isinstance(result, ExecutionResult)
    if result.errors:
        schema.process_errors(result.errors)
    return Outcome(result.data, result.errors, started=True)
