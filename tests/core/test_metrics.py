"""The core's series: login outcomes by the error a login raises, gauges read from resources."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from core import metrics
from core.config import Settings
from core.errors import InvalidInput, NotAuthenticated, ServiceError, TooManyRequests
from core.runtime import Runtime


def logins(outcome: str) -> float:
    return REGISTRY.get_sample_value("accounts_logins_total", {"outcome": outcome}) or 0.0


class SecondFactorMissing(ServiceError):
    """The shape of the TOTP feature's error: its code is all the counter needs."""

    code = "TOTP_REQUIRED"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        (NotAuthenticated("wrong"), "wrong_credentials"),
        (SecondFactorMissing("code needed"), "totp_required"),
        (TooManyRequests("slow down", 30), "throttled"),
    ],
)
def test_each_login_is_counted_by_its_outcome(error: ServiceError | None, outcome: str) -> None:
    @metrics.counts_logins
    async def login() -> str:
        if error is not None:
            raise error
        return "profile"

    before = logins(outcome)
    if error is None:
        assert asyncio.run(login()) == "profile"
    else:
        with pytest.raises(type(error)):
            asyncio.run(login())
    assert logins(outcome) - before == 1


def test_a_login_refused_as_bad_input_is_no_outcome() -> None:
    @metrics.counts_logins
    async def login() -> None:
        raise InvalidInput("login", "too long")

    before = {outcome: logins(outcome) for outcome in metrics.LOGIN_OUTCOMES}
    with pytest.raises(InvalidInput):
        asyncio.run(login())
    assert {outcome: logins(outcome) for outcome in metrics.LOGIN_OUTCOMES} == before


def test_gauges_read_the_hashing_queue_and_the_pool(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", bcrypt_rounds=10)
    runtime = Runtime.create(settings)

    def gauge(name: str) -> float | None:
        metrics.sample(runtime)
        return REGISTRY.get_sample_value(name)

    async def scenario() -> tuple[float | None, ...]:
        hashes = [
            asyncio.create_task(runtime.passwords.hash("a passphrase", client="192.0.2.1"))
            for _ in range(5)
        ]
        await asyncio.sleep(0)  # each task has handed its hash to the pool
        queued = gauge("accounts_password_hash_queue_depth")
        async with runtime.db.engine.connect():
            in_use = gauge("accounts_db_pool_connections_in_use")
        await asyncio.gather(*hashes)
        idle = gauge("accounts_password_hash_queue_depth")
        released = gauge("accounts_db_pool_connections_in_use")
        await runtime.db.dispose()
        return queued, in_use, idle, released

    try:
        # Five hashes at once from one client: the first runs on the thread kept for a
        # client alone, then one per hashing thread, and the rest wait in the queue.
        waiting = 5 - min(5, 1 + (os.cpu_count() or 1))
        assert asyncio.run(scenario()) == (waiting, 1, 0, 0)
    finally:
        runtime.passwords.close()


def test_outbox_counts_are_reported_as_read() -> None:
    metrics.outbox(waiting=3, failed=1)
    metrics.outbox(waiting=2, failed=1)
    read = {
        state: REGISTRY.get_sample_value("accounts_outbox_messages", {"state": state})
        for state in ("waiting", "failed")
    }
    assert read == {"waiting": 2, "failed": 1}
    metrics.outbox(waiting=0, failed=0)
