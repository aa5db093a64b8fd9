"""The service's own Prometheus series: what the core decides and the resources it holds.

The core writes to prometheus-client directly: a counter is already a process-wide sink with
no framework behind it, so an observer interface of our own would only be a second name for
it. The HTTP series and `GET /metrics` are the application's (app/metrics.py). With several
server processes prometheus-client keeps each process's values in files that one scrape adds
up (its multiprocess mode, set up by `python -m app`); the gauges say how to add them up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge
from sqlalchemy.pool import QueuePool

from core.errors import ServiceError

if TYPE_CHECKING:
    from core.runtime import Runtime

P = ParamSpec("P")
T = TypeVar("T")

LoginOutcome = Literal["success", "wrong_credentials", "totp_required", "throttled"]
LOGIN_OUTCOMES: tuple[LoginOutcome, ...] = (
    "success",
    "wrong_credentials",
    "totp_required",
    "throttled",
)
# How a refused login says which outcome it was: the error codes of core/errors.py.
_OUTCOME_BY_CODE: dict[str, LoginOutcome] = {
    "UNAUTHENTICATED": "wrong_credentials",
    "TOTP_REQUIRED": "totp_required",
    "TOO_MANY_REQUESTS": "throttled",
}

LOGINS = Counter("accounts_logins", "Login attempts by outcome", ["outcome"])
# `limit` names the setting whose limit was reached (login_failures_per_account, ...),
# password_hash_queue when the hashing queue was full, or new_documents when a client had
# as many new GraphQL documents waiting for the documents thread as it may.
THROTTLED = Counter("accounts_throttled", "Requests refused by a limit (429)", ["limit"])
HASH_QUEUE_DEPTH = Gauge(
    "accounts_password_hash_queue_depth",
    "Password hashes and checks running or waiting for a hashing thread",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "accounts_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
# The outbox is one table that every process sees alike, so the newest reading is the
# figure (not the sum). Whoever counts the outbox reports it with `outbox(...)` below.
OUTBOX_MESSAGES = Gauge(
    "accounts_outbox_messages",
    "Email messages in the outbox by state (waiting: not yet delivered; failed: given up)",
    ["state"],
    multiprocess_mode="livemostrecent",
)

# Every outcome and outbox state is a series from the start, at 0, so a rate over them is
# defined before the first event and an alert can tell "none" from "not reported".
for _outcome in LOGIN_OUTCOMES:
    LOGINS.labels(_outcome)
for _state in ("waiting", "failed"):
    # Not set(0): in "mostrecent" mode that would be a fresh reading, hiding a real one.
    OUTBOX_MESSAGES.labels(_state)


def login(outcome: LoginOutcome) -> None:
    LOGINS.labels(outcome).inc()


def throttled(limit: str) -> None:
    THROTTLED.labels(limit).inc()


def outbox(*, waiting: int, failed: int) -> None:
    """The outbox's counts as just read (the mail sender reports them each time it looks)."""
    OUTBOX_MESSAGES.labels("waiting").set(waiting)
    OUTBOX_MESSAGES.labels("failed").set(failed)


def counts_logins(
    authenticate: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Count each call of a login service by its outcome: returned, or the error it raised."""

    @functools.wraps(authenticate)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result = await authenticate(*args, **kwargs)
        except ServiceError as error:
            outcome = _OUTCOME_BY_CODE.get(error.code)
            if outcome is not None:
                login(outcome)
            raise
        login("success")
        return result

    return counted


def sample(runtime: Runtime) -> None:
    """Read the gauges that describe this process's resources now."""
    HASH_QUEUE_DEPTH.set(runtime.passwords.queue_depth)
    pool = runtime.db.engine.pool
    DB_POOL_IN_USE.set(pool.checkedout() if isinstance(pool, QueuePool) else 0)
