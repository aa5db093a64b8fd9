"""HTTP details both faces share: decoding JSON bodies, reading media types, body limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from schema.documents import MAX_INTEGER_DIGITS, MAX_JSON_DEPTH

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class UnreadableJSON(ValueError):
    """What a client sent is not JSON this service reads; `reason` completes "The body …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NOT_JSON = "is not valid JSON"


def _no_constant(name: str) -> NoReturn:
    raise UnreadableJSON(NOT_JSON)


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise UnreadableJSON(f"holds an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def loads_json(data: str | bytes) -> Any:
    """`json.loads` for what clients send, with every malformed input an `UnreadableJSON`.

    NaN and Infinity (which Python accepts and JSON does not) are refused like any other
    malformed JSON; an integer longer than Python converts, or nesting deeper than anything
    this service reads, is refused saying so.
    """
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_int=_integer)
    except RecursionError:
        raise UnreadableJSON(_too_deep()) from None
    except UnreadableJSON:
        raise
    except ValueError:
        raise UnreadableJSON(NOT_JSON) from None
    if not _within_depth(value):
        raise UnreadableJSON(_too_deep())
    return value


def _too_deep() -> str:
    return f"is nested more than {MAX_JSON_DEPTH} levels deep"


def _within_depth(value: Any) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def media_type(headers: Headers) -> str:
    """The Content-Type without parameters such as charset, lower-cased."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def response_media_type(accept: str) -> str:
    """`application/graphql-response+json` when the Accept header prefers it, else JSON.

    Preference is the highest quality; among equals, the first listed (so
    `application/graphql-response+json, application/json;q=0.9` and
    `application/graphql-response+json, application/json` both choose it). `*/*`, a missing
    header or one naming neither keep `application/json`, as before the new type existed.
    """
    best, best_quality = JSON, 0.0
    for part in accept.split(",")[:32]:
        name, _, parameters = part.partition(";")
        name = name.strip().lower()
        if name not in (GRAPHQL_RESPONSE, JSON):
            continue
        quality = _quality(parameters)
        if quality > best_quality:
            best, best_quality = name, quality
    return best


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def code_for_status(status: int) -> str:
    """The contract's `extensions.code` for a GraphQL request refused with this status."""
    if status == 413:
        return "PAYLOAD_TOO_LARGE"
    return "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST"


class RequestError(Exception):
    """A GraphQL request refused before any of it ran: answered with `status` and `code`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


class BodyTooLarge(HTTPException):
    """Raised while a body streams in, once it passes its limit (the app's RequestLimits)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, idle: float) -> None:
        super().__init__(408, f"No part of the request body arrived for {idle:g} seconds")
