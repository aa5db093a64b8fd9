"""HTTP details both faces share: decoding JSON bodies, reading media types, body limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads_json(data: str | bytes) -> Any:
    """`json.loads` for what clients send, with every malformed input a ValueError (a 400).

    Nesting too deep to decode would be a RecursionError, an integer of more than 4,300
    digits a plain ValueError, and NaN or Infinity (which Python accepts and JSON does not)
    would pass; all three are refused like any other malformed JSON.
    """
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


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
