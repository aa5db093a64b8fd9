"""The id of the request being served, carried in a context variable so every log line has it;
and the client it comes from, so that work shared between clients can take turns by client.

The HTTP layer (app/observe.py) sets it for each request; the logging set-up (app/logs.py)
adds it to every record. Work done later on behalf of a request (the mail outbox, say) keeps
the id with the job when it is queued, `current()`, and runs under it when it is processed,
`with bound(job.request_id): ...`, so its log lines point back to the request that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# The client's address (`core.security.network`), set with the request's context
# (schema/context.py); "" outside any request.
CLIENT: ContextVar[str] = ContextVar("client", default="")


def current() -> str | None:
    """The id of the request this code runs for, or None outside any request."""
    return REQUEST_ID.get()


def client() -> str:
    """The client this code runs for ("" outside any request)."""
    return CLIENT.get()


@contextmanager
def bound(request_id: str | None) -> Iterator[None]:
    """Run a block as part of the request `request_id` (None: as part of no request)."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)
