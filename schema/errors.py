"""Where GraphQL errors get the contract's `extensions.code`, and where the rest are masked."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError

from core.errors import InvalidInput, ServiceError, TooManyRequests, Unavailable

logger = logging.getLogger("accounts.errors")

MASKED_MESSAGE = "Internal server error"


def service_extensions(error: ServiceError) -> dict[str, Any]:
    """A service error's code and data, as GraphQL `extensions` spell them."""
    extensions: dict[str, Any] = {"code": error.code}
    if isinstance(error, InvalidInput):
        extensions["field"] = error.field
    if isinstance(error, TooManyRequests | Unavailable):
        extensions["retryAfter"] = error.retry_after
    return extensions


def error_extensions(error: GraphQLError) -> dict[str, Any] | None:
    """The extensions a client sees for `error`; None when it is unexpected (a bug).

    The code is decided where the error arose, never from its wording: a service error
    carries its own; the parser, the validator and the variables' coercion label theirs
    (schema/documents.py, schema/execution.py). Anything else is unexpected.
    """
    original = error.original_error
    if isinstance(original, ServiceError):
        return service_extensions(original)
    if original is not None and not isinstance(original, GraphQLError):
        return None
    extensions = error.extensions or {}
    if "code" not in extensions:
        return None
    return dict(extensions)


def public_error(error: GraphQLError) -> GraphQLError:
    extensions = error_extensions(error)
    if extensions is None:
        return GraphQLError(
            MASKED_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def log_unexpected(errors: Sequence[GraphQLError]) -> None:
    for error in errors:
        if error_extensions(error) is None:
            original = error.original_error
            logger.error(
                "unexpected error in %s",
                ".".join(str(part) for part in error.path or ()) or "request",
                exc_info=(type(original), original, original.__traceback__) if original else None,
            )
