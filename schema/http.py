"""HTTP details both faces share: decoding JSON bodies, reading media types, body limits."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException


def loads_json(data: str | bytes) -> Any:
    """`json.loads`, with nesting too deep to decode reported like any other malformed JSON
    (a JSONDecodeError, so a 400) rather than as a RecursionError, which would be a 500."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def media_type(headers: Headers) -> str:
    """The Content-Type without parameters such as charset, lower-cased."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


class BodyTooLarge(HTTPException):
    """Raised while a body streams in, once it passes its limit (the app's RequestLimits)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, idle: float) -> None:
        super().__init__(408, f"No part of the request body arrived for {idle:g} seconds")
