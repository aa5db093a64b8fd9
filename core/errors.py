"""One exception family for every rule the services enforce.

Each kind carries the contract's error code and plain data (`field`, `retry_after`), never a
wire format: the GraphQL face turns them into `extensions`, and REST maps the code to a status,
each in one place.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """A request the service refuses, with a message meant for the client."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    """A field breaks its rule; `field` names it."""

    code = "BAD_USER_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self._arguments = (field, message)

    def __reduce__(self) -> tuple[type[InvalidInput], tuple[str, str]]:
        # Rebuilt from its own arguments when it crosses processes (core/images.py).
        return type(self), self._arguments


class NotAuthenticated(ServiceError):
    """No valid session, or wrong login or password at login."""

    code = "UNAUTHENTICATED"


class Forbidden(ServiceError):
    """Logged in, but a re-check (the old password) failed."""

    code = "FORBIDDEN"


class Conflict(ServiceError):
    """A unique name (login or email) is already taken."""

    code = "CONFLICT"


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"


class TooManyRequests(ServiceError):
    """Throttled; the client may retry after `retry_after` seconds.

    `limit` names the limit that refused (a `core.throttle.Limit`'s name, or the password
    hasher's queue); empty for a database that is busy.
    """

    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after: int, *, limit: str = "") -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.limit = limit


class Unavailable(ServiceError):
    """The database cannot serve the request now (no pooled connection free in time, or the
    server unreachable); the client may retry after `retry_after` seconds."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TotpRequired(ServiceError):
    """The password was right, but the account has a second factor and no valid code came."""

    code = "TOTP_REQUIRED"


class NotFound(ServiceError):
    """An id (a session's) that does not exist or is not the caller's: the same answer."""

    code = "NOT_FOUND"
