"""CORS for the origins in CORS_ORIGINS, with refusals in the contract's `{"message"}` shape."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from rest_compat.translator import message_response

ALLOW_METHODS = ("GET", "POST", "PUT", "DELETE")
ALLOW_HEADERS = ("content-type", "apollo-require-preflight", "x-requested-with", "x-request-id")
# What a frontend's fetch() may read: the id a user quotes to support, and how long to wait
# after a 429 or 503 (browsers hide every other header of a cross-origin answer).
EXPOSE_HEADERS = ("retry-after", "x-request-id")
# Starlette's plain-text refusal is "Disallowed CORS origin, method"; only its list is kept.
REFUSAL_PREFIX = "Disallowed CORS "


class Cors(CORSMiddleware):
    """Starlette's CORS, credentials allowed, origins never reflected; JSON refusals."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            expose_headers=EXPOSE_HEADERS,
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        what = bytes(response.body).decode().removeprefix(REFUSAL_PREFIX)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-type", "content-length")
        }
        return message_response(
            response.status_code, f"Cross-origin request not allowed: {what}", headers=headers
        )
