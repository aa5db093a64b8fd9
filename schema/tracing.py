"""Where a GraphQL operation may get a trace span: on both paths that execute documents.

The prepared path (schema/execution.py, both faces) and Strawberry's own path (GET, uploads)
each open `Schema.operation_span` around execution. It is a no-op unless the application
turned tracing on (app/tracing.py), which is also the only place OpenTelemetry is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, cast

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    from schema.api import Schema

OperationSpan = Callable[[DocumentNode, str | None], AbstractContextManager[object]]

_NO_SPAN: AbstractContextManager[object] = nullcontext()


def no_span(document: DocumentNode, operation_name: str | None) -> AbstractContextManager[object]:
    return _NO_SPAN


class OperationSpans(SchemaExtension):
    """The span around an execution on Strawberry's path."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        schema = cast("Schema", context.schema)
        with schema.operation_span(document, context.operation_name):
            yield
