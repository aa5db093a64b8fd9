"""Executing documents that are already parsed and validated: the hot path of both faces.

REST prepares its fixed operations once at start-up. `/graphql` prepares each distinct query
text once (schema/documents.py), so a frontend repeating its queries pays neither parsing
nor validation again, nor Strawberry's per-request extension machinery (which only parses
and validates here; nothing of ours hooks into execution).
"""

from __future__ import annotations

import inspect
from typing import Any

from graphql import DocumentNode, ExecutionResult, execute

from schema.api import Schema


async def run(
    schema: Schema,
    document: DocumentNode,
    *,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: object,
) -> ExecutionResult:
    with schema.operation_span(document, operation_name):
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
